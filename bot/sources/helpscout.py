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
import html
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bot.clock import Clock
from bot.config import HelpScoutSettings
from bot.errors import AuthError, HelpScoutError, SourceError
from bot.helpscout import marker
from bot.helpscout.client import HelpScoutClient, Page, parse_time
from bot.helpscout.errors import HelpScoutUnavailable
from bot.helpscout.progress import Progress
from bot.helpscout.text import html_to_text
from bot.helpscout.webhook import WebhookReceiver
from bot.mail.unicode import plain_unicode
from bot.model import Message
from bot.sources.base import Batch, CursorStore, Inbound
from bot.vocab import Author, HelpScoutStatus, LineItem, SourceKind

log = structlog.get_logger(__name__)

THREAD_TYPES = frozenset({"customer", "message", "lineitem"})
# A workflow's line item counts as a status change when it closed the conversation or
# marked it spam (its thread status says so; "nochange" otherwise).
WORKFLOWS = frozenset({"manual-workflow", "automatic-workflow"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PEOPLE_ONLY = frozenset({"chat", "phone"})
# List requests per cycle: 1,000 conversations, about 5 s of a Standard plan's 200 a
# minute. A longer listing resumes in the next cycle, after what changed lately.
LIST_BUDGET = 40


class HelpScoutSource:
    name = SourceKind.HELPSCOUT

    def __init__(self, client: HelpScoutClient, settings: HelpScoutSettings,
                 cursors: CursorStore, *, poll_seconds: float, clock: Clock,
                 overlap_seconds: float = 120, own_user_id: int | None = None,
                 webhook_host: str = "0.0.0.0", backfill_hours: float = 24.0,
                 list_budget: int | None = None) -> None:
        self.client = client
        self.settings = settings
        self.cursors = cursors
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.overlap = timedelta(seconds=overlap_seconds)
        self.backfill = timedelta(hours=backfill_hours)
        self.list_budget = max(1, list_budget or LIST_BUDGET)
        self.own_user_id = own_user_id
        self.webhook_host = webhook_host
        self.cursor_key = f"helpscout:{settings.mailbox_id}"
        self.receiver: WebhookReceiver | None = None
        self._webhook_tried = False
        self._me_tried = own_user_id is not None
        if own_user_id is not None:
            client.own_user_id = own_user_id
        self._wake = asyncio.Event()

    # -- polling ----------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[Batch]:
        await self._start_webhook()
        await self._learn_own_user()
        progress = Progress.decode(self.cursors.get_cursor(self.cursor_key))
        if progress.watermark is None and progress.floor is None:
            progress = replace(progress, floor=self.clock.now() - self.backfill)
        run = _Run(budget=self.list_budget)
        if progress.in_pass:
            # a pass left over from an earlier cycle: what changed lately comes first
            head_from = progress.head or progress.pass_started or progress.pass_since
            assert head_from is not None
            head_run = _Run(budget=run.budget)
            async for batch in self._listing(head_from - self.overlap, 1, head_run,
                                             progress, head=True):
                yield batch
            run.budget = head_run.budget
            if head_run.finished and head_run.started is not None:
                progress = replace(progress, head=head_run.started)
            start = max(1, progress.pass_page - 1)  # one page of overlap: shifts between cycles
        else:
            since = (progress.watermark - self.overlap if progress.watermark is not None
                     else progress.floor)
            progress = replace(progress, pass_since=since, pass_page=1, pass_started=None)
            start = 1
        if run.budget <= 0:
            log.info("help scout list budget spent on recent changes; the pass resumes next cycle",
                     mailbox=self.settings.mailbox_id, page=progress.pass_page)
            yield Batch(items=[], cursor=progress.encode(), initial=progress.watermark is None)
            return
        async for batch in self._listing(progress.pass_since, start, run, progress, head=False):
            yield batch

    async def _listing(self, since: datetime | None, start: int, run: _Run,
                       progress: Progress, *, head: bool) -> AsyncIterator[Batch]:
        """Read pages from ``start`` within ``run.budget``; each batch carries the progress
        to store with it (the head listing leaves the pass where it was)."""
        initial = progress.watermark is None
        # The head wants only conversations created lately: newest first, and it stops at
        # the first page that reaches back past ``since`` (usually its first page).
        pages = self.client.conversation_pages(self.settings.mailbox_id, since,
                                               start_page=start,
                                               sort_order="desc" if head else "asc")
        previous: Page | None = None
        try:
            while run.budget > 0:
                page = await self._next_page(pages)
                if page is None:
                    break
                run.budget -= 1
                if run.started is None:
                    run.started = page.server_time or self.clock.now()
                    run.first_total = page.total_elements
                extra: list[Inbound] = []
                if previous is not None and page.total_elements != previous.total_elements:
                    # the result set changed between two pages: items may have moved back
                    # onto the page just read; read it again and take what is new there
                    extra = await self._reread(since, previous.number, run,
                                               "desc" if head else "asc")
                run.note(page)
                before, items = self._split(extra + self._page_items(page), run, progress)
                if before:
                    yield Batch(items=before, cursor=None, initial=True)
                if head:
                    cursor = progress.encode()
                elif page.next_page is None:
                    stable = run.stable()
                    if not stable:
                        log.info("help scout listing shrank while paging; watermark kept",
                                 mailbox=self.settings.mailbox_id)
                    cursor = progress.at_page(page.number, run.started).completed(
                        advance=stable).encode()
                else:
                    cursor = progress.at_page(page.next_page, run.started).encode()
                yield Batch(items=items, cursor=cursor, initial=initial)
                if page.next_page is None or (head and _reaches_back(page, since)):
                    run.finished = True
                    break
                previous = page
        finally:
            await pages.aclose()
        if not run.finished and run.budget <= 0 and not head:
            log.info("help scout list budget for this cycle spent; the pass resumes next cycle",
                     mailbox=self.settings.mailbox_id)

    def _split(self, items: list[Inbound], run: _Run,
               progress: Progress) -> tuple[list[Inbound], list[Inbound]]:
        """The page's new items: threads from before the first start (recorded, never
        answered: they go in a backfill batch of their own), and the rest."""
        fresh = [i for i in items if i.ref not in run.refs]
        run.refs.update(i.ref for i in fresh)
        floor = progress.floor
        if floor is None:
            return [], fresh
        return ([i for i in fresh if i.received_at < floor],
                [i for i in fresh if i.received_at >= floor])

    async def _reread(self, since: datetime | None, number: int, run: _Run,
                      sort_order: str) -> list[Inbound]:
        if run.budget <= 0:
            return []
        run.budget -= 1
        run.shifts += 1
        log.info("help scout page shift detected; page read again",
                 mailbox=self.settings.mailbox_id, page=number)
        pages = self.client.conversation_pages(self.settings.mailbox_id, since,
                                               start_page=number, sort_order=sort_order)
        try:
            page = await self._next_page(pages)
        finally:
            await pages.aclose()
        return self._page_items(page) if page is not None else []

    async def reread(self, conversation_ids: Sequence[int]) -> AsyncIterator[Batch]:
        """These conversations as they are now, one batch each (a merged one: its survivor)."""
        await self._learn_own_user()
        for conv in conversation_ids:
            try:
                conversation = await self.client.get_conversation(conv, embed_threads=True)
            except HelpScoutUnavailable as exc:
                raise SourceError(f"Help Scout mailbox {self.settings.mailbox_id}: {exc}") from exc
            except AuthError:
                raise
            except HelpScoutError as exc:  # deleted (404) or refused: the timer decides alone
                log.warning("help scout conversation could not be read again",
                            conversation=conv, error=str(exc))
                continue
            page = Page(items=[conversation], number=1, total_elements=1, total_pages=1,
                        server_time=None)
            yield Batch(items=self._page_items(page), cursor=None, initial=False)

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
        return [item for conversation in page.items for item in self.threads_of(conversation)]

    def threads_of(self, conversation: dict[str, Any]) -> list[Inbound]:
        """A conversation's threads the bot reads, oldest first (the rebuild reads them too)."""
        if conversation.get("mailboxId") not in (None, self.settings.mailbox_id):
            return []
        if conversation.get("state", "published") != "published":
            return []  # drafts and deleted conversations are nobody's ticket yet
        if conversation.get("type") in PEOPLE_ONLY:
            return []  # chats and calls are answered live, by people
        spam = conversation.get("status") == HelpScoutStatus.SPAM
        embedded = conversation.get("_embedded")
        threads = embedded.get("threads") if isinstance(embedded, dict) else None
        items: list[Inbound] = []
        for thread in sorted(threads or [], key=_thread_order):
            item = self._inbound_safely(conversation, thread)
            # spam is nobody's ticket; only the people's changes to it are read
            if item is not None and not (spam and item.change is None):
                items.append(item)
        ended = self._ended_without_thread(conversation, threads or [])
        return [*items, ended] if ended is not None else items

    def _ended_without_thread(self, conversation: dict[str, Any],
                              threads: list[dict[str, Any]]) -> Inbound | None:
        """The conversation's own status, read on every poll: closed or spam with no thread
        saying so (an integration's write, a line item beyond the embedded threads) is still
        an agent's change, dated by its `closedAt`, signed by its `closedByUser`."""
        status = conversation.get("status")
        conv_id = conversation.get("id")
        if status not in (HelpScoutStatus.CLOSED, HelpScoutStatus.SPAM) \
                or not isinstance(conv_id, int) \
                or any(t.get("status") == status for t in threads):
            return None
        at = (parse_time(conversation.get("closedAt"))
              or parse_time(conversation.get("userUpdatedAt")) or self.clock.now())
        by = conversation.get("closedByUser") or {}
        name = " ".join(str(by.get(k) or "") for k in ("first", "last")).strip()
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        message = Message(
            source=SourceKind.HELPSCOUT, message_id=None,
            from_addr=str(by.get("email") or "").lower(), from_name=name,
            subject=str(conversation.get("subject") or ""), text=f"marked {status}",
            received_at=at, mailbox_id=conversation.get("mailboxId"), conversation_id=conv_id,
            conversation_number=conversation.get("number"),
            content_hash=hashlib.sha256(f"status\0{conv_id}\0{status}\0{stamp}".encode())
            .hexdigest())
        return Inbound(source=SourceKind.HELPSCOUT, ref=f"helpscout:{conv_id}:{status}-{stamp}",
                       received_at=at, message=message, author=Author.AGENT,
                       status=HelpScoutStatus(status), change=LineItem.STATUS)

    # -- one thread -------------------------------------------------------------------------
    def _inbound_safely(self, conversation: dict[str, Any],
                        thread: dict[str, Any]) -> Inbound | None:
        """A thread that cannot be read becomes an item in error, which the pipeline
        quarantines with the reason: it must not stop every later conversation."""
        try:
            return self.inbound(conversation, thread)
        except Exception as exc:  # noqa: BLE001 - hostile thread bodies fail in many ways
            conv_id, thread_id = conversation.get("id"), thread.get("id")
            log.warning("help scout thread unreadable", conversation=conv_id, thread=thread_id,
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return Inbound(source=SourceKind.HELPSCOUT, ref=f"helpscout:{conv_id}:{thread_id}",
                           received_at=self.clock.now(),
                           raw=json.dumps(thread, default=str)[:1_000_000].encode(),
                           error=f"unreadable Help Scout thread: {type(exc).__name__}: {exc}"[:500])

    def author(self, thread: dict[str, Any]) -> Author:
        if thread.get("type") == "customer":
            return Author.CUSTOMER  # even if it quotes our reply, fingerprint and all
        created_by = thread.get("createdBy") or {}
        if marker.is_ours(thread.get("body")):
            return Author.SELF
        source = thread.get("source") or {}
        if (self.own_user_id is not None and created_by.get("id") == self.own_user_id
                and source.get("type") == "api"):
            return Author.SELF
        return Author.AGENT

    def inbound(self, conversation: dict[str, Any], thread: dict[str, Any]) -> Inbound | None:
        """The Inbound for one thread, or None for threads that are neither messages nor
        a person's change (notes, drafts, merges, imports)."""
        if thread.get("type") not in THREAD_TYPES:
            return None
        if thread.get("state", "published") != "published":
            return None
        change = _change(thread)
        if thread.get("type") == "lineitem" and change is None:
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
        if author == Author.CUSTOMER:
            email = person.get("email") or customer.get("email") or primary.get("email") or ""
            customer_id = person.get("id") or customer.get("id") or primary.get("id")
        else:
            email = person.get("email") or ""
            customer_id = customer.get("id") or primary.get("id")
        body = plain_unicode(str(thread.get("body") or ""))
        if change is not None:
            action = thread.get("action") or {}
            body = html.escape(str(action.get("text") or change.value))
        name = plain_unicode(" ".join(str(person.get(k) or "") for k in ("first", "last")).strip())
        message = Message(
            source=SourceKind.HELPSCOUT, message_id=None, from_addr=str(email).strip().lower(),
            from_name=name, subject=plain_unicode(str(conversation.get("subject") or "")),
            text=marker.strip(html_to_text(body)), html=body or None,
            to=tuple(str(a).lower() for a in thread.get("to") or ()),
            cc=tuple(str(a).lower() for a in thread.get("cc") or ()),
            received_at=created, mailbox_id=conversation.get("mailboxId"),
            conversation_id=conv_id, conversation_number=conversation.get("number"),
            thread_id=thread_id, customer_id=customer_id if isinstance(customer_id, int) else None,
            tags=tuple(_tags(conversation)),
            content_hash=thread_fingerprint(thread, body))
        status = thread.get("status")
        if status not in set(HelpScoutStatus):  # "nochange", or absent: the conversation's
            status = conversation.get("status")
        return Inbound(source=SourceKind.HELPSCOUT, ref=f"helpscout:{conv_id}:{thread_id}",
                       received_at=created, message=message, author=author,
                       status=HelpScoutStatus(status) if status in set(HelpScoutStatus) else None,
                       change=change)

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
            self.client.own_user_id = me["id"]

    async def aclose(self) -> None:
        """The client belongs to the channel too; the channel closes it."""
        if self.receiver is not None:
            await self.receiver.aclose()
            self.receiver = None


@dataclass
class _Run:
    """One cycle's reading of a listing: its request budget and what it saw."""

    budget: int
    started: datetime | None = None
    first_total: int | None = None
    last_total: int | None = None
    created_since_start: set[int] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    shifts: int = 0
    finished: bool = False

    def note(self, page: Page) -> None:
        """Conversations created after the first page was answered were not in its total."""
        self.last_total = page.total_elements
        for conversation in page.items:
            created = parse_time(conversation.get("createdAt"))
            if (self.started is not None and created is not None and created > self.started
                    and isinstance(conversation.get("id"), int)):
                self.created_since_start.add(conversation["id"])

    def stable(self) -> bool:
        """False when something may have been skipped: the result set lost more than the
        conversations created while we paged brought in (an insert hides a delete)."""
        if self.first_total is None or self.last_total is None:
            return True
        return self.last_total >= self.first_total + len(self.created_since_start)


def _reaches_back(page: Page, since: datetime | None) -> bool:
    """A newest-first page holding a conversation created before ``since``: the rest are older."""
    created = [parse_time(c.get("createdAt")) for c in page.items]
    return since is None or any(c is not None and c < since for c in created)


def _thread_order(thread: dict[str, Any]) -> tuple[datetime, int]:
    thread_id = thread.get("id")
    return (parse_time(thread.get("createdAt")) or EPOCH,
            thread_id if isinstance(thread_id, int) else 0)


def thread_fingerprint(thread: dict[str, Any], body: str) -> str:
    """What a thread is, whichever conversation holds it: who wrote what, when.

    A merge moves threads into the surviving conversation, where they arrive under new
    references (and possibly new ids); the same fingerprint recognises them there.
    """
    person = thread.get("createdBy") or {}
    text = f"{thread.get('type')}\0{person.get('id')}\0{thread.get('createdAt')}\0{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _change(thread: dict[str, Any]) -> LineItem | None:
    """The change a line item records, when it is one the bot acts on."""
    if thread.get("type") != "lineitem":
        return None
    kind = str((thread.get("action") or {}).get("type") or "")
    if kind == LineItem.STATUS or (kind in WORKFLOWS and thread.get("status") in (
            HelpScoutStatus.CLOSED, HelpScoutStatus.SPAM)):
        return LineItem.STATUS
    if kind == LineItem.ASSIGNEE:
        return LineItem.ASSIGNEE
    return None


def _tags(conversation: dict[str, Any]) -> list[str]:
    names = []
    for tag in conversation.get("tags") or []:
        name = tag.get("tag") if isinstance(tag, dict) else tag
        if name:
            names.append(str(name).lower())
    return names
