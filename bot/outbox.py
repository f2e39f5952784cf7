"""Executing planned sends exactly once per idempotency key.

Protocol per row: `pending` -> `sending` (committed before the attempt) -> `sent` |
`failed` | back to `pending` with a backoff. A crash leaves a row in `sending`: its outcome
is unknown. Once its worker's lease has run out, such a row is checked (the IMAP Sent folder,
where configured; the Help Scout channel reads the conversation's threads itself) and sent again
with the *same* bytes and Message-ID, which receivers collapse: we prefer a rare
duplicate with one Message-ID over a lost message.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from bot import health
from bot.channels.base import Channel, OutboxItem, SendOutcome
from bot.store import OutboxRow, Store
from bot.vocab import ChannelName, HealthPart, OutboxStatus, SendStatus

log = structlog.get_logger(__name__)

BACKOFF = (30, 60, 300, 900, 1800, 3600)  # seconds after attempt 1, 2, ...; capped at the last
MAX_ATTEMPTS = 12


class SentFolder(Protocol):
    async def append_async(self, raw: bytes, when: datetime) -> None: ...
    async def contains_async(self, message_id: str) -> bool: ...


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    sent_items: list[OutboxItem] = field(default_factory=list)


def to_item(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id, idem_key=row.idem_key, channel=row.channel, kind=row.kind,
        ticket_id=row.ticket_id, message_id=row.message_id, envelope_from=row.envelope_from,
        recipients=row.recipients, payload=row.payload, attempts=row.attempts,
        planned_at=row.created_at)


class Outbox:
    def __init__(self, store: Store, channels: dict[str, Channel], *,
                 on_sent: Callable[[int, str, datetime], None] | None = None,
                 sent_folder: SentFolder | None = None, batch_size: int = 100,
                 holder: str = "worker") -> None:
        self.store = store
        self.channels = channels
        self.on_sent = on_sent
        self.sent_folder = sent_folder
        self.batch_size = batch_size
        self.holder = holder  # the worker whose claims these are (bot.leases)
        self._warned_unconfigured = False

    async def recover(self, now: datetime) -> int:
        """Resolve rows a crash left in `sending`; returns how many were in doubt.

        Only rows whose worker is gone (no live lease), or ours from a step that failed after
        sending: another worker's rows in flight are its own business. Never called during
        one of our own flushes (the worker's cycle calls it first)."""
        rows = self.store.claim_in_doubt(now, self.holder)
        for row in rows:
            found = False
            if self.sent_folder is not None and row.channel == ChannelName.SMTP:
                try:
                    found = await self.sent_folder.contains_async(row.message_id)
                except Exception as exc:  # noqa: BLE001 - the check is best effort; resending is safe
                    log.warning("sent folder check failed", error=str(exc))
            with self.store.transaction():
                if found:
                    self._mark_sent(row.id, row.ticket_id, row.kind, now,
                                    "found in the Sent folder after a restart")
                    log.info("sent", **to_item(row).log_fields(),
                             detail="found in the Sent folder")
                else:
                    self.store.set_outbox_status(row.id, OutboxStatus.PENDING, now,
                                                 next_attempt_at=now)
                    self.store.log(now, row.ticket_id, "send in doubt",
                                   f"{row.kind} {row.message_id}: outcome unknown after a "
                                   "restart; sending again with the same Message-ID")
            log.warning("outbox row in doubt after restart", outbox=row.id,
                        message_id=row.message_id, resolved="found" if found else "resend")
        return len(rows)

    async def flush(self, now: datetime, *, stop: asyncio.Event | None = None) -> FlushReport:
        report = FlushReport()
        self._warn_unconfigured()
        while not (stop and stop.is_set()):
            # Only rows a configured channel can send: rows for any other channel stay
            # pending, and must not fill the batch and hide every sendable row behind them.
            # Claimed rows are `sending`, committed before any attempt; another worker on
            # the same database skips them.
            rows = self.store.claim_outbox(now, self.channels.keys(), self.holder,
                                           limit=self.batch_size)
            if not rows:
                break
            by_channel: dict[str, list[OutboxItem]] = defaultdict(list)
            for row in rows:
                by_channel[row.channel].append(to_item(row))
            for name, items in by_channel.items():
                await self._send(self.channels[name], items, now, report)
        return report

    def _warn_unconfigured(self) -> None:
        """Once per process: pending rows no configured channel will send (not lost)."""
        if self._warned_unconfigured:
            return
        self._warned_unconfigured = True
        for name, count in sorted(self.store.pending_outbox_channels().items()):
            if name not in self.channels:
                log.warning("outbox rows wait for a channel that is not configured",
                            channel=name, pending=count)

    async def _send(self, channel: Channel, items: list[OutboxItem], now: datetime,
                    report: FlushReport) -> None:
        """Each outcome is recorded the moment the channel reports it (crash window: one item)."""
        recorded: set[int] = set()

        async def on_outcome(item: OutboxItem, outcome: SendOutcome) -> None:
            if item.id not in recorded:
                recorded.add(item.id)
                await self._record(item, outcome, now, report)

        try:
            outcomes = await channel.send_batch(items, on_outcome=on_outcome)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the rows: retry
            log.error("channel raised", channel=channel.name, error=f"{type(exc).__name__}: {exc}")
            outcomes = []
        if len(outcomes) != len(items):
            unreported = SendOutcome(SendStatus.RETRY, "channel did not report this item")
            outcomes = [unreported] * len(items)
        for item, outcome in zip(items, outcomes, strict=True):
            await on_outcome(item, outcome)

    async def _record(self, item: OutboxItem, outcome: SendOutcome, now: datetime,
                      report: FlushReport) -> None:
        if outcome.status == SendStatus.SENT:
            if self.sent_folder is not None and item.channel == ChannelName.SMTP:
                try:
                    await self.sent_folder.append_async(item.payload, now)
                except Exception as exc:  # noqa: BLE001 - the copy is a convenience; it was sent
                    log.warning("could not append to the Sent folder", error=str(exc))
            with self.store.transaction():
                to = f"to {', '.join(item.recipients)} " if item.recipients else ""
                self._mark_sent(item.id, item.ticket_id, item.kind, now,
                                f"{to}via {item.channel}"
                                + (f" ({outcome.detail})" if outcome.detail else ""))
            health.succeeded(self.store, HealthPart.CHANNEL, item.channel, now)
            log.info("sent", **item.log_fields(), attempts=item.attempts + 1,
                     **({"detail": outcome.detail} if outcome.detail else {}),
                     **({"remote_id": outcome.remote_id} if outcome.remote_id else {}))
            report.sent += 1
            report.sent_items.append(item)
            return
        if outcome.status == SendStatus.SUPPRESSED:  # the channel's last look said no: kept
            with self.store.transaction():
                self.store.set_outbox_status(item.id, OutboxStatus.SUPPRESSED, now,
                                             error=outcome.detail)
                self.store.log(now, item.ticket_id, "suppressed",
                               f"{item.kind}: {outcome.detail}")
            log.info("send held back", **item.log_fields(), detail=outcome.detail)
            return
        attempts = item.attempts + 1
        # a retry means the channel could not deliver now (down, 4xx); a permanent refusal of
        # one message is a failure to show, but the channel itself works
        health.failed(self.store, HealthPart.CHANNEL, item.channel, now, outcome.detail,
                      failing=outcome.status == SendStatus.RETRY)
        with self.store.transaction():
            if outcome.status == SendStatus.FAILED or attempts >= MAX_ATTEMPTS:
                self.store.set_outbox_status(item.id, OutboxStatus.FAILED, now,
                                             error=outcome.detail)
                self.store.log(now, item.ticket_id, "send failed",
                               f"{item.kind} to {', '.join(item.recipients)}: {outcome.detail}")
                log.warning("send failed", **item.log_fields(), error=outcome.detail,
                            attempts=attempts)
                report.failed += 1
            else:
                delay = BACKOFF[min(attempts, len(BACKOFF)) - 1]
                self.store.set_outbox_status(item.id, OutboxStatus.PENDING, now,
                                             error=outcome.detail,
                                             next_attempt_at=now + timedelta(seconds=delay))
                self.store.log(now, item.ticket_id, "send retry",
                               f"{item.kind}: {outcome.detail}; next try in {delay}s")
                log.warning("send will be retried", **item.log_fields(),
                            error=outcome.detail, attempts=attempts, delay=delay)
                report.retry += 1

    def _mark_sent(self, outbox_id: int, ticket_id: int | None, kind: str, now: datetime,
                   detail: str) -> None:
        self.store.set_outbox_status(outbox_id, OutboxStatus.SENT, now)
        self.store.log(now, ticket_id, "sent", f"{kind} {detail}")
        if self.on_sent is not None and ticket_id is not None:  # the report has no ticket
            self.on_sent(ticket_id, kind, now)
