"""The exception tree. Catch the narrowest one that says what to do next.

SupportbotError
 +-- ConfigError          a SUPPORTBOT_* variable is wrong: one line, naming it; exit 2
 +-- RulesError           rules.yaml or a template is invalid: `file:line: message` lines
 +-- MalformedMessage     input that is not an email at all: quarantined, never answered
 +-- BudgetExceeded       one item cost more than its budget (time, size): quarantined
 +-- SourceError          a source cannot be read (after retries)
 |    +-- AuthError       credentials refused: not retried in a tight loop
 +-- ChannelError         a channel cannot send (after retries)
 +-- HelpScoutError       the Help Scout API answered with an error body
 +-- StoreError           the database failed (never the message's fault: not quarantined)
      +-- StoreConflict   another worker got there first (a unique key, a deadlock): skip it
"""

from __future__ import annotations


class SupportbotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(SupportbotError):
    """A configuration value is missing or invalid."""


class RulesError(SupportbotError):
    """rules.yaml or templates are invalid; ``errors`` holds `file:line: message` lines."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class MalformedMessage(SupportbotError):
    """The bytes are not an email message we can read; keep them in quarantine."""


class BudgetExceeded(SupportbotError):
    """Processing one item exceeded a budget (a rule pattern's time, a template's size):
    the item is quarantined with this reason and the worker moves on."""


class SourceError(SupportbotError):
    """A source could not be read."""


class AuthError(SourceError):
    """The server refused our credentials."""


class ChannelError(SupportbotError):
    """A channel could not send."""


class HelpScoutError(SupportbotError):
    """An error answer from the Help Scout API, with its ``logRef`` when given."""

    def __init__(self, status: int, message: str, log_ref: str | None = None,
                 errors: list[str] | None = None) -> None:
        self.status = status
        self.log_ref = log_ref
        self.errors = errors or []
        detail = f"Help Scout API {status}: {message}"
        if self.errors:
            detail += " (" + "; ".join(self.errors) + ")"
        if log_ref:
            detail += f" [logRef {log_ref}]"
        super().__init__(detail)


class StoreError(SupportbotError):
    """The state database failed; the step in hand is rolled back whole."""


class StoreConflict(StoreError):
    """Another worker on the same database did this first, or holds what this step needs."""
