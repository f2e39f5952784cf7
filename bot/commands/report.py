"""`supportbot report [--days N]`: recent tickets by topic and priority, with spikes flagged.

Five people reporting the same problem in a week is a pattern, not five tickets: a topic
with several tickets inside a short window is flagged as possibly systemic.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.commands._common import open_store, setup
from bot.store import Store, Ticket

ORDER = 42
SPIKE_WINDOW = timedelta(hours=2)
SPIKE_COUNT = 3


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="recent tickets by topic and priority, spikes flagged",
                       description="Counts the tickets of the last N days by topic and "
                       "priority and flags a topic whose volume jumps (several tickets "
                       "within two hours).")
    p.add_argument("--days", type=float, default=7.0, help="how far back (default 7)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


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
    tickets = store.tickets_since(now - timedelta(days=days))
    return {
        "days": days,
        "tickets": len(tickets),
        "by_topic": dict(Counter(t.topic or "other" for t in tickets).most_common()),
        "by_priority": dict(Counter(t.priority or "none" for t in tickets).most_common()),
        "by_state": dict(Counter(t.state for t in tickets).most_common()),
        "spikes": spikes(tickets) if tickets else [],
    }


def render_text(data: dict[str, Any]) -> str:
    lines = [f"Support report: {data['tickets']} ticket(s) in the last {data['days']:g} day(s)"]
    for title, key in (("By topic", "by_topic"), ("By priority", "by_priority"),
                       ("By state", "by_state")):
        lines.append(f"{title}: " + (", ".join(f"{k} {v}" for k, v in data[key].items())
                                     or "none"))
    for spike in data["spikes"]:
        lines.append(f"PATTERN: {spike['message']} (from {spike['since'][:16]})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        data = build(store, args.days, datetime.now(UTC))
    finally:
        store.close()
    print(json.dumps(data, indent=2) if args.json else render_text(data))
    return 0
