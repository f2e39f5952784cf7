"""What every source (Maildir, IMAP, Help Scout) hands to the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.model import Message, SourceKind
from bot.vocab import Author, HelpScoutStatus, LineItem


@dataclass(frozen=True)
class Inbound:
    """One raw item from a source, before parsing.

    ``ref`` is the ledger key that makes the item unique for ever, e.g.
    ``imap:INBOX:1700000000:42``, ``maildir:<key>``, ``helpscout:<conversation>:<thread>``.
    Email sources give ``raw`` bytes; Help Scout gives a ready ``message``.
    ``received_at`` is the server's arrival time (IMAP INTERNALDATE, Help Scout createdAt).
    """

    source: SourceKind
    ref: str
    received_at: datetime
    raw: bytes | None = None
    message: Message | None = None
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    # Help Scout: who wrote the thread (``self`` is the bot), the conversation's status the
    # thread left (None when Help Scout did not say), and for
    # a line item (a change without a message: closed, assigned) which change it records.
    author: Author = Author.CUSTOMER
    status: HelpScoutStatus | None = None
    change: LineItem | None = None
    # The source could not read or convert the item: the pipeline quarantines it with this
    # reason (whatever raw form there is is kept), and the other items go on.
    error: str | None = None


@dataclass(frozen=True)
class Batch:
    """Items plus the cursor to store in the same transaction that records them.

    ``initial`` is true while a source syncs for the first time (no stored cursor): the
    worker then records old mail without acting on it (SUPPORTBOT_BACKFILL_HOURS).
    """

    items: list[Inbound]
    cursor: str | None = None
    initial: bool = False


class CursorStore(Protocol):
    def get_cursor(self, key: str) -> str | None: ...


class Source(Protocol):
    """A place tickets come from. Sources never decide anything; they only read."""

    cursor_key: str

    @property
    def name(self) -> str:
        """Its ``SourceKind``: what reports, health and the ledger call it."""
        ...

    def batches(self) -> AsyncIterator[Batch]:
        """Drain everything new since the stored cursor, batch by batch (bounded memory)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when new items may be there (IMAP IDLE, webhook) or after ``timeout``."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Rereads(Protocol):
    """A source that can read given conversations again right now (Help Scout): before a
    timer-driven reply, so what people did since the last poll is known first."""

    def reread(self, conversation_ids: Sequence[int]) -> AsyncIterator[Batch]: ...
