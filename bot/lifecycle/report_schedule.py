"""Mailing the pattern report to the team on the schedule in rules.yaml (`settings.report`).

One report per period: the period's start is its idempotency key, so a restart or a
second cycle in the same period never mails it twice.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.plan import Planner
from bot.reports import build
from bot.store import Store
from bot.vocab import MessageKind


def period_start(now: datetime, every: timedelta, at: time | None, timezone: str) -> datetime:
    """Start of the reporting period ``now`` falls in (periods anchored at ``at`` local)."""
    local = now.astimezone(ZoneInfo(timezone))
    anchor = local.replace(hour=at.hour if at else 0, minute=at.minute if at else 0, second=0,
                           microsecond=0)
    steps = math.floor((local - anchor) / every)
    return anchor + steps * every


def maybe_send_report(store: Store, planner: Planner, now: datetime, ruleset: Any,
                      templates: Any) -> bool:
    schedule = ruleset.settings.report
    if schedule is None or not schedule.to:
        return False
    start = period_start(now, schedule.every, schedule.at, schedule.timezone)
    key = f"report:{start.isoformat()}"
    if store.get_meta(key) is not None:
        return False
    days = max(schedule.every.total_seconds() / 86400, 1.0)
    data = build(store, days, now)
    with store.transaction():
        store.set_meta(key, now.isoformat())
        planner.plan_team_mail(key=key, kind=MessageKind.REPORT, to=list(schedule.to),
                               subject=f"Support report: {data['tickets']} ticket(s)",
                               template="report", context={"report": data}, now=now,
                               ruleset=ruleset, templates=templates)
    return True
