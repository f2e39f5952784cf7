"""The pattern report: spikes flagged, and mailed once per period on the rules' schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import yaml

from bot.clock import FakeClock
from bot.lifecycle.report_schedule import period_start
from bot.reports import build
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_period_start_is_anchored_at_local_time() -> None:
    day = timedelta(days=1)
    at = time(8, 0)
    assert period_start(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), day, at, "UTC") == \
        datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert period_start(datetime(2026, 11, 23, 7, 59, tzinfo=UTC), day, at, "UTC") == \
        datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_four_deliverability_tickets_in_two_hours_are_flagged(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    for i in range(4):
        deliver(tmp_path / "inbox", make_mail(
            sender=f"User {i} <u{i}@c{i}.example>", message_id=f"<d{i}@x>",
            subject="Emails not sending", body="None of my emails are going out since noon."),
            T0 + timedelta(minutes=20 * i))

    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0 + timedelta(hours=1, minutes=5))) as w:
            await w.cycle()
    asyncio.run(go())
    store = Store(settings.state_path)
    data = build(store, 7, T0 + timedelta(hours=2))
    assert data["by_topic"].get("deliverability") == 4
    assert data["spikes"] and "4 deliverability tickets in 2 hours" in data["spikes"][0]["message"]


def test_report_is_mailed_once_per_period(tmp_path: Path) -> None:
    rules = yaml.safe_load((REPO / "rules.yaml").read_text())
    rules["settings"]["report"] = {"every": "1d", "at": "08:00", "to": "team@example.com"}
    custom = tmp_path / "rules.yaml"
    custom.write_text(yaml.safe_dump(rules, sort_keys=False))
    settings = embedded_settings(tmp_path, SUPPORTBOT_RULES=str(custom))
    clock = FakeClock(T0)

    async def go(steps: list[timedelta]) -> None:
        async with open_worker(settings, clock=clock) as w:
            for step in steps:
                clock.advance(step)
                await w.cycle()
    asyncio.run(go([timedelta(0), timedelta(hours=3)]))
    asyncio.run(go([timedelta(hours=1)]))  # a restart in the same period
    reports = [m for m in outbox_mail(tmp_path / "outbox") if m.kind == "report"]
    assert len(reports) == 1 and reports[0].to == "team@example.com"
    asyncio.run(go([timedelta(hours=20)]))  # the next day after 08:00
    assert len([m for m in outbox_mail(tmp_path / "outbox") if m.kind == "report"]) == 2
