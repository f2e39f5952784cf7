"""The ticket's whole conversation (issue 13) in Help Scout, against the fake over real HTTP.

A customer thread on a conversation nobody owns is decided again on the conversation so
far: details now route it (assign when the owner is a Help Scout user id, an internal note,
a reply telling the customer who has it). An agent's reply thread is the team's: never the
customer's reply, never relayed, and a pending one starts the check-in schedule. After
every cycle no ticket may be open with no owner and nothing pending.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.demo.fake_helpscout import FakeHelpScout
from bot.runtime import open_worker
from bot.store import Store
from bot.tickets import stranded
from tests.conversation_helpers import rules_file
from tests.crash_helpers import KILLS, Kill, run_killed
from tests.helpers import REPO, helpscout_settings

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
DESMOND = 12  # a Help Scout user of the fake account: the product owner here
DETAILS = "When I click Save the page goes blank, every time, Chrome on Windows 11."

HS = tuple[FakeHelpScout, FakeClock, str]


@pytest.fixture
def hs() -> Iterator[HS]:
    clock = FakeClock(T0)
    fake = FakeHelpScout(clock=clock)
    with fake.serve() as url:
        yield fake, clock, url


def settings_for(tmp: Path, url: str, fake: FakeHelpScout,
                 rules: dict[str, Any] | None = None) -> Settings:
    return helpscout_settings(tmp, url, fake, rules=rules_file(tmp, rules))


def cycles(settings: Settings, clock: FakeClock, steps: list[timedelta]) -> None:
    """One worker for all steps; after each cycle, no ticket is stranded."""
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            for step in steps:
                clock.advance(step)
                await worker.cycle()
                assert stranded(worker.store) == [], f"stranded at {clock.now().isoformat()}"
    asyncio.run(go())


def ours(fake: FakeHelpScout, conv: int, kind: str = "message") -> list[dict[str, Any]]:
    """The bot's threads of ``kind`` (it writes as the fake's owner user)."""
    return [t for t in fake.threads(conv)
            if t["type"] == kind and t["createdBy"]["id"] == fake.owner_user_id]


def ticket_of(settings: Settings, fake: FakeHelpScout, conv: int) -> Any:
    store = Store(settings.state)
    try:
        ticket = store.find_ticket(str(fake.conversation(conv)["number"]))
        assert ticket is not None
        return ticket, store.activity(ticket.id), \
            store.ticket_outbox(ticket.id)
    finally:
        store.close()


def asked(tmp: Path, hs: HS, rules: dict[str, Any] | None = None) -> tuple[Settings, int]:
    fake, clock, url = hs
    conv = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp, url, fake, rules)
    cycles(settings, clock, [timedelta(0)])
    assert len(ours(fake, conv)) == 1
    assert fake.conversation(conv)["status"] == "pending"
    return settings, conv


def test_details_on_an_unowned_conversation_assign_note_and_tell_the_customer(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs, {"owners": {"product": str(DESMOND)}})

    clock.advance(timedelta(hours=1))
    fake.add_customer_reply(conv, DETAILS)
    cycles(settings, clock, [timedelta(minutes=1), timedelta(minutes=5)])

    assert fake.conversation(conv).get("assignee", {}).get("id") == DESMOND
    notes = ours(fake, conv, "note")
    assert len(notes) == 1 and "bugs" in notes[0]["body"]  # the rule that placed it
    replies = ours(fake, conv)
    assert len(replies) == 2  # the ask, then who has it
    assert "product" in replies[-1]["body"]
    assert fake.conversation(conv)["status"] == "active"
    ticket, _, _ = ticket_of(settings, fake, conv)
    assert (ticket.state, ticket.owner) == ("forwarded", str(DESMOND))

    cycles(settings, clock, [timedelta(hours=6)] * 12)  # three days: nothing more to them
    assert len(ours(fake, conv)) == 2


def test_an_agents_reply_is_the_teams_not_the_customers(tmp_path: Path, hs: HS) -> None:
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs)

    clock.advance(timedelta(hours=2))
    fake.add_agent_reply(conv, "Hi Chris, which page were you on when it broke?",
                         status="pending")
    cycles(settings, clock, [timedelta(minutes=1), timedelta(minutes=10)])
    answered_at = clock.now()

    assert len(ours(fake, conv)) == 1  # no second ask, no notice: the agent has it in hand
    assert not ours(fake, conv, "note")
    assert "assignee" not in fake.conversation(conv)
    ticket, activity, outbox = ticket_of(settings, fake, conv)
    assert ticket.state == "waiting"
    assert not [a for a in activity if a.action == "requester replied"]
    assert {r.kind for r in outbox} <= {"ask_info", "tags"}

    cycles(settings, clock, [timedelta(hours=6)] * 3 + [timedelta(hours=5, minutes=30)])
    assert len(ours(fake, conv)) == 1
    cycles(settings, clock, [timedelta(minutes=40)])
    replies = ours(fake, conv)
    assert len(replies) == 2 and clock.now() - answered_at < timedelta(hours=25)
    assert "checking in" in replies[-1]["body"]


def test_an_agents_reply_on_a_forwarded_conversation_is_never_relayed(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs)
    clock.advance(timedelta(hours=1))
    fake.add_customer_reply(conv, DETAILS)
    cycles(settings, clock, [timedelta(minutes=1), timedelta(minutes=5)])
    ticket, activity, _ = ticket_of(settings, fake, conv)
    assert ticket.owner == "product-support@example.com"
    before = len(fake.threads(conv))
    replied = [a for a in activity if a.action == "requester replied"]

    clock.advance(timedelta(hours=1))
    fake.add_agent_reply(conv, "Hi Chris, a fix for the blank page goes out tonight.",
                         status="pending")
    cycles(settings, clock, [timedelta(minutes=1), timedelta(minutes=10)])

    assert len(fake.threads(conv)) == before + 1  # the agent's thread, nothing of ours
    _, activity, outbox = ticket_of(settings, fake, conv)
    assert "relay" not in {r.kind for r in outbox}
    assert [a for a in activity if a.action == "requester replied"] == replied


def test_still_vague_twice_is_assigned_to_the_triage_user(tmp_path: Path, hs: HS) -> None:
    fake, clock, _ = hs
    ana = 11
    settings, conv = asked(tmp_path, hs, {"owners": {"triage": str(ana)}})
    for words in ("still not working", "Still not working. Please help"):
        clock.advance(timedelta(hours=1))
        fake.add_customer_reply(conv, words)
        cycles(settings, clock, [timedelta(minutes=1)])

    replies = ours(fake, conv)
    assert len(replies) == 3  # the ask, the second ask, "a person is looking at it"
    assert "browser" in replies[1]["body"]  # the second ask names what is still missing
    assert fake.conversation(conv).get("assignee", {}).get("id") == ana
    assert len(ours(fake, conv, "note")) == 1
    ticket, _, _ = ticket_of(settings, fake, conv)
    assert (ticket.state, ticket.owner) == ("forwarded", str(ana))
    cycles(settings, clock, [timedelta(hours=6)] * 12)
    assert len(ours(fake, conv)) == 3  # never a third request for details


def test_three_quick_customer_threads_get_one_reply(tmp_path: Path, hs: HS) -> None:
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs)
    steps = []
    for words in ("It's the editor.", "When I click Save the page goes blank.",
                  "Every time, Chrome on Windows 11."):
        clock.advance(timedelta(minutes=1))
        fake.add_customer_reply(conv, words)
        cycles(settings, clock, [timedelta(seconds=5)])
        steps.append(len(ours(fake, conv)))
    assert steps == [1, 1, 1]  # nothing yet: the quiet window after the ask
    cycles(settings, clock, [timedelta(minutes=3), T0 + timedelta(minutes=10) - clock.now()
                             - timedelta(minutes=3)])
    assert clock.now() == T0 + timedelta(minutes=10)
    assert len(ours(fake, conv)) == 2
    cycles(settings, clock, [timedelta(minutes=10)] * 6)
    assert len(ours(fake, conv)) == 2
    ticket, _, _ = ticket_of(settings, fake, conv)
    assert (ticket.state, ticket.owner) == ("forwarded", "product-support@example.com")


def test_an_agents_active_reply_stops_the_bots_follow_ups(tmp_path: Path, hs: HS) -> None:
    """After the bot's ask, an agent takes over ("looking into it now", status active): the
    bot must not check in with the customer, nor close the conversation under the agent."""
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs)
    clock.advance(timedelta(hours=2))
    fake.add_agent_reply(conv, "Hi Chris, I'm looking into it now.", status="active")
    cycles(settings, clock, [timedelta(minutes=1)] + [timedelta(hours=6)] * 12)

    assert len(ours(fake, conv)) == 1  # the ask only
    assert fake.conversation(conv)["status"] == "active"


def test_the_owners_answer_in_help_scout_stops_the_reminder_and_starts_the_check_in(
        tmp_path: Path, hs: HS) -> None:
    """Story 3 in Help Scout: the owner (a user) answers in the app, leaving it pending."""
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs, {"owners": {"product": str(DESMOND)}})
    clock.advance(timedelta(hours=1))
    fake.add_customer_reply(conv, DETAILS)
    cycles(settings, clock, [timedelta(minutes=1)])
    assert len(ours(fake, conv)) == 2 and len(ours(fake, conv, "note")) == 1

    clock.advance(timedelta(hours=2))
    fake.add_agent_reply(conv, "Hi Chris, a fix is out: does Save work for you now?",
                         user_id=DESMOND, status="pending")
    cycles(settings, clock, [timedelta(minutes=1)] + [timedelta(hours=6)] * 3
           + [timedelta(hours=5, minutes=50)])
    assert len(ours(fake, conv)) == 2  # nothing relayed, nothing repeated
    cycles(settings, clock, [timedelta(minutes=20)])
    replies = ours(fake, conv)
    assert len(replies) == 3 and "checking in" in replies[-1]["body"]
    cycles(settings, clock, [timedelta(hours=6)] * 8)
    notes = ours(fake, conv, "note")
    assert len(notes) == 1, [n["body"][:80] for n in notes]  # no owner reminder note


@pytest.mark.parametrize("act", ["assign", "active"])
def test_an_agents_assignment_or_status_change_leaves_it_with_someone(
        tmp_path: Path, hs: HS, act: str) -> None:
    """After the bot's ask an agent takes the conversation in Help Scout without replying:
    the bot steps back, and the ticket is the agent's (the invariant after every cycle)."""
    fake, clock, _ = hs
    settings, conv = asked(tmp_path, hs)
    clock.advance(timedelta(hours=2))
    if act == "assign":
        fake.assign_by_agent(conv, 11)
    else:
        fake.set_status(conv, "active")
    cycles(settings, clock, [timedelta(minutes=1)] + [timedelta(hours=6)] * 8)
    assert len(ours(fake, conv)) == 1
    ticket, _, _ = ticket_of(settings, fake, conv)
    assert ticket.owner  # Ana (user 11), however the fix names her


def test_sigkills_between_the_steps_repeat_nothing_in_help_scout(tmp_path: Path, hs: HS) -> None:
    """Story 1 in Help Scout, each step in worker processes SIGKILLed before and right after
    its writes: one ask, one note, one notice, the assignment; the ticket forwarded."""
    fake, clock, url = hs
    rules = {"owners": {"product": str(DESMOND)}}
    env = {"SUPPORTBOT_STATE": str(tmp_path / "state.db"),
           "SUPPORTBOT_RULES": str(rules_file(tmp_path, rules)),
           "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
           "SUPPORTBOT_HELPSCOUT_APP_ID": fake.app_id,
           "SUPPORTBOT_HELPSCOUT_APP_SECRET": fake.app_secret,
           "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": str(fake.mailbox_id),
           "SUPPORTBOT_HELPSCOUT_BASE_URL": url}
    conv = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")

    def step(kills: tuple[Kill, ...] = ("before-send", "after-send")) -> None:
        for kill in kills:
            status = run_killed(env, clock.now(), kill, tmp_path)
            assert status == -signal.SIGKILL, (tmp_path / "crash-child.log").read_text()[-3000:]
            store = Store(env["SUPPORTBOT_STATE"])
            try:
                assert stranded(store) == []
            finally:
                store.close()

    step()
    clock.advance(timedelta(hours=1))
    fake.add_customer_reply(conv, DETAILS)
    step(KILLS)

    assert len(ours(fake, conv)) == 2  # the ask, then who has it: each once
    assert len(ours(fake, conv, "note")) == 1
    assert fake.conversation(conv)["assignee"]["id"] == DESMOND  # (assigning twice is harmless)
    store = Store(env["SUPPORTBOT_STATE"])
    try:
        ticket = store.find_ticket(str(fake.conversation(conv)["number"]))
        assert ticket is not None and ticket.state == "forwarded"
    finally:
        store.close()
