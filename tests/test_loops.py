"""Mail loops through real SMTP servers: two bots, and a rude autoresponder.

A hub (aiosmtpd on loopback) delivers each bot's mail into the other's Maildir inbox and
hands the autoresponder's mail to it; each bot runs the real worker with the SMTP channel.
"""

from __future__ import annotations

import asyncio
import mailbox
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import aiosmtplib
import pytest

from bot.clock import SystemClock
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings, make_mail
from tests.servers.smtp import Received, RudeAutoresponder, SmtpServer

pytestmark = pytest.mark.slow

ALPHA, BETA, RUDE = "support@alpha.example", "support@beta.example", "ooo@rude.example"


class Hub:
    """An SMTP server that files mail into per-address Maildirs or relays it onwards."""

    def __init__(self, boxes: dict[str, Path], strip_auto_headers: bool = False) -> None:
        self.boxes = boxes
        self.strip = strip_auto_headers
        self.relays: dict[str, tuple[str, int]] = {}
        self.count: Counter[tuple[str, str]] = Counter()
        self.server = SmtpServer(on_message=self._on_message)

    async def _on_message(self, received: Received) -> None:
        raw = received.raw
        if self.strip:  # a relay that drops the robots' headers: detection alone cannot help
            msg = message_from_bytes(raw, policy=policy.SMTP)
            for header in ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence"):
                del msg[header]
            raw = msg.as_bytes()
        for rcpt in received.rcpt_tos:
            self.count[(received.mail_from.lower(), rcpt.lower())] += 1
            if rcpt.lower() in self.boxes:
                self.boxes[rcpt.lower()].parent.mkdir(parents=True, exist_ok=True)
                box = mailbox.Maildir(str(self.boxes[rcpt.lower()]), create=True)
                box.add(mailbox.MaildirMessage(raw))
            elif rcpt.lower() in self.relays:
                host, port = self.relays[rcpt.lower()]
                await aiosmtplib.send(raw, sender=received.mail_from, recipients=[rcpt],
                                      hostname=host, port=port, start_tls=False, timeout=10)


def bot_settings(tmp: Path, name: str, address: str, hub: Hub):  # type: ignore[no-untyped-def]
    return embedded_settings(
        tmp / name, SUPPORTBOT_FROM=f"{name} Support <{address}>",
        SUPPORTBOT_SMTP_HOST="127.0.0.1", SUPPORTBOT_SMTP_PORT=str(hub.server.port),
        SUPPORTBOT_SMTP_TLS="none")


async def run_bots(settings_list, rounds: int = 12) -> None:  # type: ignore[no-untyped-def]
    """Cycle every bot in turn, giving the servers time to deliver in between."""
    clock = SystemClock()
    for _ in range(rounds):
        for settings in settings_list:
            async with open_worker(settings, clock=clock) as worker:
                await worker.cycle()
        await asyncio.sleep(0.15)


@pytest.mark.parametrize("strip", [False, True], ids=["headers-kept", "headers-stripped"])
def test_two_bots_exchange_at_most_one_message_each_way(tmp_path: Path, strip: bool) -> None:
    hub = Hub({ALPHA: tmp_path / "alpha" / "inbox", BETA: tmp_path / "beta" / "inbox"},
              strip_auto_headers=strip)
    with hub.server:
        alpha = bot_settings(tmp_path, "alpha", ALPHA, hub)
        beta = bot_settings(tmp_path, "beta", BETA, hub)
        # someone at beta writes to alpha from beta's shared support address
        deliver(tmp_path / "alpha" / "inbox",
                make_mail(sender=f"Beta Support <{BETA}>", to=ALPHA,
                          subject="Question about your API limits",
                          body="Hello, what are the rate limits of your API for partners?"),
                datetime.now(UTC))
        asyncio.run(run_bots([alpha, beta]))
    assert hub.count[(ALPHA, BETA)] <= 1
    assert hub.count[(BETA, ALPHA)] <= 1
    assert hub.count[(ALPHA, BETA)] == 1  # the human-looking first message was answered


@pytest.mark.parametrize("threaded", [True, False], ids=["threads-replies", "new-subjects"])
def test_rude_autoresponder_is_stopped_by_threading_and_the_cap(tmp_path: Path,
                                                                threaded: bool) -> None:
    hub = Hub({ALPHA: tmp_path / "alpha" / "inbox"})
    with hub.server:
        rude = RudeAutoresponder(relay=("127.0.0.1", hub.server.port), address=RUDE,
                                 max_replies=50)
        if not threaded:
            rude.server.on_message = _unthreaded(rude)
        with rude:
            hub.relays[RUDE] = ("127.0.0.1", rude.port)
            alpha = bot_settings(tmp_path, "alpha", ALPHA, hub)
            deliver(tmp_path / "alpha" / "inbox",
                    make_mail(sender=f"Rude <{RUDE}>", to=ALPHA, subject="Where is my order?",
                              body="I ordered the premium plan but cannot see the invoice yet."),
                    datetime.now(UTC))
            asyncio.run(run_bots([alpha], rounds=15))
            time.sleep(0.3)
    store = Store(tmp_path / "alpha" / "state.db")
    cap = 5  # per_recipient_per_day in the shipped rules.yaml
    sent_to_rude = hub.count[(ALPHA, RUDE)]
    if threaded:
        # its replies join the ticket: nothing more is sent to it
        assert sent_to_rude == 1
    else:
        assert sent_to_rude == cap
        suppressed = [a for a in store.activity(limit=10000) if a.action == "suppressed"]
        assert suppressed and "cap" in suppressed[0].detail
    assert hub.count[(RUDE, ALPHA)] <= sent_to_rude


def _unthreaded(rude: RudeAutoresponder):  # type: ignore[no-untyped-def]
    """A worse robot: every answer is a fresh message with a new subject, no threading."""
    async def answer(received: Received) -> None:
        from email.message import EmailMessage

        if len(rude.replies) >= rude.max_replies:
            return
        reply = EmailMessage()
        reply["From"] = f"Out Of Office <{rude.address}>"
        reply["To"] = str(received.message.get("From"))
        reply["Subject"] = f"Auto answer number {len(rude.replies) + 1}"
        reply["Message-ID"] = f"<rude.{time.time_ns()}@rude.example>"
        reply.set_content("I am away. Your message number "
                          f"{len(rude.replies) + 1} matters to me: my order is still missing.")
        await aiosmtplib.send(reply, hostname=rude.relay[0], port=rude.relay[1],
                              sender=rude.address, start_tls=False, timeout=10)
        rude.replies.append(reply.as_bytes())
    return answer
