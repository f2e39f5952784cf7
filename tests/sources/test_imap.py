"""The IMAP source against a real Dovecot: nothing missed, nothing twice, mailbox untouched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, TypeVar

import pytest
from imapclient import IMAPClient
from structlog.testing import capture_logs

import bot.sources.imap as imap_module
from bot.channels.imap_sent import ImapSentFolder
from bot.config import ImapSettings
from bot.errors import AuthError, ChannelError, SourceError
from bot.sources.base import Batch, Inbound
from bot.sources.imap import ImapSource
from tests.servers.dovecot import Mailbox, free_port

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

T = TypeVar("T")
GENEROUS = 20.0  # seconds: only a hung test ever reaches this


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def mail(n: int, *, subject: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {n} <c{n}@customer.example>"
    msg["To"] = "support@example.test"
    msg["Subject"] = subject or f"Question {n}"
    msg["Message-ID"] = f"<q{n}@customer.example>"
    msg.set_content(f"Hello, this is question number {n}.\n")
    return msg.as_bytes(policy=SMTP)  # CRLF, as stored by the server


class Cursors:
    """The store's cursor table, as the worker uses it: one value per source."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_cursor(self, key: str) -> str | None:
        return self.values.get(key)


def source(box: Mailbox, cursors: Cursors, **kw: Any) -> ImapSource:
    settings = kw.pop("settings", None) or box.settings()
    kw.setdefault("retry_wait", 0.02)
    return ImapSource(settings, cursors, poll_seconds=30, **kw)


async def drain(src: ImapSource, cursors: Cursors, limit: int | None = None) -> list[Batch]:
    """What the worker does: record each batch, store its cursor, then ask for the next."""
    out: list[Batch] = []
    gen = src.batches()
    try:
        async for batch in gen:
            out.append(batch)
            if batch.cursor is not None:
                cursors.values[src.cursor_key] = batch.cursor
            if limit is not None and len(out) >= limit:
                break
    finally:
        await gen.aclose()
    return out


def drain_once(box: Mailbox, cursors: Cursors, **kw: Any) -> list[Batch]:
    async def go() -> list[Batch]:
        src = source(box, cursors, **kw)
        try:
            return await drain(src, cursors)
        finally:
            await src.aclose()
    return run(go())


def uids(batches: list[Batch]) -> list[int]:
    return [item.uid for b in batches for item in b.items if item.uid is not None]


# -- finding mail ---------------------------------------------------------------------------
def test_new_mail_is_found_with_server_arrival_time(mailbox: Mailbox) -> None:
    arrived = datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    first = mailbox.append("INBOX", mail(1), internaldate=arrived)
    second = mailbox.append("INBOX", mail(2))
    uv = mailbox.uidvalidity()
    cursors = Cursors()

    batches = drain_once(mailbox, cursors)

    items = [i for b in batches for i in b.items]
    assert [i.ref for i in items] == [f"imap:INBOX:{uv}:{first}", f"imap:INBOX:{uv}:{second}"]
    assert items[0].raw == mail(1)
    assert items[0].received_at == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert items[0].received_at.tzinfo is not None
    assert all(i.source == "imap" and i.folder == "INBOX" and i.uidvalidity == uv for i in items)
    assert all(b.initial for b in batches)  # no cursor yet: a first sync
    assert cursors.values[f"imap:127.0.0.1:{mailbox.user.name}:INBOX"] == f"{uv}:{second}"


def test_empty_folder_first_sync_stores_a_cursor(mailbox: Mailbox) -> None:
    mailbox.append("INBOX", mail(1))  # creates the mailbox ...
    mailbox.server.doveadm("expunge", "-u", mailbox.user.name, "mailbox", "INBOX", "all")
    cursors = Cursors()

    batches = drain_once(mailbox, cursors)

    assert [(b.items, b.initial) for b in batches] == [([], True)]
    assert cursors.values[next(iter(cursors.values))] == f"{mailbox.uidvalidity()}:0"


def test_fetching_never_changes_flags(mailbox: Mailbox) -> None:
    unseen = mailbox.append("INBOX", mail(1))
    flagged = mailbox.append("INBOX", mail(2), flags=[b"\\Flagged", b"$Label1"])
    seen = mailbox.append("INBOX", mail(3), flags=[b"\\Seen"])
    before = {uid: mailbox.flags("INBOX", uid) for uid in (unseen, flagged, seen)}

    assert len(uids(drain_once(mailbox, Cursors()))) == 3

    after = {uid: mailbox.flags("INBOX", uid) for uid in (unseen, flagged, seen)}
    assert after == before
    assert b"\\Seen" not in after[unseen]
    assert mailbox.count() == 3  # nothing moved or deleted


def test_restart_resumes_from_the_stored_cursor_without_duplicates(mailbox: Mailbox) -> None:
    mailbox.append_many("INBOX", [mail(1), mail(2)])
    cursors = Cursors()
    drain_once(mailbox, cursors)
    # The `n:*` quirk: a search for UIDs above the last one still returns the last one.
    assert drain_once(mailbox, cursors) == []

    new = mailbox.append_many("INBOX", [mail(3), mail(4)])
    batches = drain_once(mailbox, cursors)  # a new source object: as after a restart

    assert uids(batches) == new
    assert not any(b.initial for b in batches)
    assert drain_once(mailbox, cursors) == []


def test_interrupted_first_sync_stays_a_first_sync(mailbox: Mailbox) -> None:
    """A crash in the middle of a big backlog must not turn old mail into new tickets."""
    old = mailbox.append_many("INBOX", [mail(n) for n in range(5)])
    cursors = Cursors()

    async def first_batch_only() -> list[Batch]:
        src = source(mailbox, cursors, batch_size=2)
        try:
            return await drain(src, cursors, limit=1)
        finally:
            await src.aclose()

    assert uids(run(first_batch_only())) == old[:2]
    new = mailbox.append("INBOX", mail(9))
    batches = drain_once(mailbox, cursors, batch_size=2)

    assert [(uids([b]), b.initial) for b in batches] == [
        (old[2:4], True), (old[4:], True), ([new], False)]
    assert cursors.values[next(iter(cursors.values))] == f"{mailbox.uidvalidity()}:{new}"


def test_uidvalidity_change_offers_every_message_again_with_new_refs(mailbox: Mailbox) -> None:
    mailbox.append_many("INBOX", [mail(1), mail(2), mail(3)])
    cursors = Cursors()
    first = [i for b in drain_once(mailbox, cursors) for i in b.items]

    new_uv = mailbox.recreate_folder("INBOX")
    with capture_logs() as logs:
        again = drain_once(mailbox, cursors)

    items = [i for b in again for i in b.items]
    assert [i.raw for i in items] == [i.raw for i in first]  # same mail, nothing lost
    assert all(i.uidvalidity == new_uv and i.ref.startswith(f"imap:INBOX:{new_uv}:")
               for i in items)
    assert not any(b.initial for b in again)  # the ledger, not backfill, recognises them
    assert any("UIDVALIDITY changed" in e["event"] for e in logs)
    assert drain_once(mailbox, cursors) == []


def test_connection_dropped_mid_fetch_reconnects_and_delivers_the_rest(mailbox: Mailbox) -> None:
    appended = mailbox.append_many("INBOX", [mail(n) for n in range(7)])
    cursors = Cursors()

    async def go() -> list[Batch]:
        src = source(mailbox, cursors, batch_size=2)
        out: list[Batch] = []
        try:
            async for batch in src.batches():
                out.append(batch)
                cursors.values[src.cursor_key] = batch.cursor or ""
                if len(out) == 1:
                    await asyncio.to_thread(mailbox.kick)  # the server drops us mid-drain
        finally:
            await src.aclose()
        return out

    with capture_logs() as logs:
        batches = run(go())

    assert uids(batches) == appended  # every message, in order, exactly once
    assert any(e["event"] == "IMAP connection failed; reconnecting" for e in logs)


def test_a_thousand_message_backlog_is_drained_in_bounded_batches(mailbox: Mailbox) -> None:
    appended = mailbox.append_many("INBOX", [mail(n) for n in range(1000)])
    cursors = Cursors()

    batches = drain_once(mailbox, cursors, batch_size=150)

    assert uids(batches) == appended
    assert max(len(b.items) for b in batches) <= 150
    assert len(batches) == 7
    last = [int((b.cursor or "").split(":")[1]) for b in batches]
    assert last == sorted(last) and last[-1] == appended[-1]


def test_the_next_batch_is_fetched_while_the_worker_handles_this_one(mailbox: Mailbox) -> None:
    """One fetch ahead, never more: the IMAP thread reads batch 2 while batch 1 is being
    recorded and answered, and batch 3 waits until batch 2 is asked for."""
    mailbox.append_many("INBOX", [mail(n) for n in range(6)])
    cursors = Cursors()
    started: list[list[int]] = []
    second = threading.Event()

    async def go() -> tuple[list[int], int, int]:
        src = source(mailbox, cursors, batch_size=2)
        real = src._fetch

        def spy(uidvalidity: int, group: list[int]) -> list[Inbound]:
            started.append(group)
            if len(started) == 2:
                second.set()
            return real(uidvalidity, group)

        src._fetch = spy  # type: ignore[method-assign]
        gen = src.batches()
        try:
            first = await gen.__anext__()
            # the worker is busy with the first batch: the second fetch starts meanwhile
            assert await asyncio.to_thread(second.wait, 10)
            await asyncio.sleep(0.2)
            fetched_while_busy = len(started)
            rest = [b async for b in gen]
        finally:
            await gen.aclose()
            await src.aclose()
        return uids([first, *rest]), fetched_while_busy, len(started)

    order, while_busy, total = run(go())
    assert order == sorted(order) and len(order) == 6
    assert while_busy == 2 and total == 3


def test_batches_are_also_bounded_by_bytes(mailbox: Mailbox) -> None:
    big = [mail(n, subject="x" * 2000) for n in range(6)]
    mailbox.append_many("INBOX", big)

    batches = drain_once(mailbox, Cursors(), max_batch_bytes=len(big[0]) * 2 + 10)

    assert [len(b.items) for b in batches] == [2, 2, 2]


# -- waking up ------------------------------------------------------------------------------
def test_idle_wakes_up_on_new_mail(mailbox: Mailbox) -> None:
    cursors = Cursors()

    async def go() -> list[Batch]:
        src = source(mailbox, cursors)
        try:
            await drain(src, cursors)
            waiting = asyncio.create_task(src.wait(600))  # far longer than the test may take
            await asyncio.sleep(0.3)  # most likely idling by now; either way it must wake
            await asyncio.to_thread(mailbox.append, "INBOX", mail(1))
            await asyncio.wait_for(waiting, GENEROUS)
            assert src.last_wake == "mail"
            return await drain(src, cursors)
        finally:
            await src.aclose()

    batches = run(go())
    assert [i.raw for b in batches for i in b.items] == [mail(1)]


def test_mail_arriving_between_sync_and_idle_wakes_at_once(mailbox: Mailbox) -> None:
    cursors = Cursors()

    async def go() -> str | None:
        src = source(mailbox, cursors)
        try:
            await drain(src, cursors)
            await asyncio.to_thread(mailbox.append, "INBOX", mail(1))
            await asyncio.wait_for(src.wait(600), GENEROUS)
            return src.last_wake
        finally:
            await src.aclose()

    assert run(go()) == "mail"



@pytest.mark.parametrize("tls", ["none", "ssl"])
def test_mail_arriving_as_idle_begins_wakes_at_once(mailbox: Mailbox, tls: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The narrowest race: mail lands after the folder check, just before IDLE starts.

    Dovecot then reports it in the same packet as '+ idling', where select() cannot see it.
    """
    cursors = Cursors()
    real_select = ImapSource._select

    def select_then_mail_arrives(self: ImapSource, client: IMAPClient) -> Any:
        state = real_select(self, client)
        mailbox.append("INBOX", mail(1))
        return state

    async def go() -> str | None:
        src = source(mailbox, cursors, settings=mailbox.settings(tls=tls),
                     ca_file=mailbox.server.cert_file)
        try:
            await drain(src, cursors)
            monkeypatch.setattr(ImapSource, "_select", select_then_mail_arrives)
            await asyncio.wait_for(src.wait(600), GENEROUS)
            return src.last_wake
        finally:
            await src.aclose()

    assert run(go()) == "mail"

def test_a_dead_connection_is_not_mistaken_for_no_mail(mailbox: Mailbox) -> None:
    cursors = Cursors()

    async def go() -> list[Batch]:
        src = source(mailbox, cursors)
        try:
            await drain(src, cursors)
            waiting = asyncio.create_task(src.wait(600))
            # Dovecot's own count of sessions: another process, there is nothing to await.
            while mailbox.connection_count() == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(mailbox.kick)
            await asyncio.wait_for(waiting, GENEROUS)
            assert src.last_wake == "dropped"
            await asyncio.to_thread(mailbox.append, "INBOX", mail(1))
            return await drain(src, cursors)  # reconnects by itself
        finally:
            await src.aclose()

    assert [i.raw for b in run(go()) for i in b.items] == [mail(1)]


def test_a_cancelled_idle_stops_at_once_not_at_its_next_check(
        mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM cancels the wait: the idling thread is woken, not left to notice a flag."""
    monkeypatch.setattr(imap_module, "IDLE_SLICE", 3600.0)  # the flag alone: an hour
    cursors = Cursors()

    async def go() -> None:
        src = source(mailbox, cursors)
        await drain(src, cursors)
        waiting = asyncio.create_task(src.wait(7200))
        while mailbox.connection_count() == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # in IDLE now
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        try:  # the IMAP thread is free again: a flag checked hourly would keep it in IDLE
            await asyncio.wait_for(drain(src, cursors), GENEROUS)
        finally:
            await src.aclose()

    run(go())


def test_wait_is_cancellable_and_close_leaves_no_thread(mailbox: Mailbox) -> None:
    cursors = Cursors()

    async def go() -> None:
        src = source(mailbox, cursors)
        await drain(src, cursors)
        waiting = asyncio.create_task(src.wait(600))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await src.aclose()

    run(go())
    assert not [t for t in threading.enumerate() if t.name.startswith("imap-source")]
    assert mailbox.connection_count() == 0



def test_idle_is_renewed_and_still_wakes_afterwards(mailbox: Mailbox) -> None:
    cursors = Cursors()

    async def go() -> list[str | None]:
        src = source(mailbox, cursors, idle_renew_seconds=0.3)  # several renewals per wait
        wakes = []
        try:
            await drain(src, cursors)
            await src.wait(1.0)
            wakes.append(src.last_wake)
            waiting = asyncio.create_task(src.wait(600))
            await asyncio.sleep(0.8)
            await asyncio.to_thread(mailbox.append, "INBOX", mail(1))
            await asyncio.wait_for(waiting, GENEROUS)
            wakes.append(src.last_wake)
        finally:
            await src.aclose()
        return wakes

    assert run(go()) == ["timeout", "mail"]


def test_without_idle_wait_polls(mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    real = IMAPClient.has_capability
    monkeypatch.setattr(IMAPClient, "has_capability",
                        lambda self, name: name.upper() != "IDLE" and real(self, name))
    cursors = Cursors()

    async def go() -> str | None:
        src = source(mailbox, cursors)
        try:
            await drain(src, cursors)
            await src.wait(0.2)
            return src.last_wake
        finally:
            await src.aclose()

    assert run(go()) == "poll"


def test_batches_interrupts_a_wait_in_progress(mailbox: Mailbox) -> None:
    """A catch-up asked for while the source idles must not queue behind the IDLE."""
    cursors = Cursors()

    async def go() -> list[Batch]:
        src = source(mailbox, cursors)
        try:
            await drain(src, cursors)
            waiting = asyncio.create_task(src.wait(600))
            await asyncio.sleep(0.3)
            batches = await asyncio.wait_for(drain(src, cursors), GENEROUS)
            await asyncio.wait_for(waiting, GENEROUS)
            assert src.last_wake == "stopped"
            return batches
        finally:
            await src.aclose()

    assert run(go()) == []

# -- failures -------------------------------------------------------------------------------
def test_refused_login_raises_auth_error_once(mailbox: Mailbox,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_connect = imap_module.connect

    def counting_connect(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return real_connect(*a, **kw)

    monkeypatch.setattr(imap_module, "connect", counting_connect)
    settings = mailbox.settings(password="wrong-password-123")

    with pytest.raises(AuthError) as err:
        drain_once(mailbox, Cursors(), settings=settings)

    message = str(err.value)
    assert mailbox.user.name in message and "127.0.0.1" in message
    assert "Authentication failed" in message
    assert "wrong-password-123" not in message
    assert len(calls) == 1  # not retried


def test_unreachable_server_gives_up_with_source_error(mailbox: Mailbox) -> None:
    settings = ImapSettings(host="127.0.0.1", port=free_port(), user="x", password="y",
                            tls="none")
    with pytest.raises(SourceError) as err:
        drain_once(mailbox, Cursors(), settings=settings, retry_attempts=2)
    assert "gave up after 2 attempts" in str(err.value)
    assert not isinstance(err.value, AuthError)


def test_a_missing_folder_is_a_clear_error(mailbox: Mailbox) -> None:
    with pytest.raises(SourceError, match="'Tickets' cannot be opened"):
        drain_once(mailbox, Cursors(), settings=mailbox.settings(folder="Tickets"))


# -- TLS ------------------------------------------------------------------------------------
def test_tls_refuses_a_self_signed_server_by_default(mailbox: Mailbox) -> None:
    with pytest.raises(SourceError) as err:
        drain_once(mailbox, Cursors(), settings=mailbox.settings(tls="ssl"))
    assert "certificate" in str(err.value) and "SUPPORTBOT_CA_FILE" in str(err.value)


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
def test_tls_connects_when_its_ca_is_given(mailbox: Mailbox, tls: str) -> None:
    mailbox.append("INBOX", mail(1))
    batches = drain_once(mailbox, Cursors(), settings=mailbox.settings(tls=tls),
                         ca_file=mailbox.server.cert_file)
    assert len(uids(batches)) == 1


def test_tls_insecure_connects_and_says_so_loudly(mailbox: Mailbox) -> None:
    mailbox.append("INBOX", mail(1))
    with capture_logs() as logs:
        batches = drain_once(mailbox, Cursors(), settings=mailbox.settings(tls="ssl"),
                             tls_insecure=True)
    assert len(uids(batches)) == 1
    assert any(e["log_level"] == "warning" and "verification is OFF" in e["event"]
               for e in logs)


# -- the Sent folder ------------------------------------------------------------------------
def test_sent_folder_files_and_finds_messages(mailbox: Mailbox) -> None:
    sent = ImapSentFolder(mailbox.settings(), "Sent")
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    raw = mail(1)

    async def go() -> tuple[bool, bool, bool]:
        try:
            before = await sent.contains_async("<q1@customer.example>")  # no folder yet
            await sent.append_async(raw, when)
            return (before, await sent.contains_async("<q1@customer.example>"),
                    await sent.contains_async("<q2@customer.example>"))
        finally:
            await sent.aclose()

    assert run(go()) == (False, True, False)
    uid = mailbox.uids("Sent")[0]
    assert mailbox.flags("Sent", uid) == {b"\\Seen"}
    assert not [t for t in threading.enumerate() if t.name.startswith("imap-sent")]


def test_sent_folder_survives_a_dropped_connection(mailbox: Mailbox) -> None:
    sent = ImapSentFolder(mailbox.settings(), "Sent")
    try:
        sent.append(mail(1), datetime(2026, 3, 1, tzinfo=UTC))
        mailbox.kick()
        sent.append(mail(2), datetime(2026, 3, 1, tzinfo=UTC))
        assert sent.contains("<q2@customer.example>")
    finally:
        sent.close()
    assert mailbox.count("Sent") == 2


def test_sent_folder_reports_refused_login_as_channel_error(mailbox: Mailbox) -> None:
    sent = ImapSentFolder(mailbox.settings(password="nope-nope"), "Sent")
    with pytest.raises(ChannelError, match="login refused"):
        sent.contains("<x@y>")

