"""`supportbot report [--days N]`: recent tickets by topic and priority, with spikes flagged.

The figures come from `bot.reports.build`, which the scheduled report mail uses too; this
command only parses its arguments and prints them.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from bot.commands._common import open_store, positive_days, setup
from bot.reports import build

ORDER = 42


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="recent tickets by topic and priority, spikes flagged",
                       description="Counts the tickets of the last N days by topic and "
                       "priority and flags a topic whose volume jumps (several tickets "
                       "within two hours).")
    p.add_argument("--days", type=positive_days, default=7.0, help="how far back (default 7)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


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
