"""The data that flows through the bot: sources -> rules -> actions -> outbox/timers -> channels.

Plain frozen dataclasses with no behaviour beyond small helpers, so every stage can be
tested alone and the rule engine stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.vocab import ActionKind, Priority, SourceKind, TicketState

__all__ = [
    "Action",
    "ActionKind",
    "Attachment",
    "Decision",
    "Headers",
    "Message",
    "Priority",
    "SourceKind",
    "TicketState",
    "TicketView",
    "TraceStep",
]


@dataclass(frozen=True)
class Headers:
    """Case-insensitive, order-keeping multi-map of decoded header values."""

    items: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for k, v in self.items:
            if k.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self.items if k.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def names(self) -> list[str]:
        return [k for k, _ in self.items]


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True)
class Message:
    """One inbound message, normalised from any source: what the rules look at.

    Addresses are lower-cased bare addresses (``ann@example.com``); Message-IDs keep their
    angle brackets (``<abc@host>``). ``return_path`` is None when the header is absent and
    ``""`` for the null sender ``<>``.
    """

    source: SourceKind
    message_id: str | None
    from_addr: str
    from_name: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    return_path: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: Headers = field(default_factory=Headers)
    content_type: str = "text/plain"
    report_type: str | None = None
    attachments: tuple[Attachment, ...] = ()
    date: datetime | None = None
    received_at: datetime | None = None
    content_hash: str = ""
    defects: tuple[str, ...] = ()
    raw: bytes | None = None
    # Help Scout only
    mailbox_id: int | None = None
    conversation_id: int | None = None
    conversation_number: int | None = None
    thread_id: int | None = None
    customer_id: int | None = None
    tags: tuple[str, ...] = ()

    @property
    def word_count(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class TraceStep:
    """One line of `explain`: a rule (or detector) and whether and why it matched."""

    rule: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Action:
    """What a decision asks for. ``to`` holds addresses or Help Scout user ids (``"123"``).

    A ``forward`` always implies a notice to the requester, using ``notice_template``:
    ``bot.expand`` turns actions into the messages they send.
    """

    kind: ActionKind
    to: tuple[str, ...]
    template: str
    rule: str
    notice_template: str | None = None


@dataclass(frozen=True)
class Decision:
    """The pure result of classifying one message; `explain --json` is built from it."""

    ignored: bool
    reason: str | None
    priority: Priority | None = None
    topic: str | None = None
    tags: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    owner: str | None = None
    followup: bool = False
    trace: tuple[TraceStep, ...] = ()


@dataclass(frozen=True)
class TicketView:
    """What the decision function may know about the ticket a message belongs to."""

    id: int
    state: TicketState
    source: SourceKind
    requester: str
    priority: Priority | None = None
    topic: str | None = None
    owner: str | None = None
    created_at: datetime | None = None
