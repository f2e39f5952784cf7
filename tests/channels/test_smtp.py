"""SmtpChannel against a real aiosmtpd on loopback: delivery, threading, retries, failures."""

from __future__ import annotations

import asyncio
import socket
from email.message import EmailMessage
from typing import Any

import pytest

from bot.channels.base import OutboxItem, SendOutcome
from bot.channels.smtp import SmtpChannel
from bot.config import SmtpSettings
from bot.mail.ticketref import find_ticket_ref
from tests.channels.outbox_items import BOT, item, send
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.slow


def channel(server: SmtpServer, *, tls: str = "none", user: str | None = None,
            password: str | None = None, connections: int = 2,
            **kwargs: object) -> SmtpChannel:
    settings = SmtpSettings(host=server.host, port=server.port, user=user, password=password,
                            tls=tls, connections=connections)  # type: ignore[arg-type]
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 5)
    return SmtpChannel(settings, **kwargs)  # type: ignore[arg-type]


def test_delivers_payload_as_stored_with_the_outbox_envelope(smtp_server: SmtpServer) -> None:
    it = item(to=("ann@customer.example", "bob@customer.example"))
    assert send(channel(smtp_server), [it]) == [SendOutcome("sent", remote_id="2.0.0 OK: queued")]
    (got,) = smtp_server.messages
    assert got.mail_from == BOT
    assert got.rcpt_tos == ["ann@customer.example", "bob@customer.example"]
    assert got.raw == it.payload
    assert got.message["Message-ID"] == it.message_id


def test_headers_and_threading_arrive_intact(smtp_server: SmtpServer) -> None:
    it = item(html="<p>Hello</p>", auto_submitted="auto-generated", kind="check_in")
    send(channel(smtp_server), [it])
    msg = smtp_server.messages[0].message
    assert msg["Subject"] == "Re: Export broken [#7]"
    assert msg["In-Reply-To"] == "<orig@customer.example>"
    assert msg["References"].split() == ["<root@customer.example>", "<orig@customer.example>"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Supportbot-Kind"] == "check_in"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("html",)) is not None


def test_a_reply_from_a_real_mail_client_threads_back(smtp_server: SmtpServer) -> None:
    ours = item(ticket=42)
    send(channel(smtp_server), [ours])
    received = smtp_server.messages[0].message

    # What Thunderbird/Apple Mail/Outlook put in a reply (RFC 5322 3.6.4)
    reply = EmailMessage()
    reply["From"] = "Ann <ann@customer.example>"
    reply["To"] = str(received["From"])
    reply["Subject"] = "Re: " + str(received["Subject"])
    reply["Message-ID"] = "<reply-1@customer.example>"
    reply["In-Reply-To"] = str(received["Message-ID"])
    reply["References"] = f"{received['References']} {received['Message-ID']}"
    reply.set_content("It still does not work.")

    assert find_ticket_ref(str(reply["Subject"])) == 42
    chain = str(reply["References"]).split()
    assert chain == ["<root@customer.example>", "<orig@customer.example>", ours.message_id]
    assert reply["In-Reply-To"] == ours.message_id


def test_forward_carries_the_original_as_message_rfc822(smtp_server: SmtpServer) -> None:
    original = (b"From: Ann <ann@customer.example>\r\nSubject: Bounce\r\n"
                b"Message-ID: <orig@customer.example>\r\n\r\nMy mail bounces: 550 5.7.1\r\n")
    send(channel(smtp_server), [item(kind="forward", to=("owner@example.com",),
                                     attach_original=original, auto_submitted="auto-generated")])
    msg = smtp_server.messages[0].message
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "message/rfc822"
    assert attachment.get_content()["Message-ID"] == "<orig@customer.example>"


@pytest.mark.parametrize("vector", ["subject", "name", "address"])
def test_header_injection_attempts_reach_nobody_else(smtp_server: SmtpServer,
                                                     vector: str) -> None:
    evil = "\r\nBcc: evil@attacker.example\r\nX-Injected: yes"
    variants: dict[str, dict[str, Any]] = {
        "subject": {"subject": "Help" + evil},
        "name": {"to": [f"Ann{evil} <ann@customer.example>"],
                 "from_header": f"Acme{evil} <{BOT}>"},
        "address": {"to": [f"ann@customer.example{evil}", "ann@customer.example"]},
    }
    args = variants[vector]
    # the envelope is what the planner records: the requester's bare address
    send(channel(smtp_server), [item(envelope=["ann@customer.example"], **args)])
    (got,) = smtp_server.messages
    assert got.rcpt_tos == ["ann@customer.example"]
    msg = got.message
    names = [k.lower() for k in msg]
    assert "bcc" not in names and "x-injected" not in names
    assert sorted(names) == sorted([
        "from", "to", "subject", "date", "message-id", "in-reply-to", "references",
        "auto-submitted", "x-auto-response-suppress", "x-supportbot-ticket",
        "x-supportbot-kind", "mime-version", "content-type", "content-transfer-encoding"])
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@customer.example"]


def test_one_connection_carries_a_batch(smtp_server: SmtpServer) -> None:
    ch = channel(smtp_server)
    outcomes = send(ch, [item(n) for n in range(20)])
    assert [o.status for o in outcomes] == ["sent"] * 20
    assert len(smtp_server.messages) == 20
    assert smtp_server.connections == 1 and ch.connections == 1


def test_a_batch_of_many_tickets_shares_the_sessions_and_keeps_each_tickets_order(
        smtp_server: SmtpServer) -> None:
    items = [item(n, ticket=100 + n % 5) for n in range(30)]  # 6 messages for each of 5 tickets
    reported: list[int] = []

    async def on_outcome(it: OutboxItem, outcome: SendOutcome) -> None:
        assert outcome.status == "sent"
        reported.append(it.id)

    async def run() -> list[SendOutcome]:
        ch = channel(smtp_server, connections=2)
        try:
            return await ch.send_batch(items, on_outcome=on_outcome)
        finally:
            await ch.aclose()
    outcomes = asyncio.run(run())
    assert [o.status for o in outcomes] == ["sent"] * 30
    assert sorted(reported) == list(range(30))  # each reported once, as it happened
    assert smtp_server.connections == 2
    arrived: dict[int, list[int]] = {}
    for m in smtp_server.messages:
        ticket = find_ticket_ref(str(m.message["Subject"]))
        assert ticket is not None
        arrived.setdefault(ticket, []).append(int(m.message.get_content().split("#")[1]))
    assert arrived == {100 + t: [n for n in range(30) if n % 5 == t] for t in range(5)}


def test_one_configured_connection_means_one_session(smtp_server: SmtpServer) -> None:
    ch = channel(smtp_server, connections=1)
    outcomes = send(ch, [item(n, ticket=n) for n in range(6)])
    assert [o.status for o in outcomes] == ["sent"] * 6
    assert smtp_server.connections == 1 and ch.connections == 1


def test_a_configuration_problem_holds_every_session_of_the_batch() -> None:
    with SmtpServer(auth=("bot", "s3cret-pass")) as server:
        ch = channel(server, user="bot", password="wrong-pass", connections=3)
        outcomes = send(ch, [item(n, ticket=n) for n in range(9)])
        assert [o.status for o in outcomes] == ["retry"] * 9
        assert all("authentication refused" in o.detail for o in outcomes)
        assert server.connections <= 3 and server.messages == []


def test_reconnects_when_the_server_drops_the_connection_mid_batch(
        smtp_server: SmtpServer) -> None:
    smtp_server.drop_connections_after(3)
    ch = channel(smtp_server)
    outcomes = send(ch, [item(n) for n in range(7)])
    assert [o.status for o in outcomes] == ["sent"] * 7
    assert [m.message.get_content().strip() for m in smtp_server.messages] == [
        f"Hello #{n}" for n in range(7)]
    assert smtp_server.connections == 3


def test_temporary_failures_are_retried_until_accepted(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(2)  # 451 twice
    outcomes = send(channel(smtp_server), [item()])
    assert outcomes[0].status == "sent"
    assert smtp_server.data_attempts == 3 and len(smtp_server.messages) == 1


def test_temporary_failures_beyond_the_attempts_leave_it_to_the_outbox(
        smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(3, "452 4.3.1 Insufficient system storage")
    outcomes = send(channel(smtp_server, retry_attempts=3), [item(1), item(2)])
    assert outcomes[0] == SendOutcome("retry", "452 4.3.1 Insufficient system storage")
    assert outcomes[1].status == "sent"  # the next item is not held back
    assert smtp_server.data_attempts == 4


def test_a_batch_stops_waiting_once_its_retry_budget_is_spent(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(100, "421 4.7.0 Rate limit exceeded, slow down")
    outcomes = send(channel(smtp_server, retry_attempts=5, retry_budget=0.02),
                    [item(n) for n in range(4)])
    assert [o.status for o in outcomes] == ["retry"] * 4
    assert smtp_server.data_attempts < 4 * 5  # later items got a single attempt


def test_permanent_failure_is_final_and_never_retried(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, "554 5.7.1 Message rejected as spam")
    outcomes = send(channel(smtp_server), [item(1), item(2)])
    assert outcomes[0] == SendOutcome("failed", "554 5.7.1 Message rejected as spam")
    assert outcomes[1].status == "sent"
    assert smtp_server.data_attempts == 2  # one attempt for the rejected item, one for #2
    assert [m.message.get_content().strip() for m in smtp_server.messages] == ["Hello #2"]


def test_recipients_refused_permanently_fail_the_item(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("ann@customer.example")
    outcomes = send(channel(smtp_server), [item()])
    assert outcomes[0].status == "failed"
    assert "ann@customer.example: 550 5.1.1 No such user" in outcomes[0].detail
    assert smtp_server.data_attempts == 0


def test_partly_refused_recipients_still_count_as_sent(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("bob@customer.example")
    outcomes = send(channel(smtp_server), [item(to=("ann@customer.example",
                                                    "bob@customer.example"))])
    assert outcomes[0].status == "sent"
    assert "bob@customer.example: 550" in outcomes[0].detail
    assert smtp_server.messages[0].rcpt_tos == ["ann@customer.example"]


def test_recipient_refused_temporarily_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("ann@customer.example", "450 4.2.1 Mailbox busy")
    outcomes = send(channel(smtp_server), [item()])
    assert outcomes[0].status == "retry" and "450 4.2.1" in outcomes[0].detail


def test_server_down_is_a_retry_for_the_whole_batch() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ch = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, user=None, password=None,
                                  tls="none"), backoff=0.01, timeout=2)
    outcomes = send(ch, [item(n) for n in range(5)])
    assert [o.status for o in outcomes] == ["retry"] * 5
    assert "cannot reach SMTP server" in outcomes[0].detail
    assert ch.connections == 0


def test_auth_with_the_configured_credentials() -> None:
    with SmtpServer(auth=("bot", "s3cret-pass")) as server:
        outcomes = send(channel(server, user="bot", password="s3cret-pass"), [item()])
        assert outcomes[0].status == "sent"
        assert server.messages[0].auth_user == "bot"


def test_wrong_credentials_hold_the_batch_without_failing_it() -> None:
    with SmtpServer(auth=("bot", "s3cret-pass")) as server:
        outcomes = send(channel(server, user="bot", password="wrong-pass"), [item(1), item(2)])
        assert [o.status for o in outcomes] == ["retry", "retry"]
        assert "authentication refused" in outcomes[0].detail
        assert "wrong-pass" not in outcomes[0].detail
        assert server.connections == 1 and server.messages == []  # one try per batch


def test_missing_credentials_are_a_configuration_problem_not_a_failed_send() -> None:
    with SmtpServer(auth=("bot", "s3cret-pass")) as server:
        outcomes = send(channel(server), [item(1), item(2)])
        assert [o.status for o in outcomes] == ["retry", "retry"]
        assert "requires authentication" in outcomes[0].detail


def test_8bit_payload_is_announced_when_the_server_offers_8bitmime(
        smtp_server: SmtpServer) -> None:
    it = item(kind="forward", attach_original="Subject: x\n\nCafé\n".encode())
    assert not it.payload.isascii()
    outcomes = send(channel(smtp_server), [it])
    assert outcomes[0].status == "sent"
    assert smtp_server.messages[0].raw == it.payload


def test_malformed_envelope_addresses_are_never_guessed_at(smtp_server: SmtpServer) -> None:
    hostile = "Ann\r\nBcc: evil@attacker.example <ann@customer.example>"
    outcomes = send(channel(smtp_server), [
        item(1, envelope=[hostile]),
        item(2, envelope=[hostile, "bob@customer.example"]),
        item(3)])
    assert outcomes[0].status == "failed" and "invalid envelope" in outcomes[0].detail
    assert outcomes[1].status == "sent" and "not a valid address" in outcomes[1].detail
    assert outcomes[2].status == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["bob@customer.example"], ["ann@customer.example"]]


def test_null_envelope_sender_is_allowed(smtp_server: SmtpServer) -> None:
    it = item()
    it = OutboxItem(**{**it.__dict__, "envelope_from": ""})
    assert send(channel(smtp_server), [it])[0].status == "sent"
    assert smtp_server.messages[0].mail_from == "<>"


def test_a_failure_to_record_an_outcome_stops_every_session_and_reaches_the_caller(
        smtp_server: SmtpServer) -> None:
    """The outbox must hear of it (and retry the rest): no session goes on sending alone.

    The odd tickets' session is held in its first ``on_outcome`` until the end, so the
    outcome does not depend on which session the machine happens to run faster: only the
    cancellation can release it, and a session left running would hang the batch."""
    items = [item(n, ticket=n) for n in range(10)]
    never = asyncio.Event()

    async def on_outcome(it: OutboxItem, outcome: SendOutcome) -> None:
        if it.id == 2:
            raise RuntimeError("disk full")
        if it.id % 2:
            await never.wait()

    async def run() -> None:
        ch = channel(smtp_server, connections=2)
        try:
            with pytest.raises(RuntimeError, match="disk full"):
                await asyncio.wait_for(ch.send_batch(items, on_outcome=on_outcome), 10)
            await asyncio.sleep(0.2)  # a session left running would send more meanwhile
        finally:
            await ch.aclose()
    asyncio.run(run())
    sent = {find_ticket_ref(str(m.message["Subject"])) for m in smtp_server.messages}
    assert {0, 2} <= sent <= {0, 1, 2}  # each session stopped where it stood
