"""The state, on a SQLite file or a PostgreSQL database: see `store.Store`."""

from bot.store.rows import (
    ActivityRow,
    LedgerEntry,
    LedgerMessage,
    OutboxRow,
    OutboxSummary,
    QuarantineRow,
    Ticket,
    TimerRow,
    UndeliverableRow,
)
from bot.store.store import Store

__all__ = ["ActivityRow", "LedgerEntry", "LedgerMessage", "OutboxRow", "OutboxSummary",
           "QuarantineRow", "Store", "Ticket", "TimerRow", "UndeliverableRow"]
