"""`supportbot health [--json]`: can the bot do its job? (for supervisors; exit 0 or 1)."""

from __future__ import annotations

import argparse
import json

from bot import health
from bot.clock import SystemClock
from bot.commands._common import open_store, setup
from bot.vocab import HealthPart

ORDER = 43


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "health", help="exit 0 when the bot can do its job, 1 with the cause otherwise",
        description="Exit 1 with one line naming the cause when a source (authentication, "
        "network) or outgoing mail has been failing for longer than "
        "SUPPORTBOT_HEALTH_FAILING_SECONDS (default 300), the last rules reload was rejected, "
        "timers are overdue by that long, or no cycle succeeded within "
        "SUPPORTBOT_HEALTH_MAX_AGE_SECONDS; exit 0 with 'healthy' otherwise.")
    p.add_argument("--json", action="store_true", help="every part's state as one JSON object")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    if settings.state_url is None and not settings.state_path.exists():
        print(f"unhealthy: no state file at {settings.state_path} (has the worker started?)")
        return 1
    store = open_store(settings)
    try:
        verdict = health.assess(store, SystemClock().now(),
                                failing_seconds=settings.health_failing_seconds,
                                heartbeat_max_age=settings.health_max_age_seconds)
    finally:
        store.close()
    cause = verdict.first_cause(unhealthy_only=True)
    if args.json:
        print(json.dumps({
            "healthy": verdict.healthy, "cause": cause.line if cause else None,
            "parts": [{"part": f.part, "name": f.name, "ok": f.ok, "unhealthy": f.unhealthy,
                       "line": f.line, "since": f.since, **f.detail}
                      for f in verdict.findings]}, indent=2))
    elif cause is not None:
        print(f"unhealthy: {cause.line}")
    else:
        worker = next(f for f in verdict.findings if f.part == HealthPart.WORKER)
        degraded = verdict.first_cause(unhealthy_only=False)
        print(f"healthy: {worker.line}" + (
            f"; but {degraded.line}, for less than {settings.health_failing_seconds:.0f}s"
            if degraded is not None else ""))
    return 0 if verdict.healthy else 1
