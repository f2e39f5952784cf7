"""`supportbot run`: the worker (Procfile: `worker: supportbot run`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from bot.commands._common import setup
from bot.rebuild.run import no_evidence_warning
from bot.runtime import open_worker
from bot.store.run_lock import sole_worker
from bot.worker import CycleReport

log = structlog.get_logger(__name__)

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the worker (the Procfile's worker process)",
                       description="Read every configured source, decide, send, follow up. "
                       "Runs until SIGTERM/SIGINT; SIGHUP reloads rules.yaml and templates.")
    p.add_argument("--once", action="store_true",
                   help="one complete cycle (drain sources, send what is due, fire due timers), "
                   "then exit: 0 when everything was done, 1 when a source could not be read "
                   "or a message could not be sent (2: bad configuration)")
    p.add_argument("--dry-run", action="store_true",
                   help="decide and print what would be sent; send nothing and change no state "
                   "(also SUPPORTBOT_DRY_RUN=1)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args)
    if args.dry_run:
        settings = settings.with_(dry_run=True)
    once = args.once or settings.dry_run
    if settings.state_url is None and not settings.dry_run:
        with sole_worker(settings.state_path):
            return asyncio.run(_main(settings, once=once))
    return asyncio.run(_main(settings, once=once))


async def _main(settings, *, once: bool) -> int:  # type: ignore[no-untyped-def]
    warning = no_evidence_warning(settings)
    if warning and not settings.dry_run:
        log.warning(warning)
    async with open_worker(settings) as worker:
        if not once:
            if settings.metrics_port:
                from bot import metrics

                metrics.serve(settings.metrics_port)
            await worker.run_forever()
            return 0
        report = await worker.cycle()
        if settings.dry_run:
            print_outcomes(report)
        for name, error in report.source_errors.items():
            print(f"supportbot: source {name} could not be read: {error}", file=sys.stderr)
        if report.retry or report.failed:
            print(f"supportbot: {report.sent} message(s) sent, {report.retry} left for a retry, "
                  f"{report.failed} given up on (see `supportbot status`)", file=sys.stderr)
        return 0 if report.ok else 1


def print_outcomes(report: CycleReport) -> None:
    """The dry run's account of what it decided (the sends were printed as they happened)."""
    for o in report.outcomes:
        if o.status in {"known", "duplicate"}:
            continue
        d = o.decision
        who = o.message.from_addr if o.message else "?"
        what = o.message.subject if o.message else ""
        if o.status == "ignored" and d is not None:
            print(f"ignore {o.ref} from {who} ({what!r}): {d.reason}")
        elif d is not None and o.status == "ticket":
            acts = ", ".join(f"{a.kind}->{','.join(a.to)}" for a in d.actions)
            print(f"ticket #{o.ticket_id} from {who} ({what!r}): priority={d.priority} "
                  f"topic={d.topic} rules={','.join(d.rules)} actions=[{acts}]")
        else:
            print(f"{o.status} {o.ref} from {who} ({what!r}) {o.detail}".rstrip())
    for kind, ticket in report.timers:
        print(f"timer {kind} fired for ticket #{ticket}")
    print(f"dry run: {len([o for o in report.outcomes if o.status not in {'known'}])} message(s) "
          f"decided, {report.sent} message(s) would be sent; nothing was sent or recorded")
