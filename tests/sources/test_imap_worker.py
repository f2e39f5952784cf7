"""The real worker reading a real Dovecot: one ticket per new thread, never answered twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.runtime import open_worker
from bot.worker import CycleReport
from tests.helpers import REPO, make_mail, outbox_mail
from tests.servers.dovecot import Mailbox, dovecot, mailbox  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]


def imap_settings(tmp: Path, box: Mailbox) -> Settings:
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


def cycle(settings: Settings, clock: FakeClock) -> CycleReport:
    """One `supportbot run --once` cycle in a fresh worker, as after a restart."""
    async def go() -> CycleReport:
        async with open_worker(settings, clock=clock) as worker:
            return await worker.cycle()
    return asyncio.run(go())


def test_imap_tickets_replies_restarts_and_renumbering(tmp_path: Path, mailbox: Mailbox) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    settings = imap_settings(tmp_path, mailbox)
    mailbox.append("INBOX", make_mail(subject="How do I export contacts?",
                                      body="How do I export my contacts to a CSV file? "
                                      "I looked in the settings page already."),
                   internaldate=now)

    report = cycle(settings, clock)
    assert report.source_errors == {}
    assert [o.status for o in report.outcomes] == ["ticket"]
    sent = outbox_mail(tmp_path / "outbox")
    assert [s.to for s in sent] == ["ann@customer.example"]

    # A restart reads nothing twice.
    assert cycle(settings, clock).outcomes == []

    # The requester answers our acknowledgement: the reply joins its ticket.
    reply = make_mail(subject="Re: " + sent[0].subject, message_id="<m2@customer.example>",
                      in_reply_to=str(sent[0].message["Message-ID"]),
                      body="Thanks, I found it in the end.")
    mailbox.append("INBOX", reply, internaldate=now)
    report = cycle(settings, clock)
    ticket = report.outcomes[0].ticket_id if report.outcomes else None
    assert [(o.status, o.ticket_id) for o in report.outcomes] == [("reply", ticket)]

    # The server renumbers the folder: every message is offered again, none answered again.
    mailbox.recreate_folder("INBOX")
    report = cycle(settings, clock)
    assert [o.status for o in report.outcomes] == ["duplicate", "duplicate"]
    assert len(outbox_mail(tmp_path / "outbox")) == 1
    assert mailbox.flags("INBOX", mailbox.uids()[0]) == set()  # still unread for the agents
