"""The pattern report: recent tickets by topic, priority and state, with spikes flagged.

Five people reporting the same problem in a week is a pattern, not five tickets: a topic
with several tickets inside a short window is flagged as possibly systemic. Built here for
both `supportbot report` (bot/commands/report.py) and the scheduled report mail
(bot/lifecycle/report_schedule.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from bot.store import Store, Ticket

SPIKE_WINDOW = timedelta(hours=2)
SPIKE_COUNT = 3


def spikes(tickets: list[Ticket], window: timedelta = SPIKE_WINDOW,
           threshold: int = SPIKE_COUNT) -> list[dict[str, Any]]:
    """Per topic, the busiest window of ``window`` if it holds ``threshold`` or more tickets."""
    by_topic: dict[str, list[datetime]] = defaultdict(list)
    for t in tickets:
        by_topic[t.topic or "other"].append(t.created_at)
    flagged = []
    for topic, times in sorted(by_topic.items()):
        times.sort()
        best, best_start, j = 0, times[0], 0
        for i, start in enumerate(times):
            while j < len(times) and times[j] - start <= window:
                j += 1
            if j - i > best:
                best, best_start = j - i, start
        if best >= threshold:
            hours = window.total_seconds() / 3600
            flagged.append({"topic": topic, "count": best, "since": best_start.isoformat(),
                            "message": f"{best} {topic} tickets in {hours:g} hours - systemic?"})
    return flagged


def build(store: Store, days: float, now: datetime) -> dict[str, Any]:
    """The report of the ``days`` before ``now``: counts by topic, priority, state; spikes."""
    tickets = store.tickets_since(now - timedelta(days=days))
    return {
        "days": days,
        "tickets": len(tickets),
        "by_topic": dict(Counter(t.topic or "other" for t in tickets).most_common()),
        "by_priority": dict(Counter(t.priority or "none" for t in tickets).most_common()),
        "by_state": dict(Counter(t.state for t in tickets).most_common()),
        "spikes": spikes(tickets) if tickets else [],
    }
