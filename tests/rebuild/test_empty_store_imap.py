"""An empty store answers no one twice (IMAP + SMTP + Sent folder, real Dovecot and aiosmtpd).

Tickets are answered, the state file is deleted as a platform restart deletes it, and a new
worker starts on an empty store: it rebuilds tickets, states and the pending check-in from
its own messages in the Sent folder, re-sends nothing, answers only the mail that is really
new, and the check-in still goes out at its time on the fake clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.rebuild.run import no_evidence_warning
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, make_mail
from tests.imap_helpers import crlf, env_for_subprocess, imap_env, imap_settings, sent_kinds
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
DEMO = REPO / "bot" / "demo" / "mail"


def cycles(settings: Settings, clock: FakeClock,
           steps: list[tuple[timedelta, Callable[[], object] | None]]) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            for delta, before in steps:
                clock.advance(delta)
                if before is not None:
                    await asyncio.to_thread(before)
                await worker.cycle()
    asyncio.run(go())


def lose_the_store(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The state file deleted, as a platform restart deletes it; on PostgreSQL, a new empty
    database in place of the old one."""
    if settings.state_url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.state_path}{suffix}").unlink(missing_ok=True)
        return settings
    return settings.with_(state_url=request.getfixturevalue("postgres").new_database())


def answered_mailbox(mailbox: Mailbox, smtp: SmtpServer, tmp: Path,
                     state: Path | str) -> tuple[Settings, FakeClock]:
    """Five demo tickets (critical, billing forward, two vague asks, a question) and an
    out-of-office, all handled by a first worker with a Sent folder."""
    settings = imap_settings(tmp, mailbox, smtp, SUPPORTBOT_IMAP_SENT_FOLDER="Sent",
                             SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    for path in sorted(DEMO.glob("*.eml")):
        mailbox.append("INBOX", crlf(path.read_bytes()), internaldate=T0 - timedelta(minutes=5))
    cycles(settings, clock, [(timedelta(0), None)])
    assert mailbox.count("Sent") == len(smtp.messages) > 5
    return settings, clock


def test_an_empty_store_rebuilds_from_the_sent_folder_and_re_sends_nothing(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str,
        request: pytest.FixtureRequest) -> None:
    settings, clock = answered_mailbox(mailbox, smtp_server, tmp_path, state)
    before = Store(settings.state)
    states = {t.id: (t.state, t.requester, t.owner, t.subject)
              for t in before.tickets_since(T0 - timedelta(days=1))}
    pending = {(t.ticket_id, t.kind, t.due_at) for t in before.pending_timers(limit=100)
               if t.kind in ("check_in", "close")}
    before.close()
    first_run = len(smtp_server.messages)

    settings = lose_the_store(settings, request)
    new = crlf(make_mail(sender="Nina New <nina@new.example>", subject="Question about exports",
                         message_id="<new@new.example>",
                         body="How do I export my contacts to a CSV file? I looked in the "
                              "settings page but could not find a button for it."))
    cycles(settings, clock, [
        (timedelta(hours=2),
         lambda: mailbox.append("INBOX", new, internaldate=T0 + timedelta(hours=2))),
        (timedelta(minutes=5), None),
    ])

    again = smtp_server.messages[first_run:]
    assert [str(r.message["X-Supportbot-Kind"]) for r in again] == ["acknowledge"]
    assert again[0].rcpt_tos == ["nina@new.example"]
    assert again[0].message["In-Reply-To"] == "<new@new.example>"
    assert int(str(again[0].message["X-Supportbot-Ticket"])) > max(states)  # a new number

    store = Store(settings.state)
    rebuilt = {t.id: (t.state, t.requester, t.owner, t.subject)
               for t in store.tickets_since(T0 - timedelta(days=1)) if t.id in states}
    assert rebuilt == states
    assert {(t.ticket_id, t.kind, t.due_at) for t in store.pending_timers(limit=100)
            if t.kind in ("check_in", "close")} == pending
    assert store.message_counts().get("rebuilt") == len(states)
    critical = store.get_ticket(1)  # the deliverability ticket: its alert went to on-call
    assert critical is not None and critical.priority == "critical"
    store.close()

    # the vague tickets' check-ins are due 24 h after their questions, not after the rebuild
    asked = sum(1 for r in smtp_server.messages if r.message["X-Supportbot-Kind"] == "ask_info")
    cycles(settings, clock, [(T0 + timedelta(hours=23, minutes=59) - clock.now(), None)])
    assert sent_kinds(smtp_server).count("check_in") == 0
    cycles(settings, clock, [(timedelta(minutes=2), None)])
    check_ins = [r for r in smtp_server.messages if r.message["X-Supportbot-Kind"] == "check_in"]
    assert len(check_ins) == asked >= 1
    assert all(r.message["In-Reply-To"] != "<new@new.example>" for r in check_ins)


def test_a_reply_written_while_the_store_was_gone_still_cancels_the_check_in(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str,
        request: pytest.FixtureRequest) -> None:
    settings, clock = answered_mailbox(mailbox, smtp_server, tmp_path, state)
    asked = next(r.message for r in smtp_server.messages
                 if r.message["X-Supportbot-Kind"] == "ask_info")
    ticket = int(str(asked["X-Supportbot-Ticket"]))
    reply = crlf(make_mail(sender=str(asked["To"]), subject=str(asked["Subject"]),
                           message_id="<details@cust.example>",
                           in_reply_to=str(asked["Message-ID"]),
                           body="The calendar page is blank since Monday, in Chrome."))
    mailbox.append("INBOX", reply, internaldate=T0 + timedelta(hours=1))
    settings = lose_the_store(settings, request)
    sent_before = len(smtp_server.messages)

    cycles(settings, clock, [(timedelta(hours=2), None), (timedelta(hours=30), None)])

    asked_tickets = {str(r.message["X-Supportbot-Ticket"]) for r in smtp_server.messages
                     if r.message["X-Supportbot-Kind"] == "ask_info"}
    checked_in = [str(r.message["X-Supportbot-Ticket"]) for r in smtp_server.messages[sent_before:]
                  if r.message["X-Supportbot-Kind"] == "check_in"]
    assert sorted(checked_in) == sorted(asked_tickets - {str(ticket)})  # not the one who replied
    store = Store(settings.state)
    found = store.get_ticket(ticket)
    assert found is not None and found.state not in ("waiting", "answered")  # not waiting on her
    assert [m.status for m in store.ticket_messages(ticket)] == ["rebuilt", "reply"]
    store.close()


def test_without_a_sent_folder_run_warns_that_a_lost_store_re_answers_the_window(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """`supportbot run` itself says it at start-up, naming both remedies; with a Sent folder
    (or a PostgreSQL state) it has nothing to warn about."""
    def start(**extra: str) -> str:
        env = env_for_subprocess(imap_env(mailbox.settings(), smtp_server, tmp_path / "s.db",
                                          SUPPORTBOT_LOG_FORMAT="json", **extra), os.environ)
        done = subprocess.run([sys.executable, "-m", "bot", "run", "--once"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr

    warned = [json.loads(line) for line in start().splitlines()
              if "no Sent folder" in line]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    text = warned[0]["event"]
    assert "re-answers the last 24 h" in text
    assert "SUPPORTBOT_IMAP_SENT_FOLDER" in text and "PostgreSQL" in text
    assert "no Sent folder" not in start(SUPPORTBOT_IMAP_SENT_FOLDER="Sent")
    assert no_evidence_warning(imap_settings(tmp_path, mailbox, smtp_server,
                                             SUPPORTBOT_STATE="postgresql://u@h/db")) is None


def test_two_workers_on_a_new_postgresql_database_rebuild_once(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, pg_url: str,
        request: pytest.FixtureRequest) -> None:
    """The worker holding the `rebuild` lease rebuilds; the other waits, then both work."""
    settings, clock = answered_mailbox(mailbox, smtp_server, tmp_path, pg_url)
    first_run = len(smtp_server.messages)
    settings = lose_the_store(settings, request)

    async def both() -> None:
        async with open_worker(settings, clock=clock) as a, \
                open_worker(settings, clock=clock) as b:
            clock.advance(timedelta(hours=2))
            await asyncio.gather(a.cycle(), b.cycle())
            await asyncio.gather(a.cycle(), b.cycle())
    asyncio.run(both())

    assert len(smtp_server.messages) == first_run  # nothing re-sent by either
    store = Store(settings.state)
    assert sum(store.tickets_by_state().values()) == 5
    assert [a.detail for a in store.activity() if a.action == "rebuilt" and a.ticket_id is None] \
        and len([a for a in store.activity() if a.action == "rebuilt" and a.ticket_id == 1]) == 1
    store.close()
