"""A Help Scout thread no parser likes is one item: the conversations around it are answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout
from bot.runtime import open_worker
from bot.store import Store
from tests.helpscout.test_worker_helpscout import bot_replies, settings_for

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POISONS = {
    "charref-4301-digits": "<p>Hello &#" + "1" * 4301 + "; there</p>",
    "hex-charref-5000-digits": "<p>&#x" + "f" * 5000 + "</p>",
    "lone-surrogate": "<p>caf\ud800 au lait, my export is broken</p>",
}


@pytest.fixture
def hs() -> Iterator[tuple[FakeHelpScout, FakeClock, str]]:
    clock = FakeClock(T0)
    fake = FakeHelpScout(clock=clock)
    with fake.serve() as url:
        yield fake, clock, url


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_poison_thread_between_normal_ones_costs_nobody_an_answer(
        tmp_path: Path, hs: tuple[FakeHelpScout, FakeClock, str], poison: str) -> None:
    fake, clock, url = hs
    before = fake.add_conversation("Exporting contacts", "olivia@grant.example",
                                   "How do I export my contacts to a CSV file?",
                                   customer_name="Olivia Grant")
    bad = fake.add_conversation("A question", "eve@evil.example", POISONS[poison])
    after = fake.add_conversation("Training for new agents", "kim@lee.example",
                                  "Do you offer onboarding sessions for new agents?",
                                  customer_name="Kim Lee")
    settings = settings_for(tmp_path, url, fake)

    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
            clock.advance(timedelta(minutes=1))
            await worker.cycle()
    asyncio.run(go())
    assert len(bot_replies(fake, before)) == 1
    assert len(bot_replies(fake, after)) == 1
    store = Store(settings.state_path)
    counts = store.message_counts()
    # the poison is answered (its text made readable) or held with its reason: never lost
    held = store.quarantined()
    assert len(bot_replies(fake, bad)) == 1 or [q.ref.split(":")[1] for q in held] == [str(bad)]
    assert counts.get("ticket", 0) + counts.get("quarantined", 0) == 3
