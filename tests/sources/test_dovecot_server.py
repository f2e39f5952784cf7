"""The Dovecot harness itself: LMTP delivery runs Sieve vacation, whose reply goes out by SMTP.

The loop suite (issue 8) relies on this path: a real RFC 5230 autoresponder to test against.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers.dovecot import DovecotServer, Mailbox, free_port

pytestmark = [pytest.mark.slow, pytest.mark.dovecot]

VACATION = """require ["vacation"];
vacation :days 1 :subject "Away until Monday" "I am out of the office.";
"""


class Collect:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        msg = message_from_bytes(envelope.content or b"", policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Collect, int]]:
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def ticket(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@customer.example>"
    msg["To"] = to
    msg["Subject"] = "Where is my invoice?"
    msg["Message-ID"] = "<inv-1@customer.example>"
    msg.set_content("Hello, I cannot find last month's invoice.\n")
    return msg.as_bytes(policy=policy.SMTP)


def test_lmtp_delivery_runs_sieve_vacation(smtp_sink: tuple[Collect, int]) -> None:
    sink, port = smtp_sink
    with DovecotServer(submission_host=f"127.0.0.1:{port}") as server:
        box = Mailbox(server, server.add_user())
        box.set_sieve(VACATION)
        box.lmtp_deliver(ticket(box.user.name), sender="ann@customer.example")

        deadline = time.monotonic() + 20
        while not sink.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.count() == 1  # delivered (Sieve's implicit keep)

    assert len(sink.messages) == 1
    reply = sink.messages[0]
    assert reply["Subject"] == "Away until Monday"
    assert reply["Auto-Submitted"] == "auto-replied (vacation)"
    assert reply["In-Reply-To"] == "<inv-1@customer.example>"


def test_plain_lmtp_delivery_lands_in_the_inbox(mailbox: Mailbox) -> None:
    mailbox.lmtp_deliver(ticket(mailbox.user.name))
    assert mailbox.count() == 1
