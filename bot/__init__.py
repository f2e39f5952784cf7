"""supportbot: a level-1 support automation worker."""

__version__ = "0.1.0"
