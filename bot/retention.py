"""Keeping customers' raw mail no longer than `SUPPORTBOT_RETENTION_DAYS` (default 90).

Once a day the worker prunes the raw bodies older than that: inbound mail in the ledger,
the bytes of messages already sent or given up, released quarantine items. What the bot
knows stays (ledger rows, tickets, outbox rows, timers, the activity log), so `log`,
`status` and the exactly-once checks keep working; only `replay` and a ticket's
conversation context lose the words of mail that old. 0 keeps everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from bot.clock import from_iso
from bot.store import Store

log = structlog.get_logger(__name__)

PRUNE_EVERY = timedelta(hours=24)
LAST_KEY = "retention:last_at"


def maybe_prune(store: Store, now: datetime, days: float) -> dict[str, int] | None:
    """Prune if the last pass is a day old; what was pruned, or None when not due."""
    if days <= 0:
        return None
    last = store.get_meta(LAST_KEY)
    if last is not None and now - from_iso(last) < PRUNE_EVERY:
        return None
    pruned = store.prune_raw(now - timedelta(days=days))
    with store.transaction():
        store.set_meta(LAST_KEY, now.isoformat())
        if any(pruned.values()):
            store.log(now, None, "pruned",
                      f"raw mail older than {days:g} days (SUPPORTBOT_RETENTION_DAYS): "
                      + ", ".join(f"{n} {what}" for what, n in pruned.items()))
    if any(pruned.values()):
        log.info("raw mail pruned", days=days, **pruned)
    return pruned
