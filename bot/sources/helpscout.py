"""Help Scout source: incremental polling of one mailbox's conversations.

Each poll lists `GET /v2/conversations?mailbox=M&status=all&embed=threads` modified since
the stored watermark minus an overlap, oldest first, and yields one Batch per page with
an Inbound per customer message or agent reply (notes, line items and drafts are not
tickets). `status=all` because a conversation waiting on its customer is `pending`,
which the API's default (`active`) hides.

Watermark: Help Scout's conversation objects carry no `modifiedAt`, so the watermark is
the server's own time (the Date header) when the pass began: everything modified after
that shows up in the next pass. Only the last page of a complete pass carries it, so an
interrupted pass — and the whole first sync, which the worker treats as backfill — is
simply read again (the ledger dedupes by ref). A pass whose result set shrank while we
paged (a deletion, a merge) may have shifted an unread conversation onto a page already
read, so it does not advance the watermark either. The overlap absorbs clock skew and
search-index lag between a change and its visibility in the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from bot.clock import Clock
from bot.config import HelpScoutSettings
from bot.errors import AuthError, HelpScoutError, SourceError
from bot.helpscout import marker
from bot.helpscout.client import HelpScoutClient, Page, iso_z, parse_time
from bot.helpscout.errors import HelpScoutUnavailable
from bot.helpscout.text import html_to_text
from bot.helpscout.webhook import WebhookReceiver
from bot.model import Message
from bot.sources.base import Batch, CursorStore, Inbound
from bot.vocab import SourceKind

log = structlog.get_logger(__name__)

Author = Literal["customer", "agent", "self"]
THREAD_TYPES = frozenset({"customer", "message"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HelpScoutSource:
    name = "helpscout"

    def __init__(self, client: HelpScoutClient, settings: HelpScoutSettings,
                 cursors: CursorStore, *, poll_seconds: float, clock: Clock,
                 overlap_seconds: float = 120, own_user_id: int | None = None,
                 webhook_host: str = "0.0.0.0") -> None:
        self.client = client
        self.settings = settings
        self.cursors = cursors
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.overlap = timedelta(seconds=overlap_seconds)
        self.own_user_id = own_user_id
        self.webhook_host = webhook_host
        self.cursor_key = f"helpscout:{settings.mailbox_id}"
        self.receiver: WebhookReceiver | None = None
        self._webhook_tried = False
        self._me_tried = own_user_id is not None
        self._wake = asyncio.Event()

    # -- polling ----------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[Batch]:
        await self._start_webhook()
        await self._learn_own_user()
        stored = self.cursors.get_cursor(self.cursor_key)
        watermark = parse_time(stored) if stored else None
        initial = watermark is None
        since = watermark - self.overlap if watermark is not None else None
        started: datetime | None = None
        first_total: int | None = None
        stable = True
        seen: set[str] = set()
        held: list[Inbound] | None = None
        pages = self.client.conversation_pages(self.settings.mailbox_id, since)
        try:
            while True:
                page = await self._next_page(pages)
                if page is None:
                    break
                if started is None:
                    started = page.server_time or self.clock.now()
                    first_total = page.total_elements
                elif (first_total is not None and page.total_elements is not None
                      and page.total_elements < first_total):
                    stable = False
                items = [i for i in self._page_items(page) if i.ref not in seen]
                seen.update(i.ref for i in items)
                if held is not None:
                    yield Batch(items=held, cursor=None, initial=initial)
                held = items
        finally:
            await pages.aclose()
        cursor = None
        if stable:
            mark = started or self.clock.now()
            cursor = iso_z(max(mark, watermark) if watermark is not None else mark)
        else:
            log.info("help scout listing changed while paging; watermark kept",
                     mailbox=self.settings.mailbox_id)
        yield Batch(items=held or [], cursor=cursor, initial=initial)

    async def _next_page(self, pages: AsyncGenerator[Page, None]) -> Page | None:
        try:
            return await anext(pages)
        except StopAsyncIteration:
            return None
        except AuthError:
            raise
        except HelpScoutError as exc:
            raise SourceError(f"Help Scout mailbox {self.settings.mailbox_id}: {exc}") from exc

    def _page_items(self, page: Page) -> list[Inbound]:
        items: list[Inbound] = []
        for conversation in page.items:
            if conversation.get("mailboxId") not in (None, self.settings.mailbox_id):
                continue
            if conversation.get("state", "published") != "published":
                continue  # drafts and deleted conversations are nobody's ticket yet
            if conversation.get("status") == "spam":
                continue
            embedded = conversation.get("_embedded")
            threads = embedded.get("threads") if isinstance(embedded, dict) else None
            for thread in sorted(threads or [], key=_thread_order):
                item = self.inbound(conversation, thread)
                if item is not None:
                    items.append(item)
        return items

    # -- one thread -------------------------------------------------------------------------
    def author(self, thread: dict[str, Any]) -> Author:
        if thread.get("type") == "customer":
            return "customer"  # even if it quotes our reply, fingerprint and all
        created_by = thread.get("createdBy") or {}
        if marker.is_ours(thread.get("body")):
            return "self"
        source = thread.get("source") or {}
        if (self.own_user_id is not None and created_by.get("id") == self.own_user_id
                and source.get("type") == "api"):
            return "self"
        return "agent"

    def inbound(self, conversation: dict[str, Any], thread: dict[str, Any]) -> Inbound | None:
        """The Inbound for one thread, or None for threads that are not messages."""
        if thread.get("type") not in THREAD_TYPES:
            return None
        if thread.get("state", "published") != "published":
            return None
        conv_id = conversation.get("id")
        thread_id = thread.get("id")
        created = parse_time(thread.get("createdAt")) or parse_time(conversation.get("createdAt"))
        if not isinstance(conv_id, int) or not isinstance(thread_id, int) or created is None:
            log.warning("help scout thread without ids or time skipped",
                        conversation=conv_id, thread=thread_id)
            return None
        author = self.author(thread)
        person = thread.get("createdBy") or {}
        customer = thread.get("customer") or {}
        primary = conversation.get("primaryCustomer") or {}
        if author == "customer":
            email = person.get("email") or customer.get("email") or primary.get("email") or ""
            customer_id = person.get("id") or customer.get("id") or primary.get("id")
        else:
            email = person.get("email") or ""
            customer_id = customer.get("id") or primary.get("id")
        body = str(thread.get("body") or "")
        name = " ".join(str(person.get(k) or "") for k in ("first", "last")).strip()
        message = Message(
            source=SourceKind.HELPSCOUT, message_id=None, from_addr=str(email).strip().lower(),
            from_name=name, subject=str(conversation.get("subject") or ""),
            text=marker.strip(html_to_text(body)), html=body or None,
            to=tuple(str(a).lower() for a in thread.get("to") or ()),
            cc=tuple(str(a).lower() for a in thread.get("cc") or ()),
            received_at=created, mailbox_id=conversation.get("mailboxId"),
            conversation_id=conv_id, conversation_number=conversation.get("number"),
            thread_id=thread_id, customer_id=customer_id if isinstance(customer_id, int) else None,
            tags=tuple(_tags(conversation)),
            content_hash=hashlib.sha256(f"{conv_id}\0{thread_id}\0{body}".encode()).hexdigest())
        return Inbound(source=SourceKind.HELPSCOUT, ref=f"helpscout:{conv_id}:{thread_id}",
                       received_at=created, message=message, author=author,
                       status=conversation.get("status"))

    # -- waking up --------------------------------------------------------------------------
    def wake(self) -> None:
        """Poll now (the webhook receiver calls this)."""
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(timeout, self.poll_seconds))
        self._wake.clear()

    async def _start_webhook(self) -> None:
        if self._webhook_tried or not (self.settings.webhook_secret and self.settings.webhook_port):
            return
        self._webhook_tried = True
        receiver = WebhookReceiver(self.settings.webhook_secret, self.wake,
                                   host=self.webhook_host, port=self.settings.webhook_port)
        try:
            await receiver.start()
        except OSError as exc:  # polling still works; say so loudly
            log.error("help scout webhook receiver could not start; polling only",
                      port=self.settings.webhook_port, error=str(exc))
            return
        self.receiver = receiver

    async def _learn_own_user(self) -> None:
        """Threads the app's user wrote through the API are ours even without a marker."""
        if self._me_tried:
            return
        try:
            me = await self.client.me()
        except HelpScoutUnavailable as exc:
            raise SourceError(f"Help Scout mailbox {self.settings.mailbox_id}: {exc}") from exc
        except HelpScoutError as exc:  # e.g. 403: the fingerprints alone will do
            log.warning("could not read the app's Help Scout user; relying on markers",
                        error=str(exc))
            self._me_tried = True
            return
        self._me_tried = True
        if isinstance(me.get("id"), int):
            self.own_user_id = me["id"]

    async def aclose(self) -> None:
        """The client belongs to the channel too; the channel closes it."""
        if self.receiver is not None:
            await self.receiver.aclose()
            self.receiver = None


def _thread_order(thread: dict[str, Any]) -> tuple[datetime, int]:
    thread_id = thread.get("id")
    return (parse_time(thread.get("createdAt")) or EPOCH,
            thread_id if isinstance(thread_id, int) else 0)


def _tags(conversation: dict[str, Any]) -> list[str]:
    names = []
    for tag in conversation.get("tags") or []:
        name = tag.get("tag") if isinstance(tag, dict) else tag
        if name:
            names.append(str(name).lower())
    return names
