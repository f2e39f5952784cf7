"""An empty store answers no one twice in Help Scout (the fake Help Scout over real HTTP).

Our threads carry an invisible marker (bot/helpscout/marker.py): after the state file is
lost, a new worker finds them, recreates the tickets with their states and the pending
check-in (due from the time of our question), re-posts nothing, and answers only the
conversation that is really new.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout, Fault
from bot.store import Store
from tests.helpscout.test_worker_helpscout import T0, bot_replies, cycles, hs, settings_for
from tests.rebuild.test_empty_store_imap import lose_the_store

__all__ = ["hs"]  # the fixture


def test_an_empty_store_rebuilds_from_our_threads_and_re_posts_nothing(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str], state: Path | str,
        request: pytest.FixtureRequest) -> None:
    fake, clock, url = hs
    training = fake.add_conversation("Training session for new agents?", "olivia@grant.example",
                                     "Do you offer a short onboarding session for three new "
                                     "agents who start in December?", customer_name="Olivia")
    vague = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp_path, url, fake).with_(
        state_url=state if isinstance(state, str) else None)
    cycles(settings, clock, [timedelta(0)])
    assert [len(bot_replies(fake, c)) for c in (training, vague)] == [1, 1]
    store = Store(settings.state)
    states = {t.conversation_id: t.state for t in store.tickets_since(T0 - timedelta(days=1))}
    store.close()
    assert states == {training: "acknowledged", vague: "waiting"}

    settings = lose_the_store(settings, request)
    clock.advance(timedelta(hours=2))
    new = fake.add_conversation("Exporting contacts", "nina@new.example",
                                "How do I export my contacts to a CSV file? I looked in the "
                                "settings page but could not find a button for it.")
    cycles(settings, clock, [timedelta(0), timedelta(minutes=5)])

    assert [len(bot_replies(fake, c)) for c in (training, vague, new)] == [1, 1, 1]
    store = Store(settings.state)
    rebuilt = {t.conversation_id: t.state for t in store.tickets_since(T0 - timedelta(days=1))}
    timers = [(t.kind, t.due_at) for t in store.pending_timers(limit=50)
              if t.kind in ("check_in", "close")]
    store.close()
    assert rebuilt[training] == "acknowledged" and rebuilt[vague] == "waiting"
    assert timers == [("check_in", T0 + timedelta(hours=24))]

    cycles(settings, clock, [T0 + timedelta(hours=23, minutes=59) - clock.now()])
    assert len(bot_replies(fake, vague)) == 1
    cycles(settings, clock, [timedelta(minutes=2)])
    replies = bot_replies(fake, vague)
    assert len(replies) == 2 and "checking in" in replies[1]["body"]
    assert [len(bot_replies(fake, c)) for c in (training, new)] == [1, 1]


def test_an_unreadable_history_keeps_the_source_unread_until_it_can_be_read(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str],
        request: pytest.FixtureRequest) -> None:
    fake, clock, url = hs
    vague = fake.add_conversation("help", "chris@adams.example", "help", customer_name="Chris")
    settings = settings_for(tmp_path, url, fake)
    cycles(settings, clock, [timedelta(0)])
    settings = lose_the_store(settings, request)
    # a 400 is not retried: the listing fails at once, as an outage does after its retries
    fake.inject(Fault("status", times=5, method="GET", path=r"^/v2/conversations$",
                      status=400))
    cycles(settings, clock, [timedelta(minutes=1)])
    assert len(bot_replies(fake, vague)) == 1
    store = Store(settings.state)
    assert store.tickets_by_state() == {}  # nothing read, nothing answered
    store.close()

    fake.faults.clear()
    cycles(settings, clock, [timedelta(minutes=1)])
    assert len(bot_replies(fake, vague)) == 1
    store = Store(settings.state)
    assert store.tickets_by_state() == {"waiting": 1}
    store.close()
