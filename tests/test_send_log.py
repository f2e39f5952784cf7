"""The log names every message the bot sends or gives up on, with real SMTP underneath.

One line per message, so an operator can answer "did Ann get our reply?" from the log alone:
kind, ticket, recipient, channel and Message-ID; retries and failures at warning; mail held
back by the daily cap at info; quarantined mail at warning with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bot.channels.smtp import SmtpChannel
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.vocab import ChannelName
from tests.helpers import deliver, embedded_settings, make_mail
from tests.servers.smtp import SmtpServer

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
QUESTION = ("How do I export my contacts to a CSV file? I looked in the settings page but "
            "could not find a button for it.")


def smtp_settings(tmp: Path, smtp: SmtpServer) -> Settings:
    return embedded_settings(tmp, SUPPORTBOT_SMTP_HOST=smtp.host,
                             SUPPORTBOT_SMTP_PORT=str(smtp.port), SUPPORTBOT_SMTP_TLS="none")


def run_cycles(settings: Settings, clock: FakeClock, *advances: float,
               between: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """A cycle, then ``between()`` and one more after each advance of the clock; every log
    event of them. The SMTP channel's own retries wait milliseconds, not seconds."""
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            channel = worker.channels[ChannelName.SMTP]
            assert isinstance(channel, SmtpChannel)
            channel.backoff = 0.001
            await worker.cycle()
            for seconds in advances:
                between()
                clock.advance(seconds)
                await worker.cycle()
    with capture_logs() as logs:
        asyncio.run(go())
    return logs


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def ask(tmp: Path, n: int, *, sender: str | None = None) -> None:
    deliver(tmp / "inbox", make_mail(
        sender=sender or f"Customer {n} <c{n}@customer{n}.example>", subject=f"Export {n}",
        body=QUESTION, message_id=f"<q{n}@customer.example>"), T0)


def test_three_answered_tickets_leave_three_sent_lines(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    for n in range(3):
        ask(tmp_path, n)
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0))
    sent = events(logs, "sent")
    assert len(sent) == 3 == len(smtp_server.messages)
    assert {e["log_level"] for e in sent} == {"info"}
    on_the_wire = {str(r.message["Message-ID"]): r.rcpt_tos for r in smtp_server.messages}
    for line in sent:
        assert line["kind"] == "acknowledge" and line["channel"] == "smtp"
        assert line["to"] == on_the_wire[line["message_id"]]
        assert isinstance(line["ticket"], int)
    assert sorted(e["ticket"] for e in sent) == [1, 2, 3]


def test_a_retry_within_the_batch_warns_then_the_send_is_logged(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    ask(tmp_path, 1)
    smtp_server.fail_next(1)
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0))
    (retry,) = events(logs, "smtp temporary failure, retrying")
    (sent,) = events(logs, "sent")
    assert retry["log_level"] == "warning" and "451" in retry["error"]
    assert retry["message_id"] == sent["message_id"] and retry["to"] == ["c1@customer1.example"]


def test_a_send_left_for_the_next_cycle_warns_and_its_success_is_logged(
        tmp_path: Path) -> None:
    server = SmtpServer().start()
    server.stop()  # its port now refuses connections
    ask(tmp_path, 1)
    settings = smtp_settings(tmp_path, server)
    revived = SmtpServer(port=server.port)  # the same address, listening again

    try:
        logs = run_cycles(settings, FakeClock(T0), 60, between=revived.start)
    finally:
        revived.stop()
    (retry,) = events(logs, "send will be retried")
    (sent,) = events(logs, "sent")
    assert retry["log_level"] == "warning" and "cannot reach" in retry["error"]
    assert retry["message_id"] == sent["message_id"] and retry["delay"] == 30
    assert sent["attempts"] == 2 and len(revived.messages) == 1


def test_a_refused_recipient_is_given_up_on_at_warning(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    ask(tmp_path, 1)
    smtp_server.refuse("c1@customer1.example")
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0))
    (failed,) = events(logs, "send failed")
    assert failed["log_level"] == "warning" and "550" in failed["error"]
    assert failed["kind"] == "acknowledge" and failed["channel"] == "smtp"
    assert failed["to"] == ["c1@customer1.example"] and failed["message_id"].startswith("<sb.1.")
    assert events(logs, "sent") == []


def test_mail_held_back_by_the_daily_cap_is_logged_at_info(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    for n in range(6):  # the cap is 5 automatic messages per address per 24 h
        ask(tmp_path, n, sender="Ann <ann@customer.example>")
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0))
    assert len(events(logs, "sent")) == 5
    (held,) = events(logs, "send suppressed")
    assert held["log_level"] == "info" and held["kind"] == "acknowledge"
    assert "cap" in " ".join(held["why"]) and held["message_id"].startswith("<sb.6.")


def test_quarantined_mail_is_logged_at_warning_with_its_reason(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    deliver(tmp_path / "inbox", b"\r\n\r\n", T0)  # no header at all: not an email
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0))
    (line,) = events(logs, "message quarantined")
    assert line["log_level"] == "warning" and "empty message" in line["reason"]


def test_follow_ups_leave_a_line_when_scheduled_and_when_their_mail_goes(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    deliver(tmp_path / "inbox", make_mail(subject="broken", body="it is broken again",
                                          message_id="<v1@customer.example>"), T0)
    logs = run_cycles(smtp_settings(tmp_path, smtp_server), FakeClock(T0), 25 * 3600)
    (scheduled,) = events(logs, "follow-up scheduled")
    assert scheduled["ticket"] == 1 and scheduled["kind"] == "check_in"
    assert [e["kind"] for e in events(logs, "sent")] == ["ask_info", "check_in"]
