"""What every channel (SMTP, outbox Maildir, Help Scout API) receives from the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.vocab import SendStatus


@dataclass(frozen=True)
class OutboxItem:
    """One planned send, exactly as stored before it was attempted.

    For mail channels ``payload`` is the complete RFC 5322 message (so a retry after a crash
    is byte-identical, same Message-ID). For Help Scout it is a JSON operation.
    """

    id: int
    idem_key: str
    channel: str
    kind: str
    ticket_id: int | None
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    payload: bytes
    attempts: int = 0
    planned_at: datetime | None = None  # when the decision was recorded

    def log_fields(self) -> dict[str, object]:
        """What every log line about this message names, so one grep finds its whole story."""
        return {"kind": self.kind, "ticket": self.ticket_id, "to": list(self.recipients),
                "channel": self.channel, "message_id": self.message_id}


@dataclass(frozen=True)
class SendOutcome:
    """``retry``: temporary (4xx, network), try again later; ``failed``: permanent (5xx);
    ``suppressed``: deliberately not sent (Help Scout: an agent closed or answered it in
    between), recorded as such and never retried."""

    status: SendStatus
    detail: str = ""
    remote_id: str | None = None


OnOutcome = Callable[[OutboxItem, SendOutcome], Awaitable[None]]


class Channel(Protocol):
    @property
    def name(self) -> str:
        """Its ``ChannelName``: the outbox rows it sends are those with this channel."""
        ...

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        """Send in order over one connection; one outcome per item, never raises for an item.

        ``on_outcome`` is awaited as soon as each item's outcome is known, before the next
        item is sent: the outbox records it there, so a crash mid-batch can only leave the
        one message in flight in doubt, not every message already accepted.
        """
        ...

    async def aclose(self) -> None: ...
