"""What the people in a Help Scout account do between two polls, against the fake over HTTP.

Agents close, answer, take and merge conversations; the bot's follow-ups and replies must
never undo what they did. Each story here failed before the bot read status changes
(`lineitem` threads), re-read conversations before timer-driven replies, computed its
reply status from the conversation as just read, and stored merges.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout, Fault
from bot.store import Store
from tests.helpscout.test_worker_helpscout import T0, bot_replies, cycles, hs, settings_for

__all__ = ["hs"]  # the fixture, re-used

HS = tuple[FakeHelpScout, FakeClock, str]
DAY = timedelta(hours=24, minutes=1)


def ticket_of(store: Store, fake: FakeHelpScout, conv: int) -> Any:
    ticket = store.find_ticket(str(fake.conversation(conv)["number"]))
    assert ticket is not None
    return ticket


def test_agent_closes_after_the_bot_asked_no_check_in_no_closure(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    assert len(bot_replies(fake, conv)) == 1 and fake.conversation(conv)["status"] == "pending"
    clock.advance(timedelta(hours=2))
    fake.set_status(conv, "closed", user_id=11)  # Ana closes it: no reply, a line item
    cycles(settings, clock, [timedelta(minutes=1), DAY, DAY])
    assert len(bot_replies(fake, conv)) == 1  # no check-in, no closure
    assert fake.conversation(conv)["status"] == "closed"
    store = Store(settings.state_path)
    ticket = ticket_of(store, fake, conv)
    assert ticket.state == "closed"
    assert not store.pending_timers(ticket.id)
    closed = [a for a in store.activity(ticket.id) if a.action == "closed"]
    assert closed and "Ana Ruiz" in closed[0].detail
    assert (T0 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M") in closed[0].detail


def test_agent_marks_spam_cancels_follow_ups(tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    conv = fake.add_conversation("help", "win@prize.example", "help")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    clock.advance(timedelta(hours=1))
    fake.set_status(conv, "spam", user_id=12)
    cycles(settings, clock, [timedelta(minutes=1), DAY, DAY])
    assert len(bot_replies(fake, conv)) == 1
    assert fake.conversation(conv)["status"] == "spam"
    store = Store(settings.state_path)
    assert not store.pending_timers(ticket_of(store, fake, conv).id)
    assert any("spam" in a.detail for a in store.activity(ticket_of(store, fake, conv).id))


def test_timer_reply_re_reads_the_conversation_when_the_listing_lags(
        tmp_path: Path, hs: HS) -> None:
    """The list is an index that can lag: before a check-in the bot reads the conversation."""
    fake, clock, url = hs
    conv = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    clock.advance(timedelta(hours=23))
    fake.assign_by_agent(conv, 11, user_id=11)  # Ana takes it
    fake.inject(Fault("status", times=1000, method="GET", path=r"^/v2/conversations$",
                      status=503))
    cycles(settings, clock, [timedelta(hours=1, minutes=1)])
    assert len(bot_replies(fake, conv)) == 1  # no check-in: an agent took it


def test_agent_answers_and_closes_between_two_polls_nothing_reopens_it(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])  # the bot is running; the mailbox is empty
    conv = fake.add_conversation("Invoice copy", "li@chen.example",
                                 "Could you send me a copy of my October invoice?")
    clock.advance(timedelta(seconds=10))
    fake.add_agent_reply(conv, "Here it is, Li!", status="closed")
    cycles(settings, clock, [timedelta(seconds=20), timedelta(minutes=1), DAY, DAY])
    assert fake.conversation(conv)["status"] == "closed"
    assert len(bot_replies(fake, conv)) == 1  # only Ana's
    store = Store(settings.state_path)
    assert ticket_of(store, fake, conv).state == "closed"


def test_reply_status_comes_from_the_conversation_as_just_read(
        tmp_path: Path, hs: HS) -> None:
    """An agent sets pending after the bot planned an acknowledgement: it stays pending."""
    fake, clock, url = hs
    conv = fake.add_conversation("Training session for new agents?", "olivia@grant.example",
                                 "Do you offer a short onboarding session for new agents?")
    settings = settings_for(tmp_path, url, fake)
    fake.inject(Fault("status", times=5, method="POST", path=r"/reply$", status=503))
    cycles(settings, clock, [timedelta(0)])  # planned; the first attempt answered 503
    fake.set_status(conv, "pending", user_id=11)
    cycles(settings, clock, [timedelta(minutes=10)])
    assert len(bot_replies(fake, conv)) == 1
    assert fake.conversation(conv)["status"] == "pending"


def test_duplicate_merged_into_a_closed_conversation_sends_nothing(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    first = fake.add_conversation("Invoice copy", "li@chen.example",
                                  "Could you send me a copy of my October invoice?")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    fake.add_agent_reply(first, "Here it is, Li!", status="closed")
    cycles(settings, clock, [timedelta(minutes=5)])
    clock.advance(timedelta(hours=3))
    dup = fake.add_conversation("Invoice copy (again)", "li@chen.example",
                                "Sending this again: could you send my October invoice?")
    cycles(settings, clock, [timedelta(minutes=1)])
    assert len(bot_replies(fake, dup)) == 1  # the duplicate was acknowledged
    before = len(bot_replies(fake, first))
    fake.merge(dup, into=first, renumber_threads=True)
    cycles(settings, clock, [timedelta(minutes=1), timedelta(minutes=5), DAY, DAY])
    assert fake.conversation(first)["status"] == "closed"
    assert len(bot_replies(fake, first)) == before + 1  # only the moved acknowledgement
    store = Store(settings.state_path)
    assert ticket_of(store, fake, first).state == "closed"
    assert store.get_meta(f"helpscout:merged:{dup}") == str(first)


def test_merged_follow_ups_continue_once_on_the_survivor(tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    first = fake.add_conversation("help", "chris@adams.example", "help")
    dup = fake.add_conversation("broken", "chris@adams.example", "broken again")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])  # both asked for details: two schedules
    clock.advance(timedelta(hours=1))
    fake.merge(dup, into=first)
    cycles(settings, clock, [timedelta(minutes=1), DAY])
    check_ins = [t for t in bot_replies(fake, first) if "checking in" in t["body"].lower()]
    assert len(check_ins) == 1
    store = Store(settings.state_path)
    survivor = ticket_of(store, fake, first)
    assert not [a for a in store.activity(survivor.id) if a.action == "requester replied"]
    merged = store.ticket_by_conversation(dup)
    assert merged is not None and merged.state == "closed"


def test_stored_merge_answers_after_the_redirect_expires(tmp_path: Path, hs: HS) -> None:
    """Help Scout answers 301 for 60 days, then 404: the stored mapping still knows."""
    fake, clock, url = hs
    first = fake.add_conversation("Invoice", "li@chen.example", "Could you send my invoice?")
    dup = fake.add_conversation("Invoice", "li@chen.example", "Invoice please, for October")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    fake.merge(dup, into=first)
    cycles(settings, clock, [timedelta(minutes=1)])
    clock.advance(timedelta(days=61))
    from bot.config import HelpScoutSettings
    from bot.helpscout.client import HelpScoutClient
    from bot.helpscout.merges import StoredMerges
    from tests.helpscout.conftest import run

    assert settings.helpscout is not None
    store = Store(settings.state_path)
    client = HelpScoutClient(HelpScoutSettings(**settings.helpscout.__dict__),
                             clock=clock, merges=StoredMerges(store))

    async def read() -> dict[str, Any]:
        try:
            return await client.get_conversation(dup)
        finally:
            await client.aclose()

    assert run(read())["id"] == first


def test_first_start_on_a_big_old_mailbox_answers_the_new_ones_first(
        tmp_path: Path, hs: HS) -> None:
    fake, clock, url = hs
    for n in range(5000):
        fake.add_conversation(f"Old question {n}", f"old{n}@example.com", "An old question.",
                              created_at=T0 - timedelta(days=30, minutes=n))
    new = [fake.add_conversation("Training session for new agents?", "olivia@grant.example",
                                 "Do you offer a short onboarding session for new agents?",
                                 created_at=T0 - timedelta(hours=2)),
           fake.add_conversation("Invoice copy", "li@chen.example",
                                 "Could you send me a copy of my October invoice?",
                                 created_at=T0 - timedelta(minutes=5))]
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    assert all(len(bot_replies(fake, conv)) == 1 for conv in new)
    assert fake.stats.by_endpoint["GET /v2/conversations"] <= 3
    replied = {c for c in fake.conversation_ids() if bot_replies(fake, c)}
    assert replied == set(new)


def test_a_long_catch_up_is_paced_and_new_conversations_go_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an outage, a backlog bigger than one cycle's list budget resumes page by page,
    and a conversation created meanwhile is answered in the very next cycle. (A budget of 4
    pages of 5 instead of 40 of 25: the same logic, a fiftieth of the conversations.)"""
    monkeypatch.setattr("bot.sources.helpscout.LIST_BUDGET", 4)
    clock = FakeClock(T0)
    fake = FakeHelpScout(clock=clock, page_size=5)
    with fake.serve() as url:
        _catch_up(tmp_path, fake, clock, url)


def _catch_up(tmp_path: Path, fake: FakeHelpScout, clock: FakeClock, url: str) -> None:
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])  # a first start on an empty mailbox
    clock.advance(timedelta(hours=6))  # the worker was down; 46 conversations arrived
    for n in range(46):
        fake.add_conversation(f"Question {n}", f"c{n}@example.com", "A question about orders.",
                              created_at=clock.now() - timedelta(minutes=7 * (46 - n)))
    cycles(settings, clock, [timedelta(minutes=1)])
    answered = sum(1 for c in fake.conversation_ids() if bot_replies(fake, c))
    assert 0 < answered < 46  # one cycle's budget, not the whole backlog
    late = fake.add_conversation("Urgent: login broken", "ivy@new.example",
                                 "I cannot log in since this morning, please help.")
    cycles(settings, clock, [timedelta(minutes=1)])
    assert len(bot_replies(fake, late)) == 1  # answered in the next cycle, backlog or not
    cycles(settings, clock, [timedelta(minutes=1)] * 3)
    counts = [len(bot_replies(fake, c)) for c in fake.conversation_ids()]
    assert counts == [1] * len(counts), sorted(set(counts))
    assert fake.stats.rate_limited == 0


def test_help_scout_only_owner_reminder_and_alert_are_notes(tmp_path: Path, hs: HS) -> None:
    """No mail channel: the owner (an address) and on-call still hear, where the team works."""
    fake, clock, url = hs
    conv = fake.add_conversation("My emails aren't sending!!", "dana@whit.example",
                                 "Since 8am none of my emails to clients are going out.")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    notes = [t for t in fake.threads(conv) if t["type"] == "note"]
    assert any("oncall@example.com" in n["body"] for n in notes)  # the critical alert
    cycles(settings, clock, [timedelta(hours=48, minutes=5)])
    notes = [t for t in fake.threads(conv) if t["type"] == "note"]
    reminders = [n for n in notes if "Reminder" in n["body"]]
    assert len(reminders) == 1 and "deliverability@example.com" in reminders[0]["body"]


def test_a_moved_thread_is_known_by_its_id_once_the_merge_is(tmp_path: Path, hs: HS) -> None:
    """The id survived but the body did not (re-rendered HTML): once a 301 has told the bot
    of the merge, the thread id alone recognises the moved thread."""
    fake, clock, url = hs
    first = fake.add_conversation("Invoice copy", "li@chen.example",
                                  "Could you send me a copy of my October invoice?")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    fake.add_agent_reply(first, "Here it is, Li!", status="closed")
    dup = fake.add_conversation("help", "li@chen.example", "help")  # asked for details
    cycles(settings, clock, [timedelta(minutes=5)])
    fake.inject(Fault("status", times=1000, method="GET", path=r"^/v2/conversations$",
                      status=503))  # the listing lags; the timer's re-read finds the merge
    fake.merge(dup, into=first)
    for thread in fake._conversations[first].threads:  # Help Scout re-rendered the HTML
        if thread["type"] == "customer" and thread.get("body") == "help":
            thread["body"] = "<div>help</div>"
    before = len(bot_replies(fake, first))
    cycles(settings, clock, [DAY])
    assert len(bot_replies(fake, first)) == before  # no check-in into a closed survivor
    store = Store(settings.state_path)
    assert store.get_meta(f"helpscout:merged:{dup}") == str(first)
    survivor = ticket_of(store, fake, first)
    assert survivor.state == "closed"
    assert not [a for a in store.activity(survivor.id) if a.action == "reopened"]
