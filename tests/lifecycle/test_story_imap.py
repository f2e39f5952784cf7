"""The follow-up story on the IMAP path (real Dovecot, real aiosmtpd), on the injectable clock.

ask -> 24 h -> check-in -> 24 h -> closure; a reply at 23 h cancels it; a restart between
the two timers still gives exactly one check-in and one closure. Arrival is the server's
INTERNALDATE, so every message is appended with an internaldate on the fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import make_mail, plain_text
from tests.imap_helpers import crlf, imap_settings, sent_kinds
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
VAGUE_ID = "<vague@cust.example>"
VAGUE = crlf(make_mail(subject="help", body="help\n\nSent from my iPhone", message_id=VAGUE_ID))

Step = tuple[timedelta, Callable[[], object] | None]


def run_cycles(settings: Settings, clock: FakeClock, steps: list[Step]) -> None:
    """One worker for all steps: move the clock, maybe deliver mail, run a cycle."""
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            for delta, before in steps:
                clock.advance(delta)
                if before is not None:
                    await asyncio.to_thread(before)
                await worker.cycle()
    asyncio.run(go())


def ask(mailbox: Mailbox, smtp: SmtpServer, tmp: Path,
        state: Path | str | None = None) -> tuple[Settings, FakeClock]:
    """A vague ticket at T0, asked for details (on ``state``: SQLite or PostgreSQL)."""
    settings = imap_settings(tmp, mailbox, smtp, **(
        {"SUPPORTBOT_STATE": str(state)} if state is not None else {}))
    clock = FakeClock(T0)
    mailbox.append("INBOX", VAGUE, internaldate=T0)
    run_cycles(settings, clock, [(timedelta(0), None)])
    assert sent_kinds(smtp) == ["ask_info"]
    return settings, clock


def test_ask_then_check_in_then_closure(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str) -> None:
    settings, clock = ask(mailbox, smtp_server, tmp_path, state)

    run_cycles(settings, clock, [(timedelta(hours=23, minutes=59), None)])
    assert sent_kinds(smtp_server) == ["ask_info"]
    run_cycles(settings, clock, [(timedelta(minutes=2), None)])
    assert sent_kinds(smtp_server) == ["ask_info", "check_in"]
    run_cycles(settings, clock, [(timedelta(hours=24, minutes=1), None),
                                 (timedelta(days=5), None)])

    assert sent_kinds(smtp_server) == ["ask_info", "check_in", "closure"]
    check_in, closure = (r.message for r in smtp_server.messages[1:])
    assert "checking in to see whether this is still an issue" in plain_text(check_in)
    for message in (check_in, closure):
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["In-Reply-To"] == VAGUE_ID
    assert all(r.rcpt_tos == ["ann@customer.example"] for r in smtp_server.messages)
    store = Store(settings.state)
    ticket = store.get_ticket(1)
    assert ticket is not None and ticket.state == "closed"
    actions = [a.action for a in store.activity(1)]
    assert actions.index("check-in") < actions.index("closed")
    store.close()


def test_reply_at_23_hours_cancels_the_check_in(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str) -> None:
    settings, clock = ask(mailbox, smtp_server, tmp_path, state)
    asked = smtp_server.messages[0].message
    reply = crlf(make_mail(subject=str(asked["Subject"]), message_id="<reply@cust.example>",
                           in_reply_to=str(asked["Message-ID"]),
                           body="The calendar page is blank since Monday, in Chrome."))

    run_cycles(settings, clock, [
        (timedelta(hours=23),
         lambda: mailbox.append("INBOX", reply, internaldate=T0 + timedelta(hours=23))),
        (timedelta(hours=2), None),
        (timedelta(days=3), None),
    ])

    # the details route the ticket: forwarded to its owner, the requester told who has it
    # (then, 48 h on, the owner's reminder: the clock runs three days)
    assert sent_kinds(smtp_server)[:3] == ["ask_info", "forward", "forwarded"]
    assert "check_in" not in sent_kinds(smtp_server)
    store = Store(settings.state)
    ticket = store.get_ticket(1)
    assert ticket is not None and ticket.state == "forwarded"
    assert ticket.owner == "product-support@example.com"
    assert not [t for t in store.pending_timers(1) if t.kind in ("check_in", "close")]
    assert [m.status for m in store.ticket_messages(1)] == ["ticket", "reply"]
    store.close()


def test_restart_between_timers_gives_one_check_in_and_one_closure(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, state: Path | str) -> None:
    settings, clock = ask(mailbox, smtp_server, tmp_path, state)

    # each step is a fresh worker: a restart before and after every timer
    for delta in (timedelta(hours=24, minutes=1), timedelta(minutes=1),
                  timedelta(hours=24, minutes=1), timedelta(minutes=1), timedelta(days=2)):
        run_cycles(settings, clock, [(delta, None)])

    assert sent_kinds(smtp_server) == ["ask_info", "check_in", "closure"]
    store = Store(settings.state)
    assert store.outbox_counts() == {"sent": 3}
    store.close()


def test_a_colleague_on_cc_replying_joins_the_ticket_and_cancels_the_check_in(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    """The requester's colleague, on Cc, answers in the thread: same ticket, no new one, and
    the schedule waiting on the requester's side stops."""
    settings, clock = ask(mailbox, smtp_server, tmp_path)
    asked = smtp_server.messages[0].message
    reply = crlf(make_mail(sender="Bob Colleague <bob@customer.example>",
                           subject=str(asked["Subject"]), message_id="<bob@cust.example>",
                           in_reply_to=str(asked["Message-ID"]),
                           headers={"Cc": "Ann Example <ann@customer.example>"},
                           body="Ann is out today: the calendar page is blank for all of us."))

    run_cycles(settings, clock, [
        (timedelta(hours=5),
         lambda: mailbox.append("INBOX", reply, internaldate=T0 + timedelta(hours=5))),
        (timedelta(days=3), None),
    ])

    # no acknowledgement to Bob, no check-in: the details route the ticket, Ann is told
    # (then, 48 h on, the owner's reminder: the clock runs three days)
    assert sent_kinds(smtp_server)[:3] == ["ask_info", "forward", "forwarded"]
    assert "check_in" not in sent_kinds(smtp_server)
    assert smtp_server.messages[2].rcpt_tos == ["ann@customer.example"]
    store = Store(settings.state_path)
    assert store.tickets_by_state() == {"forwarded": 1}
    assert [m.status for m in store.ticket_messages(1)] == ["ticket", "reply"]
    assert not [t for t in store.pending_timers(1) if t.kind in ("check_in", "close")]
    assert any(a.action == "requester replied" and a.actor == "bob@customer.example"
               for a in store.activity(1))
    store.close()
