"""The store's rows as typed, frozen values: what callers read, whichever engine stored them.

Times come back as aware datetimes, JSON lists as tuples and raw mail unpacked; callers
never see a driver's row type.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime

from bot.clock import from_iso
from bot.model import TicketView
from bot.store.database import Row
from bot.vocab import Priority, SourceKind, TicketState, TimerKind


def pack_raw(raw: bytes | None) -> bytes | None:
    return None if raw is None else zlib.compress(raw, 6)


def unpack_raw(blob: bytes | None) -> bytes | None:
    return None if blob is None else zlib.decompress(blob)


def _priority(value: str | None) -> Priority | None:
    return None if value is None else Priority(value)


class Cols:
    """Typed reads of one row's columns (a wrong type is a schema bug: fail loudly)."""

    __slots__ = ("row",)

    def __init__(self, row: Row) -> None:
        self.row = row

    def num(self, key: str) -> int:
        value = self.row[key]
        assert isinstance(value, int), (key, value)
        return value

    def opt_num(self, key: str) -> int | None:
        value = self.row[key]
        return None if value is None else self.num(key)

    def text(self, key: str) -> str:
        value = self.row[key]
        assert isinstance(value, str), (key, value)
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.row[key]
        return None if value is None else self.text(key)

    def blob(self, key: str) -> bytes:
        value = self.row[key]
        assert isinstance(value, (bytes, memoryview)), (key, value)
        return bytes(value)

    def opt_blob(self, key: str) -> bytes | None:
        return None if self.row[key] is None else self.blob(key)

    def time(self, key: str) -> datetime:
        return from_iso(self.text(key))

    def opt_time(self, key: str) -> datetime | None:
        value = self.opt_text(key)
        return from_iso(value) if value else None

    def strs(self, key: str) -> tuple[str, ...]:
        value = json.loads(self.opt_text(key) or "[]")
        return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class Ticket:
    """A ticket row, as the pipeline and lifecycle read it."""

    id: int
    source: SourceKind
    state: TicketState
    requester: str
    requester_name: str
    subject: str
    priority: Priority | None
    topic: str | None
    tags: tuple[str, ...]
    rules: tuple[str, ...]
    owner: str | None
    root_message_id: str | None
    last_message_id: str | None
    refs: tuple[str, ...]
    mailbox_id: int | None
    conversation_id: int | None
    conversation_number: int | None
    customer_id: int | None
    created_at: datetime
    updated_at: datetime
    first_action_at: datetime | None
    last_requester_at: datetime | None
    last_visible_update_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, row: Row) -> Ticket:
        c = Cols(row)
        return cls(
            id=c.num("id"), source=SourceKind(c.text("source")),
            state=TicketState(c.text("state")),
            requester=c.text("requester"), requester_name=c.text("requester_name"),
            subject=c.text("subject"), priority=_priority(c.opt_text("priority")),
            topic=c.opt_text("topic"),
            tags=c.strs("tags"), rules=c.strs("rules"), owner=c.opt_text("owner"),
            root_message_id=c.opt_text("root_message_id"),
            last_message_id=c.opt_text("last_message_id"), refs=c.strs("refs"),
            mailbox_id=c.opt_num("mailbox_id"), conversation_id=c.opt_num("conversation_id"),
            conversation_number=c.opt_num("conversation_number"),
            customer_id=c.opt_num("customer_id"), created_at=c.time("created_at"),
            updated_at=c.time("updated_at"), first_action_at=c.opt_time("first_action_at"),
            last_requester_at=c.opt_time("last_requester_at"),
            last_visible_update_at=c.opt_time("last_visible_update_at"),
            closed_at=c.opt_time("closed_at"),
        )

    def view(self) -> TicketView:
        return TicketView(
            id=self.id, state=self.state, source=self.source, requester=self.requester,
            priority=self.priority, topic=self.topic, owner=self.owner,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class LedgerEntry:
    """A message in the ledger, without its raw bytes."""

    id: int
    ref: str
    source: SourceKind
    message_id: str | None
    from_addr: str
    subject: str
    received_at: datetime
    status: str
    reason: str | None
    ticket_id: int | None

    COLUMNS = "id, ref, source, message_id, from_addr, subject, received_at, status, reason," \
              " ticket_id"

    @classmethod
    def of(cls, row: Row) -> LedgerEntry:
        c = Cols(row)
        return cls(id=c.num("id"), ref=c.text("ref"), source=SourceKind(c.text("source")),
                   message_id=c.opt_text("message_id"), from_addr=c.text("from_addr"),
                   subject=c.text("subject"), received_at=c.time("received_at"),
                   status=c.text("status"), reason=c.opt_text("reason"),
                   ticket_id=c.opt_num("ticket_id"))


@dataclass(frozen=True)
class LedgerMessage:
    """A ticket-opening message with what `replay` needs to decide it again."""

    entry: LedgerEntry
    raw: bytes | None
    summary: str | None

    @classmethod
    def of(cls, row: Row) -> LedgerMessage:
        c = Cols(row)
        return cls(LedgerEntry.of(row), unpack_raw(c.opt_blob("raw")), c.opt_text("summary"))


@dataclass(frozen=True)
class OutboxRow:
    """A planned send, whole (its bytes included)."""

    id: int
    idem_key: str
    ticket_id: int | None
    kind: str
    channel: str
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    payload: bytes
    rule: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    claimed_by: str | None

    @classmethod
    def of(cls, row: Row) -> OutboxRow:
        c = Cols(row)
        return cls(id=c.num("id"), idem_key=c.text("idem_key"), ticket_id=c.opt_num("ticket_id"),
                   kind=c.text("kind"), channel=c.text("channel"), message_id=c.text("message_id"),
                   envelope_from=c.text("envelope_from"), recipients=c.strs("recipients"),
                   payload=c.blob("payload"), rule=c.opt_text("rule"), status=c.text("status"),
                   attempts=c.num("attempts"), last_error=c.opt_text("last_error"),
                   created_at=c.time("created_at"), next_attempt_at=c.time("next_attempt_at"),
                   sent_at=c.opt_time("sent_at"), claimed_by=c.opt_text("claimed_by"))


@dataclass(frozen=True)
class OutboxSummary:
    """A planned send for listings (`log`, `status`): everything but its bytes."""

    id: int
    ticket_id: int | None
    kind: str
    channel: str
    recipients: tuple[str, ...]
    status: str
    message_id: str
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    rule: str | None = None

    COLUMNS = "id, ticket_id, kind, channel, recipients, status, message_id, created_at," \
              " sent_at, last_error, rule"

    @classmethod
    def of(cls, row: Row) -> OutboxSummary:
        c = Cols(row)
        return cls(id=c.num("id"), ticket_id=c.opt_num("ticket_id"), kind=c.text("kind"),
                   channel=c.text("channel"), recipients=c.strs("recipients"),
                   status=c.text("status"), message_id=c.text("message_id"),
                   created_at=c.time("created_at"), sent_at=c.opt_time("sent_at"),
                   last_error=c.opt_text("last_error"), rule=c.opt_text("rule"))


@dataclass(frozen=True)
class TimerRow:
    id: int
    key: str
    ticket_id: int
    kind: TimerKind
    due_at: datetime
    status: str
    created_at: datetime
    done_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, row: Row) -> TimerRow:
        c = Cols(row)
        return cls(id=c.num("id"), key=c.text("key"), ticket_id=c.num("ticket_id"),
                   kind=TimerKind(c.text("kind")), due_at=c.time("due_at"), status=c.text("status"),
                   created_at=c.time("created_at"), done_at=c.opt_time("done_at"),
                   note=c.opt_text("note"))


@dataclass(frozen=True)
class ActivityRow:
    id: int
    at: datetime
    ticket_id: int | None
    actor: str
    action: str
    rule: str | None
    detail: str

    @classmethod
    def of(cls, row: Row) -> ActivityRow:
        c = Cols(row)
        return cls(id=c.num("id"), at=c.time("at"), ticket_id=c.opt_num("ticket_id"),
                   actor=c.text("actor"), action=c.text("action"), rule=c.opt_text("rule"),
                   detail=c.text("detail"))


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    ref: str
    source: SourceKind
    raw: bytes | None
    error: str
    at: datetime
    status: str

    @classmethod
    def of(cls, row: Row) -> QuarantineRow:
        c = Cols(row)
        return cls(id=c.num("id"), ref=c.text("ref"), source=SourceKind(c.text("source")),
                   raw=unpack_raw(c.opt_blob("raw")), error=c.text("error"), at=c.time("at"),
                   status=c.text("status"))


@dataclass(frozen=True)
class UndeliverableRow:
    address: str
    at: datetime
    reason: str

    @classmethod
    def of(cls, row: Row) -> UndeliverableRow:
        c = Cols(row)
        return cls(address=c.text("address"), at=c.time("at"), reason=c.text("reason"))
