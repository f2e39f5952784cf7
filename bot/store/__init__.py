"""The SQLite state file: see `store.Store`."""

from bot.store.store import Store, Ticket

__all__ = ["Store", "Ticket"]
