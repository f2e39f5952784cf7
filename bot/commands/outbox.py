"""`supportbot outbox [list|retry]`: what waits to be sent, and "send it now".

After an operator fixes what stopped the mail (SMTP down, a password), the backoff would
keep messages waiting up to an hour; `retry` makes them due at once. With no worker
running on this SQLite file it sends them itself, through the worker's own outbox; with a
worker running it leaves the sending to it (its next wake, within SUPPORTBOT_POLL_SECONDS),
since one SQLite file has one worker. On PostgreSQL the claims make sending here safe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bot.clock import SystemClock, to_iso
from bot.commands._common import open_store, require_state, setup
from bot.config import Settings
from bot.errors import ConfigError
from bot.runtime import open_worker
from bot.store.run_lock import sole_worker
from bot.vocab import ChannelName, OutboxStatus

ORDER = 45


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("outbox", help="list what waits to be sent, or retry it now",
                       description="`list` (default): messages pending or in doubt, with "
                       "their next attempt and last error. `retry`: everything waiting for a "
                       "retry is due now, and sent at once when no worker runs on this state "
                       "(else by the running worker at its next wake).")
    p.add_argument("op", nargs="?", default="list", choices=["list", "retry"])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=args.op == "retry")
    require_state(settings)
    if args.op == "list":
        return _list(settings)
    with contextlib.ExitStack() as held:
        if settings.state_url is None:
            try:
                held.enter_context(sole_worker(settings.state_path))
            except ConfigError:  # a worker runs on this file: it does the sending
                store = open_store(settings)
                try:
                    count = store.retry_pending_now(SystemClock().now())
                finally:
                    store.close()
                print(f"{count} message(s) due now; the running worker sends them within "
                      f"{settings.poll_seconds:.0f}s")
                return 0
        return asyncio.run(_send(settings))


async def _send(settings: Settings) -> int:
    async with open_worker(settings) as worker:
        report = await worker.send_waiting()
    print(f"{report.sent} sent, {report.retry} still waiting for a retry, "
          f"{report.failed} given up on")
    return 0 if report.ok else 1


def _list(settings: Settings) -> int:
    store = open_store(settings)
    try:
        far = SystemClock().now().replace(year=9999)
        rows = [*store.in_doubt_outbox(), *store.due_outbox(far, list(ChannelName), limit=500)]
    finally:
        store.close()
    for r in rows:
        when = ("in doubt" if r.status == OutboxStatus.SENDING
                else f"next {to_iso(r.next_attempt_at)[:19]}")
        print(f"#{r.id} ticket #{r.ticket_id} {r.kind} to {', '.join(r.recipients)} via "
              f"{r.channel}: {r.status}, {r.attempts} attempt(s), {when}"
              + (f": {r.last_error}" if r.last_error else ""))
    print(f"{len(rows)} message(s) waiting")
    return 0
