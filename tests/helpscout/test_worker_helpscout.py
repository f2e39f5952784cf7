"""The worker end to end against the fake Help Scout, served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.demo.fake_helpscout import FakeHelpScout
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import helpscout_settings

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def hs() -> Iterator[tuple[FakeHelpScout, FakeClock, str]]:
    clock = FakeClock(T0)
    fake = FakeHelpScout(clock=clock)
    with fake.serve() as url:
        yield fake, clock, url


def settings_for(tmp: Path, url: str, fake: FakeHelpScout,
                 state: Path | str | None = None) -> Settings:
    return helpscout_settings(tmp, url, fake, state=state)


def cycles(settings: Settings, clock: FakeClock, steps: list[timedelta]) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            for step in steps:
                clock.advance(step)
                await worker.cycle()
    asyncio.run(go())


def bot_replies(fake: FakeHelpScout, conv: int) -> list[dict]:  # type: ignore[type-arg]
    return [t for t in fake.threads(conv) if t["type"] == "message"]


def test_new_conversation_is_acknowledged_in_help_scout(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str], state: Path | str) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("Training session for new agents?", "olivia@grant.example",
                                 "Do you offer a short onboarding session for three new agents "
                                 "who start in December?", customer_name="Olivia Grant")
    settings = settings_for(tmp_path, url, fake, state)
    cycles(settings, clock, [timedelta(0), timedelta(minutes=1)])
    replies = bot_replies(fake, conv)
    assert len(replies) == 1
    assert "Olivia" in replies[0]["body"]
    assert fake.conversation(conv)["status"] == "active"
    store = Store(settings.state)
    ticket = store.find_ticket(str(fake.conversation(conv)["number"]))
    assert ticket is not None and ticket.conversation_id == conv and ticket.state == "acknowledged"


def test_ask_check_in_closure_story_in_help_scout(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str], state: Path | str) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp_path, url, fake, state)
    cycles(settings, clock, [timedelta(0)])
    assert len(bot_replies(fake, conv)) == 1
    assert fake.conversation(conv)["status"] == "pending"
    cycles(settings, clock, [timedelta(hours=24, minutes=1)])  # a restart, then the check-in
    replies = bot_replies(fake, conv)
    assert len(replies) == 2
    assert "checking in to see whether this is still an issue" in replies[1]["body"]
    assert fake.conversation(conv)["status"] == "pending"
    cycles(settings, clock, [timedelta(hours=24, minutes=1), timedelta(hours=30)])
    assert len(bot_replies(fake, conv)) == 3
    assert fake.conversation(conv)["status"] == "closed"


def test_customer_reply_cancels_follow_ups_and_agent_pending_starts_them(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str]) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("not working", "priya@nat.example", "Not working for me today.")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    clock.advance(timedelta(hours=23))
    fake.add_customer_reply(conv, "The week view of the calendar is blank since Monday.")
    cycles(settings, clock, [timedelta(minutes=1), timedelta(hours=3)])
    # no check-in: she answered, and her details were decided on again: the product team
    # has it, and she is told so
    replies = bot_replies(fake, conv)
    assert len(replies) == 2
    assert "passed your message" in replies[1]["body"]
    clock.advance(timedelta(hours=1))
    fake.add_agent_reply(conv, "Thanks Priya! Which browser are you using?", status="pending")
    cycles(settings, clock, [timedelta(minutes=1)])
    cycles(settings, clock, [timedelta(hours=24, minutes=2)])
    replies = bot_replies(fake, conv)
    assert len(replies) == 4  # ask_info, the notice, the agent's question, our check-in
    assert "checking in" in replies[-1]["body"]


def test_critical_ticket_is_tagged_noted_and_requester_told(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str]) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("My emails aren't sending!!", "dana@whit.example",
                                 "Since 8am none of my emails to clients are going out.",
                                 tags=("vip",))
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    threads = fake.threads(conv)
    notes = [t for t in threads if t["type"] == "note"]
    assert notes and "deliverability" in notes[0]["body"].lower()
    assert len(bot_replies(fake, conv)) == 1
    tags = {fake.conversation(conv)["tags"][i]["tag"] for i in
            range(len(fake.conversation(conv)["tags"]))}
    assert {"vip", "priority-critical"} <= tags
