"""Loop suite, Sieve part: the bot against a real RFC 5230 vacation autoresponder.

The customer's mailbox lives on Dovecot with a Sieve vacation script; a hub (aiosmtpd)
delivers the bot's mail to it over LMTP, so Pigeonhole's vacation runs, and files the
vacation's replies (submitted back to the hub) into the bot's Maildir inbox. Variants:
headers kept; the bot's Auto-Submitted stripped on the way out (vacation answers); and
stripped both ways (the vacation reply looks human). The two bots and the rude
autoresponder are in tests/test_loops.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from bot.clock import SystemClock
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import embedded_settings, make_mail
from tests.reliability.maildir import deliver_bytes
from tests.servers.dovecot import DovecotServer, require_dovecot
from tests.servers.smtp import Received, SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

BOT = "support@example.com"
VACATION = """require ["vacation"];
vacation :days 1 :subject "Away until Monday" "I am out of the office until Monday.";
"""
ROBOT_HEADERS = ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence")


class Hub:
    """Routes the bot's mail to the customer's Dovecot (LMTP) and the rest to the bot."""

    def __init__(self, inbox: Path, strip_out: bool, strip_back: bool) -> None:
        self.inbox = inbox
        self.strip_out = strip_out
        self.strip_back = strip_back
        self.dovecot: DovecotServer | None = None
        self.customer = ""
        self.count: Counter[tuple[str, str]] = Counter()
        self.server = SmtpServer(on_message=self._on_message)

    async def _on_message(self, received: Received) -> None:
        sender = received.mail_from.lower()
        for rcpt in (r.lower() for r in received.rcpt_tos):
            self.count[(sender, rcpt)] += 1
            raw = received.raw
            if rcpt == self.customer:
                assert self.dovecot is not None
                raw = _strip(raw) if self.strip_out else raw
                await asyncio.to_thread(self.dovecot.lmtp_deliver, rcpt, raw, sender)
            elif rcpt == BOT:
                raw = _strip(raw) if self.strip_back else raw
                deliver_bytes(self.inbox, raw, datetime.now(UTC))


def _strip(raw: bytes) -> bytes:
    msg = message_from_bytes(raw, policy=policy.SMTP)
    for header in ROBOT_HEADERS:
        del msg[header]
    return msg.as_bytes()


@pytest.mark.parametrize(("strip_out", "strip_back"), [(False, False), (True, False),
                                                        (True, True)],
                         ids=["headers-kept", "stripped-on-the-way-out", "stripped-both-ways"])
def test_a_vacation_autoresponder_gets_one_answer_and_no_loop(
        tmp_path: Path, strip_out: bool, strip_back: bool) -> None:
    require_dovecot()
    inbox = tmp_path / "inbox"
    hub = Hub(inbox, strip_out, strip_back)
    with hub.server, DovecotServer(submission_host=f"127.0.0.1:{hub.server.port}") as dovecot:
        hub.dovecot = dovecot
        user = dovecot.add_user()
        hub.customer = user.name.lower()
        dovecot.set_sieve(user, VACATION)
        deliver_bytes(inbox, make_mail(sender=f"Ann <{hub.customer}>", to=BOT,
                                       subject="Where is my invoice?",
                                       body="Hello, I cannot find last month's invoice."),
                      datetime.now(UTC))
        settings = embedded_settings(
            tmp_path, SUPPORTBOT_FROM=f"Acme Support <{BOT}>",
            SUPPORTBOT_SMTP_HOST="127.0.0.1", SUPPORTBOT_SMTP_PORT=str(hub.server.port),
            SUPPORTBOT_SMTP_TLS="none")

        async def rounds() -> None:
            for _ in range(8):
                async with open_worker(settings, clock=SystemClock()) as worker:
                    await worker.cycle()
                await asyncio.sleep(0.3)  # LMTP, Sieve and its submission take a moment
        asyncio.run(rounds())
        time.sleep(0.3)
        delivered = dovecot.count(user)
    store = Store(settings.state_path)
    ledger = [(r["status"], r["reason"]) for r in
              store.db.rows("SELECT status, reason FROM messages ORDER BY id")]
    store.close()
    to_customer = hub.count[(BOT, hub.customer)]
    from_vacation = sum(n for (s, r), n in hub.count.items() if r == BOT)
    assert to_customer == 1  # the acknowledgement, and nothing after the auto-reply
    assert delivered == 1
    if not strip_out:
        assert from_vacation == 0  # RFC 5230: no answer to Auto-Submitted mail
        assert [s for s, _ in ledger] == ["ticket"]
        return
    assert from_vacation == 1  # vacation answered once (it could not see our marker)
    status, reason = ledger[1]
    if not strip_back:
        assert status == "ignored" and "Auto-Submitted" in (reason or "")
    else:  # looks human and threads under the ticket: recorded as its reply, not answered
        assert status in {"reply", "ignored"}
