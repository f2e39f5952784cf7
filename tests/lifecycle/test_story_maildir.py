"""The follow-up story on the Maildir path, on the injectable clock.

ask -> 24 h -> check-in -> 24 h -> closure; a reply at 23 h cancels it; a restart between
the two timers still gives exactly one check-in and one closure.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings, make_mail, outbox_mail, plain_text

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
VAGUE = dict(subject="help", body="help\n\nSent from my iPhone", message_id="<vague@cust.example>")


def run_cycles(settings, clock, steps):  # type: ignore[no-untyped-def]
    """steps: list of (advance, callback-before-cycle or None); one worker for all."""
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            for delta, before in steps:
                clock.advance(delta)
                if before:
                    before()
                await worker.cycle()
    asyncio.run(go())


def kinds(tmp: Path) -> list[str]:
    return [s.kind for s in outbox_mail(tmp / "outbox")]


def test_ask_then_check_in_then_closure(tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(**VAGUE), T0)
    run_cycles(settings, clock, [(0, None)])
    assert kinds(tmp_path) == ["ask_info"]
    run_cycles(settings, clock, [(timedelta(hours=23, minutes=59), None)])
    assert kinds(tmp_path) == ["ask_info"]
    run_cycles(settings, clock, [(timedelta(minutes=2), None)])
    assert kinds(tmp_path) == ["ask_info", "check_in"]
    check_in = outbox_mail(tmp_path / "outbox")[1]
    body = plain_text(check_in.message)
    assert "checking in to see whether this is still an issue" in body
    assert check_in.message["Auto-Submitted"] == "auto-generated"
    assert check_in.message["In-Reply-To"] == "<vague@cust.example>"
    run_cycles(settings, clock, [(timedelta(hours=24, minutes=1), None)])
    assert kinds(tmp_path) == ["ask_info", "check_in", "closure"]
    store = Store(settings.state)
    ticket = store.get_ticket(1)
    assert ticket is not None and ticket.state == "closed"
    actions = [a.action for a in store.activity(1)]
    assert actions.index("check-in") < actions.index("closed")
    run_cycles(settings, clock, [(timedelta(days=5), None)])
    assert kinds(tmp_path) == ["ask_info", "check_in", "closure"]


def test_reply_at_23_hours_cancels_the_check_in(tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(**VAGUE), T0)
    reply = make_mail(subject="Re: help", body="The calendar page is blank since Monday.",
                      message_id="<reply@cust.example>", in_reply_to="<vague@cust.example>")
    run_cycles(settings, clock, [
        (0, None),
        (timedelta(hours=23), lambda: deliver(tmp_path / "inbox", reply, clock.now())),
        (timedelta(hours=2), None),
        (timedelta(days=3), None),
    ])
    assert kinds(tmp_path)[:3] == ["ask_info", "forward", "forwarded"]  # the details route it
    assert "check_in" not in kinds(tmp_path)
    store = Store(settings.state)
    ticket = store.get_ticket(1)
    assert ticket is not None and ticket.state == "forwarded"
    assert store.pending_timers(1) == [] or all(
        t.kind not in ("check_in", "close") for t in store.pending_timers(1))
    assert [m.status for m in store.ticket_messages(1)] == ["ticket", "reply"]


def test_restart_between_timers_gives_one_check_in_and_one_closure(
        tmp_path: Path, state: Path | str) -> None:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state))
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", make_mail(**VAGUE), T0)
    # every step is a fresh worker process state: a restart between each
    for delta in (0, timedelta(hours=24, minutes=1), timedelta(minutes=1),
                  timedelta(hours=24, minutes=1), timedelta(minutes=1)):
        run_cycles(settings, clock, [(delta, None)])
    assert kinds(tmp_path) == ["ask_info", "check_in", "closure"]


def test_friday_evening_ask_is_checked_on_monday_business_time(
        tmp_path: Path, state: Path | str) -> None:
    rules = (Path(__file__).resolve().parents[2] / "rules.yaml").read_text()
    assert "business_hours" in rules  # the shipped file documents it (commented or set)
    custom = tmp_path / "rules.yaml"
    custom.write_text(_with_business_hours(rules))
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(state),
                                 SUPPORTBOT_RULES=str(custom))
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # 19:30 in Berlin
    clock = FakeClock(friday_evening)
    deliver(tmp_path / "inbox", make_mail(**VAGUE), friday_evening)
    run_cycles(settings, clock, [(0, None)])
    assert kinds(tmp_path) == ["ask_info"]
    store = Store(settings.state)
    (timer,) = [t for t in store.pending_timers(1) if t.kind == "check_in"]
    store.close()
    due = timer.due_at
    assert due == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 Berlin
    run_cycles(settings, clock, [(timedelta(hours=24, minutes=5), None)])  # Saturday evening
    assert kinds(tmp_path) == ["ask_info"]
    clock.set(due + timedelta(minutes=1))
    run_cycles(settings, clock, [(0, None)])
    assert kinds(tmp_path) == ["ask_info", "check_in"]


def _with_business_hours(rules: str) -> str:
    """Insert a Berlin business calendar into the shipped rules' settings block."""
    import yaml

    data = yaml.safe_load(rules)
    data["settings"]["business_hours"] = {
        "timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
        "hours": "09:00-17:00", "holidays": ["2026-12-25"]}
    return yaml.safe_dump(data, sort_keys=False)
