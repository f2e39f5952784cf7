"""`supportbot health`: exit 0 when the worker's heartbeat is fresh (for supervisors)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bot.commands._common import open_store, setup

ORDER = 43


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("health", help="exit 0 when the worker's heartbeat is fresh",
                       description="Reads the heartbeat the worker writes every cycle; exit 0 "
                       "when younger than SUPPORTBOT_HEALTH_MAX_AGE_SECONDS (default 300), "
                       "1 otherwise.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    if settings.state_url is None and not settings.state_path.exists():
        print("unhealthy: no state file yet (has the worker started?)")
        return 1
    store = open_store(settings)
    try:
        beat = store.get_meta("heartbeat")
    finally:
        store.close()
    if beat is None:
        print("unhealthy: the worker has not completed a cycle yet")
        return 1
    age = (datetime.now(UTC) - datetime.fromisoformat(beat)).total_seconds()
    if age > settings.health_max_age_seconds:
        print(f"unhealthy: last heartbeat {age:.0f}s ago")
        return 1
    print(f"healthy: last heartbeat {age:.0f}s ago")
    return 0
