"""IMAP source: every new message of one folder, by UID, without disturbing the mailbox.

- Read-only: the folder is opened with EXAMINE and bodies are fetched with BODY.PEEK[], so
  `\\Seen` and every other flag stay as the human agents left them; nothing is moved or deleted.
- Cursor ``"{uidvalidity}:{last_uid}"`` lives in the store, written by the worker in the same
  transaction that records the batch: it only advances past mail that is recorded. While a
  first sync is unfinished it reads ``"{uidvalidity}:{last_uid}:{initial_until}"``, so a restart
  in the middle of a big backlog still treats the old mail as backfill.
- UIDVALIDITY change (a restored or rebuilt mailbox renumbers every message): every message of
  the folder is offered again under its new ref. The store's ledger recognises what it has seen
  by Message-ID and content hash (as mbsync does), so nothing is lost and nothing is answered
  twice; that matching is the store's job, not this module's.
- Push: IMAP IDLE, when offered, is only a wake-up: the worker runs `batches()` after every
  `wait()`, and `wait()` returns at once when the connection breaks, so a dead socket never
  looks like an empty mailbox. Without IDLE, `wait()` sleeps (polling).
- imapclient blocks, so one connection is driven by one dedicated thread; the event loop
  only awaits it.
- A backlog is fetched one batch ahead: the IMAP thread reads the next batch while the worker
  records and answers this one (at most two batches in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bot.config import ImapSettings
from bot.errors import SourceError
from bot.imap_connection import (
    close_quietly,
    connect,
    describe,
    server_text,
    transient,
    warn_about_tls,
)
from bot.sources.base import Batch, CursorStore, Inbound
from bot.vocab import SourceKind

log = structlog.get_logger(__name__)

T = TypeVar("T")
BODY_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE"]
IDLE_SLICE = 1.0  # seconds between checks of the stop flag while idling
WAKE_RESPONSES = {b"EXISTS", b"RECENT"}


def ledger_ref(folder: str, uidvalidity: int, uid: int) -> str:
    """The ledger key of one message: unique for ever (a new UIDVALIDITY is a new key)."""
    return f"imap:{folder}:{uidvalidity}:{uid}"


# -- cursor -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int
    initial_until: int | None = None  # set while a first sync is unfinished

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        parts = text.split(":")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3):
            log.warning("unreadable IMAP cursor; syncing as on a first start", cursor=text)
            return None
        return cls(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None)

    def __str__(self) -> str:
        if self.initial_until is not None and self.last_uid < self.initial_until:
            return f"{self.uidvalidity}:{self.last_uid}:{self.initial_until}"
        return f"{self.uidvalidity}:{self.last_uid}"


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None


class _ValidityChanged(Exception):
    """The folder was renumbered between the search and a fetch: start the drain over."""


# -- the source ---------------------------------------------------------------------------
class ImapSource:
    """`Source` for one IMAP folder. See the module docstring for the guarantees."""

    name = SourceKind.IMAP

    def __init__(self, settings: ImapSettings, cursors: CursorStore, *, poll_seconds: float,
                 ca_file: Path | None = None, tls_insecure: bool = False, batch_size: int = 200,
                 idle_renew_seconds: float = 540, max_batch_bytes: int = 32 * 1024 * 1024,
                 timeout: float = 30.0, retry_attempts: int = 6, retry_wait: float = 1.0,
                 retry_wait_max: float = 60.0) -> None:
        self.settings = settings
        self.cursors = cursors
        self.poll_seconds = poll_seconds
        self.ca_file = ca_file
        self.tls_insecure = tls_insecure
        self.batch_size = max(1, batch_size)
        self.idle_renew_seconds = min(idle_renew_seconds, 600.0)  # RFC 2177: well under 29 min
        self.max_batch_bytes = max_batch_bytes
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self.retry_wait = retry_wait
        self.retry_wait_max = retry_wait_max
        self.cursor_key = f"imap:{settings.host}:{settings.user}:{settings.folder}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-source")
        # Touched only by the executor's thread:
        self._client: IMAPClient | None = None
        self._selected: FolderState | None = None
        # UIDNEXT when the last drain completed: wait() wakes at once if the folder grew since.
        self._seen_uidnext: int | None = None
        self._stops: set[threading.Event] = set()
        # Written to stop an IDLE at once: the idling thread selects on it beside the socket,
        # so SIGTERM is not kept waiting for the next IDLE_SLICE.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._closed = False
        # Why the last wait() returned: mail, timeout, stopped, dropped, poll or unavailable.
        self.last_wake: str | None = None
        warn_about_tls(settings, tls_insecure)

    # -- batches ----------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[Batch]:
        self._interrupt_idle()
        for _ in range(3):
            try:
                async for batch in self._drain():
                    yield batch
                return
            except _ValidityChanged:
                log.warning("IMAP folder renumbered during a sync; starting over",
                            folder=self.settings.folder)
        raise SourceError(f"IMAP folder {self.settings.folder!r} keeps changing its UIDVALIDITY")

    async def _drain(self) -> AsyncIterator[Batch]:
        cursor = Cursor.parse(self.cursors.get_cursor(self.cursor_key))  # the store is the truth
        state, uids = await self._retrying(self._search, cursor)
        uv = state.uidvalidity
        if cursor is None:
            initial_until: int | None = uids[-1] if uids else 0
        elif cursor.uidvalidity != uv:
            log.warning("IMAP UIDVALIDITY changed: offering every message again; the ledger "
                        "matches them by Message-ID and content hash",
                        folder=self.settings.folder, old=cursor.uidvalidity, new=uv,
                        messages=len(uids))
            # An unfinished first sync stays a first sync under the new numbering.
            initial_until = (uids[-1] if uids else 0) if cursor.initial_until is not None else None
        else:
            initial_until = cursor.initial_until
        if not uids:
            if cursor is None or cursor.uidvalidity != uv:
                yield Batch(items=[], cursor=str(Cursor(uv, 0)), initial=cursor is None)
            self._seen_uidnext = state.uidnext
            return
        # One fetch ahead: the IMAP thread reads the next batch while the worker records and
        # answers this one. At most two batches are in memory.
        pending: deque[tuple[asyncio.Future[list[Inbound]], list[int], bool]] = deque()
        try:
            async with contextlib.aclosing(self._groups(uv, uids, initial_until)) as groups:
                async for group, initial in groups:
                    pending.append((asyncio.ensure_future(self._retrying(self._fetch, uv, group)),
                                    group, initial))
                    if len(pending) > 1:
                        batch = await self._batch(pending[0], uv, initial_until)
                        pending.popleft()
                        yield batch
            while pending:
                batch = await self._batch(pending[0], uv, initial_until)
                pending.popleft()
                yield batch
        finally:  # the worker stopped early, or a fetch failed: nothing may run on unawaited
            for fetch, _, _ in pending:
                fetch.cancel()
            await asyncio.gather(*(fetch for fetch, _, _ in pending), return_exceptions=True)
        self._seen_uidnext = state.uidnext

    async def _groups(self, uv: int, uids: list[int], initial_until: int | None,
                      ) -> AsyncGenerator[tuple[list[int], bool], None]:
        """UIDs to fetch together (``batch_size`` at most, ``max_batch_bytes`` at most) and
        whether they belong to an unfinished first sync."""
        for part in _split_at(uids, initial_until):
            initial = initial_until is not None and part[-1] <= initial_until
            for chunk in _chunks(part, self.batch_size):
                sizes = await self._retrying(self._sizes, uv, chunk)
                for group in _by_bytes(chunk, sizes, self.max_batch_bytes):
                    yield group, initial

    @staticmethod
    async def _batch(fetched: tuple[asyncio.Future[list[Inbound]], list[int], bool], uv: int,
                     initial_until: int | None) -> Batch:
        fetch, group, initial = fetched
        return Batch(items=await fetch, cursor=str(Cursor(uv, group[-1], initial_until)),
                     initial=initial)

    # thread side
    def _ensure(self) -> IMAPClient:
        if self._closed:
            raise SourceError("IMAP source is closed")
        if self._client is None:
            self._client = connect(self.settings, ca_file=self.ca_file,
                                   tls_insecure=self.tls_insecure, timeout=self.timeout)
            self._selected = None
            log.debug("IMAP connected", host=self.settings.host, user=self.settings.user)
        return self._client

    def _select(self, client: IMAPClient) -> FolderState:
        """EXAMINE (read-only SELECT): a fresh view of the folder, and no flag ever changes."""
        try:
            info = client.select_folder(self.settings.folder, readonly=True)
        except IMAPClientError as exc:
            if isinstance(exc, IMAPClientAbortError):
                raise
            raise SourceError(f"IMAP folder {self.settings.folder!r} cannot be opened: "
                              f"{server_text(exc)}") from None
        uidnext = info.get(b"UIDNEXT")
        self._selected = FolderState(int(info[b"UIDVALIDITY"]),
                                     int(uidnext) if uidnext is not None else None)
        return self._selected

    def _selected_with(self, uidvalidity: int) -> IMAPClient:
        """The connection, reopened if it broke, still on the numbering the search used."""
        client = self._ensure()
        state = self._selected or self._select(client)
        if state.uidvalidity != uidvalidity:
            raise _ValidityChanged()
        return client

    def _search(self, cursor: Cursor | None) -> tuple[FolderState, list[int]]:
        client = self._ensure()
        state = self._select(client)
        if cursor is None or cursor.uidvalidity != state.uidvalidity:
            uids = client.search("ALL")
        else:
            # `n:*` always matches the last message, even when it is older than n.
            uids = [u for u in client.search(["UID", f"{cursor.last_uid + 1}:*"])
                    if u > cursor.last_uid]
        return state, sorted(int(u) for u in uids)

    def _sizes(self, uidvalidity: int, uids: list[int]) -> dict[int, int]:
        client = self._selected_with(uidvalidity)
        rows = client.fetch(uids, [b"RFC822.SIZE"])
        return {int(uid): int(row.get(b"RFC822.SIZE", 0)) for uid, row in rows.items()}

    def _fetch(self, uidvalidity: int, uids: list[int]) -> list[Inbound]:
        client = self._selected_with(uidvalidity)
        rows = client.fetch(uids, BODY_ITEMS)
        folder = self.settings.folder
        items = []
        for uid in uids:
            row = rows.get(uid)
            if row is None:  # expunged since the search
                continue
            raw = row.get(b"BODY[]")
            if raw is None:  # the server could not read it: quarantined downstream, not lost
                log.warning("IMAP server returned no body", folder=folder, uid=uid)
            arrived = row.get(b"INTERNALDATE")
            if not isinstance(arrived, datetime):
                raise SourceError(f"IMAP server gave no INTERNALDATE for UID {uid} in {folder}")
            if arrived.tzinfo is None:
                arrived = arrived.replace(tzinfo=UTC)
            items.append(Inbound(source=SourceKind.IMAP,
                                 ref=ledger_ref(folder, uidvalidity, uid),
                                 raw=bytes(raw or b""), received_at=arrived.astimezone(UTC),
                                 folder=folder, uidvalidity=uidvalidity, uid=uid))
        return items

    # -- wait (IDLE) ------------------------------------------------------------------------
    async def wait(self, timeout: float) -> None:
        if timeout <= 0 or self._closed:
            return
        started = time.monotonic()
        stop = threading.Event()
        self._stops.add(stop)
        try:
            outcome = await self._call(self._idle, timeout, stop)
        except asyncio.CancelledError:
            stop.set()
            self._wake_idle()  # the thread leaves IDLE now
            raise
        except Exception as exc:  # noqa: BLE001 - any cause: waited out like a poll
            # Cannot connect now: wait as a poll would; the next batches() reports the error.
            outcome = "unavailable"
            log.debug("IMAP idle unavailable", error=describe(exc, self.settings))
        finally:
            self._stops.discard(stop)
        self.last_wake = outcome
        if outcome in ("poll", "unavailable"):  # no push: poll every SUPPORTBOT_POLL_SECONDS
            remaining = min(timeout, self.poll_seconds) - (time.monotonic() - started)
            await asyncio.sleep(max(0.0, remaining))

    def _interrupt_idle(self) -> None:
        for stop in list(self._stops):
            stop.set()
        self._wake_idle()

    def _wake_idle(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._wake_w.send(b"\0")

    # thread side
    def _idle(self, timeout: float, stop: threading.Event) -> str:
        deadline = time.monotonic() + timeout
        connected = False
        try:
            client = self._ensure()
            connected = True
            if not client.has_capability("IDLE"):
                return "poll"
            state = self._select(client)  # fresh view: anything newer is reported by IDLE itself
            if self._seen_uidnext is not None and state.uidnext is not None \
                    and state.uidnext > self._seen_uidnext:
                self._seen_uidnext = state.uidnext  # wake once per change, never in a loop
                return "mail"
            return self._idle_loop(client, deadline, stop)
        except Exception as exc:
            self._drop()
            if connected and transient(exc):
                log.warning("IMAP connection lost while idling; catching up",
                            error=describe(exc, self.settings))
                return "dropped"
            raise

    def _idle_loop(self, client: IMAPClient, deadline: float, stop: threading.Event) -> str:
        client.idle()
        renew_at = time.monotonic() + self.idle_renew_seconds
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= renew_at or _buffered(client):
                # DONE returns every response the server sent, even those already sitting in
                # our read buffer (invisible to select); IDLE again restarts the server's timer.
                if _wakes(client.idle_done()[1]):
                    return "mail"
                client.idle()
                renew_at = time.monotonic() + self.idle_renew_seconds
                continue
            wait = min(IDLE_SLICE, deadline - now, renew_at - now)
            ready = select.select([client.socket(), self._wake_r], [], [], wait)[0]
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(64):
                        pass
            if client.socket() not in ready:
                continue  # the loop looks at the stop flag
            responses = client.idle_check(timeout=0)
            if any(r[0] == b"BYE" for r in responses):
                raise ConnectionError("server said BYE")
            if not responses:
                # Readable yet nothing to parse: EOF (or half a TLS record). DONE tells which:
                # on a dead socket it raises, which is exactly what we want to know.
                if _wakes(client.idle_done()[1]):
                    return "mail"
                client.idle()
                continue
            if _wakes(responses):
                client.idle_done()
                return "mail"
        client.idle_done()
        return "stopped" if stop.is_set() else "timeout"

    # -- plumbing ---------------------------------------------------------------------------
    def _drop(self) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is not None:
            close_quietly(client)

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except _ValidityChanged:
            raise
        except BaseException:
            self._drop()  # whatever went wrong, the next call starts from a clean connection
            raise

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, fn, *args)

    async def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the IMAP thread; reconnect with jittered backoff on network trouble."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(transient),
            stop=stop_after_attempt(self.retry_attempts),
            wait=wait_random_exponential(multiplier=self.retry_wait, max=self.retry_wait_max),
            before_sleep=self._log_retry, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._call(fn, *args)
        except (SourceError, _ValidityChanged):
            raise
        except Exception as exc:
            if transient(exc):
                raise SourceError(f"{describe(exc, self.settings)} (gave up after "
                                  f"{self.retry_attempts} attempts)") from exc
            raise SourceError(describe(exc, self.settings)) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("IMAP connection failed; reconnecting", attempt=state.attempt_number,
                    wait=round(state.next_action.sleep if state.next_action else 0.0, 2),
                    error=describe(exc, self.settings) if exc else None)

    async def aclose(self) -> None:
        """Log out and stop the IMAP thread (interrupting an IDLE in progress)."""
        if self._closed:
            return
        self._interrupt_idle()
        logout = asyncio.ensure_future(self._call(self._logout))
        try:
            await asyncio.wait_for(asyncio.shield(logout), timeout=5.0)
        except TimeoutError:
            self._abort_socket()  # unblocks a thread stuck reading a stalled connection
            await asyncio.gather(logout, return_exceptions=True)
        except Exception as exc:  # noqa: BLE001 - logging out is best effort
            log.debug("IMAP logout failed", error=describe(exc, self.settings))
        self._closed = True
        self._executor.shutdown(wait=True)
        self._wake_r.close()
        self._wake_w.close()

    def _logout(self) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is None:
            return
        try:
            client.socket().settimeout(5.0)
            client.logout()
        except Exception:  # noqa: BLE001 - best effort: the socket is closed either way
            close_quietly(client)

    def _abort_socket(self) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.socket().shutdown(socket.SHUT_RDWR)


# -- helpers ------------------------------------------------------------------------------
def _wakes(responses: Iterable[tuple[Any, ...]]) -> bool:
    return any(len(r) > 1 and r[1] in WAKE_RESPONSES for r in responses)


def _buffered(client: IMAPClient) -> bool:
    """Bytes already read off the socket but not parsed yet, which select() cannot see.

    Dovecot sends the updates that were pending when IDLE began in the same packet as
    '+ idling', so they land in imaplib's read buffer; missing them delays a wake-up until
    the next renewal. (Looks at imaplib's reader: there is no public API for this.)
    """
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    peek = getattr(getattr(client._imap, "file", None), "peek", None)
    if peek is None:
        return False
    previous = sock.gettimeout()
    sock.settimeout(0.0)  # peek on an empty buffer would otherwise block on the socket
    try:
        return bool(peek(1))
    except (OSError, ValueError):
        return False
    finally:
        sock.settimeout(previous)


def _split_at(uids: list[int], boundary: int | None) -> list[list[int]]:
    """UIDs of an unfinished first sync and the rest, so no batch mixes the two."""
    if boundary is None:
        return [uids]
    parts = [[u for u in uids if u <= boundary], [u for u in uids if u > boundary]]
    return [p for p in parts if p]


def _chunks(uids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(uids), size):
        yield list(uids[start:start + size])


def _by_bytes(uids: list[int], sizes: dict[int, int], limit: int) -> Iterable[list[int]]:
    """Groups under ``limit`` bytes (a single larger message goes alone); gone UIDs dropped."""
    group: list[int] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue
        if group and total + sizes[uid] > limit:
            yield group
            group, total = [], 0
        group.append(uid)
        total += sizes[uid]
    if group:
        yield group
