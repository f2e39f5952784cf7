"""The whole worker on the IMAP path: real Dovecot in, real aiosmtpd out, no mocks.

Every answer is counted where it lands (the SMTP server), per original Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bot.clock import Clock, FakeClock
from bot.config import ImapSettings, Settings, load_settings
from bot.errors import ConfigError
from bot.runtime import open_worker
from bot.sources.imap import ImapSource
from bot.store import Store
from bot.worker import CycleReport
from tests.helpers import REPO, make_mail, outbox_mail
from tests.imap_helpers import (
    EXPORT_QUESTION,
    CuttingProxy,
    answers_per_original,
    crlf,
    env_for_subprocess,
    imap_env,
    imap_settings,
    sent_kinds,
    ticket_mail,
)
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

GENEROUS = 20.0  # seconds: only a hung test ever waits this long
STOP_WITHIN = 10.0  # seconds: the worker's contract on SIGTERM (Procfile platforms kill at 30)


def cycles(settings: Settings, count: int = 1, *, clock: Clock | None = None,
           tune: Callable[[ImapSource], None] | None = None) -> list[CycleReport]:
    """``count`` cycles of one worker (a fresh one per call: a call is a process start)."""
    async def go() -> list[CycleReport]:
        async with open_worker(settings, clock=clock) as worker:
            source = worker.sources[0]
            assert isinstance(source, ImapSource)
            if tune is not None:
                tune(source)
            return [await worker.cycle() for _ in range(count)]
    return asyncio.run(go())


def statuses(report: CycleReport) -> Counter[str]:
    return Counter({k: n for k, n in report.counts.items() if k != "known"})


def original(n: int) -> str:
    return f"<q{n}@customer{n}.example>"


def test_new_mail_is_acknowledged_in_thread_and_left_as_the_agents_saw_it(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    unread = mailbox.append("INBOX", ticket_mail(1))
    read = mailbox.append("INBOX", ticket_mail(2), flags=[b"\\Seen", b"\\Flagged"])

    (report,) = cycles(imap_settings(tmp_path, mailbox, smtp_server))

    tickets = {o.message.message_id: o.ticket_id for o in report.outcomes if o.message}
    assert statuses(report) == {"ticket": 2}
    assert answers_per_original(smtp_server) == {original(1): 1, original(2): 1}
    ack = next(r for r in smtp_server.messages if r.message["In-Reply-To"] == original(1))
    assert ack.rcpt_tos == ["c1@customer1.example"]
    assert ack.message["Subject"] == f"Re: Exporting contacts, question 1 [#{tickets[original(1)]}]"
    assert original(1) in str(ack.message["References"])
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert mailbox.flags("INBOX", unread) == set()  # still unread for the human agents
    assert mailbox.flags("INBOX", read) == {b"\\Seen", b"\\Flagged"}
    assert mailbox.count() == 2  # nothing moved or deleted


def test_restart_answers_nothing_twice_and_picks_up_new_mail(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    settings = imap_settings(tmp_path, mailbox, smtp_server)
    mailbox.append("INBOX", ticket_mail(1))
    cycles(settings)

    (after_restart,) = cycles(settings)
    mailbox.append("INBOX", ticket_mail(2))
    (with_new_mail,) = cycles(settings)

    assert statuses(after_restart) == {}
    assert statuses(with_new_mail) == {"ticket": 1}
    assert answers_per_original(smtp_server) == {original(1): 1, original(2): 1}
    assert len(smtp_server.messages) == 2


def test_uidvalidity_change_answers_only_the_new_message(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    settings = imap_settings(tmp_path, mailbox, smtp_server)
    mailbox.append_many("INBOX", [ticket_mail(n) for n in range(3)])
    cycles(settings)
    old_uv = mailbox.uidvalidity()

    new_uv = mailbox.recreate_folder()  # a restored mailbox: same mail, new numbering
    mailbox.append("INBOX", ticket_mail(3))
    (report,) = cycles(settings)

    assert new_uv != old_uv
    assert statuses(report) == {"duplicate": 3, "ticket": 1}
    assert answers_per_original(smtp_server) == {original(n): 1 for n in range(4)}
    assert len(smtp_server.messages) == 4
    store = Store(settings.state_path)
    assert store.message_counts() == {"ticket": 4, "duplicate": 3}
    store.close()


@pytest.mark.parametrize("attempts", [6, 1], ids=["reconnects-within-the-cycle",
                                                   "next-cycle-catches-up"])
def test_connection_cut_mid_fetch_loses_nothing_and_doubles_nothing(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, attempts: int) -> None:
    quoted = "\n".join(f"> line {i} of the earlier conversation we had" for i in range(60))
    raws = [ticket_mail(n, body=f"{EXPORT_QUESTION}\n\n{quoted}\n") for n in range(40)]
    mailbox.append_many("INBOX", raws)
    imap = mailbox.settings()

    def quick_reconnects(source: ImapSource) -> None:
        source.retry_wait = 0.05
        source.retry_attempts = attempts

    with CuttingProxy((imap.host, imap.port)) as proxy:
        settings = imap_settings(tmp_path, mailbox, smtp_server,
                                 SUPPORTBOT_IMAP_PORT=str(proxy.port))
        # login, search and sizes are a few kB: half the bodies in, the FETCH is in full flow
        proxy.cut_next_after(sum(len(r) for r in raws) // 2)
        with capture_logs() as logs:
            first, second = cycles(settings, count=2, tune=quick_reconnects)

    assert proxy.cuts == 1
    if attempts == 1:
        assert "imap" in first.source_errors and statuses(first) == {}
    else:
        assert first.source_errors == {}
        assert any(e["event"] == "IMAP connection failed; reconnecting" for e in logs)
    assert statuses(first) + statuses(second) == {"ticket": 40}
    assert answers_per_original(smtp_server, kind=None) == {original(n): 1 for n in range(40)}
    assert set(sent_kinds(smtp_server)) == {"acknowledge"}


def test_requester_replies_join_their_ticket_and_are_not_acknowledged_again(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    settings = imap_settings(tmp_path, mailbox, smtp_server)
    mailbox.append("INBOX", ticket_mail(1))
    (first,) = cycles(settings)
    (ticket_id,) = [o.ticket_id for o in first.outcomes]
    ack = smtp_server.messages[0].message
    threaded = make_mail(sender="Customer 1 <c1@customer1.example>",
                         subject=str(ack["Subject"]), message_id="<r1@customer1.example>",
                         in_reply_to=str(ack["Message-ID"]),
                         body="Thanks! It is the export on the contacts page, in Firefox.")
    tagged_only = make_mail(sender="Customer 1 <c1@customer1.example>",
                            subject=f"Still no export button [#{ticket_id}]",
                            message_id="<r2@customer1.example>",
                            body="I tried again this morning and it is still missing.")
    mailbox.append_many("INBOX", [crlf(threaded), crlf(tagged_only)])

    (report,) = cycles(settings)

    assert [(o.status, o.ticket_id) for o in report.outcomes] == [
        ("reply", ticket_id), ("reply", ticket_id)]
    assert len(smtp_server.messages) == 1  # only the first acknowledgement, ever
    store = Store(settings.state_path)
    assert [m.status for m in store.ticket_messages(ticket_id)] == ["ticket", "reply", "reply"]
    assert sum(store.tickets_by_state().values()) == 1
    store.close()


def test_a_thousand_message_backlog_is_answered_once_each(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    settings = imap_settings(tmp_path, mailbox, smtp_server)
    mailbox.append_many("INBOX", [ticket_mail(n) for n in range(1000)])

    first, again = cycles(settings, count=2)

    assert statuses(first) == {"ticket": 1000}
    assert statuses(again) == {}
    assert answers_per_original(smtp_server) == {original(n): 1 for n in range(1000)}
    assert len(smtp_server.messages) == 1000
    store = Store(settings.state_path)
    assert store.message_counts() == {"ticket": 1000}
    assert store.outbox_counts() == {"sent": 1000}
    store.close()


def test_first_start_records_old_mail_without_answering_it(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    now = datetime.now(UTC)
    # The sender's Date claims "just now"; the server's INTERNALDATE says three days ago.
    mailbox.append("INBOX", crlf(make_mail(
        sender="Customer 1 <c1@customer1.example>", subject="Old question",
        message_id=original(1), date=now, body="How do I export my contacts to a CSV file?")),
        internaldate=now - timedelta(days=3))
    mailbox.append("INBOX", ticket_mail(2), internaldate=now - timedelta(hours=2))

    (report,) = cycles(imap_settings(tmp_path, mailbox, smtp_server,
                                     SUPPORTBOT_BACKFILL_HOURS="24"))

    by_id = {o.message.message_id: o.status for o in report.outcomes if o.message}
    assert by_id == {original(1): "backfill", original(2): "ticket"}
    assert answers_per_original(smtp_server) == {original(2): 1}
    store = Store(tmp_path / "state.db")
    assert store.message_counts() == {"backfill": 1, "ticket": 1}
    store.close()


def test_imap_without_smtp_or_outbox_refuses_to_start(tmp_path: Path) -> None:
    imap = ImapSettings(host="127.0.0.1", port=1143, user="support@example.test",
                        password="pw", tls="none")
    env = imap_env(imap, None, tmp_path / "state.db")

    with pytest.raises(ConfigError, match="SUPPORTBOT_SMTP_HOST"):
        load_settings(env, cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--once"], cwd=tmp_path,
                          env=env_for_subprocess(env, os.environ), capture_output=True,
                          text=True, timeout=60)

    assert proc.returncode != 0
    assert "SUPPORTBOT_SMTP_HOST" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "state.db").exists()


def test_run_forever_answers_pushed_mail_through_idle_and_stops_promptly(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    # Polling every 10 minutes: within the test only IDLE can notice the new mail.
    settings = imap_settings(tmp_path, mailbox, smtp_server, SUPPORTBOT_POLL_SECONDS="600")

    async def go() -> str | None:
        async with open_worker(settings) as worker:
            source = worker.sources[0]
            task = asyncio.create_task(worker.run_forever())
            await until(lambda: worker.store.get_cursor(source.cursor_key) is not None)
            await asyncio.sleep(0.3)  # let it settle into IDLE
            await asyncio.to_thread(mailbox.append, "INBOX", ticket_mail(1))
            await until(lambda: len(smtp_server.messages) >= 1)
            wake = getattr(source, "last_wake", None)
            worker.stop()
            await asyncio.wait_for(task, STOP_WITHIN)
            return wake

    wake = asyncio.run(go())

    assert wake == "mail"
    assert answers_per_original(smtp_server) == {original(1): 1}


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until ``condition`` holds; a hang fails instead of blocking the run."""
    deadline = time.monotonic() + GENEROUS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


# -- IMAP in, outbox Maildir out (SUPPORTBOT_OUTBOX_MAILDIR set explicitly) -----------------
def outbox_settings(tmp: Path, box: Mailbox) -> Settings:
    server = box.server
    return load_settings({
        "SUPPORTBOT_STATE": str(tmp / "state.db"),
        "SUPPORTBOT_OUTBOX_MAILDIR": str(tmp / "outbox"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_FROM": f"Acme Support <{box.user.name}>",
        "SUPPORTBOT_IMAP_HOST": server.host,
        "SUPPORTBOT_IMAP_PORT": str(server.imap_port),
        "SUPPORTBOT_IMAP_USER": box.user.name,
        "SUPPORTBOT_IMAP_PASSWORD": box.user.password,
        "SUPPORTBOT_IMAP_TLS": "none",
    }, cwd=tmp)


def test_imap_tickets_replies_restarts_and_renumbering(tmp_path: Path, mailbox: Mailbox) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    settings = outbox_settings(tmp_path, mailbox)
    mailbox.append("INBOX", make_mail(subject="How do I export contacts?",
                                      body="How do I export my contacts to a CSV file? "
                                      "I looked in the settings page already."),
                   internaldate=now)

    report = cycles(settings, clock=clock)[0]
    assert report.source_errors == {}
    assert [o.status for o in report.outcomes] == ["ticket"]
    sent = outbox_mail(tmp_path / "outbox")
    assert [s.to for s in sent] == ["ann@customer.example"]

    # A restart reads nothing twice.
    assert cycles(settings, clock=clock)[0].outcomes == []

    # The requester answers our acknowledgement: the reply joins its ticket.
    reply = make_mail(subject="Re: " + sent[0].subject, message_id="<m2@customer.example>",
                      in_reply_to=str(sent[0].message["Message-ID"]),
                      body="Thanks, I found it in the end.")
    mailbox.append("INBOX", reply, internaldate=now)
    report = cycles(settings, clock=clock)[0]
    ticket = report.outcomes[0].ticket_id if report.outcomes else None
    assert [(o.status, o.ticket_id) for o in report.outcomes] == [("reply", ticket)]

    # The server renumbers the folder: every message is offered again, none answered again.
    mailbox.recreate_folder("INBOX")
    report = cycles(settings, clock=clock)[0]
    assert [o.status for o in report.outcomes] == ["duplicate", "duplicate"]
    assert len(outbox_mail(tmp_path / "outbox")) == 1
    assert mailbox.flags("INBOX", mailbox.uids()[0]) == set()  # still unread for the agents
