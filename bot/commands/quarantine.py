"""`supportbot quarantine [list|show ID|retry ID|drop ID]`: mail the bot could not process.

Like Mailman's shunt queue: nothing unreadable is lost, an operator can look at it and,
after fixing the cause (a rules change, a new version), hand it back to the worker.
"""

from __future__ import annotations

import argparse
import sys

from bot.commands._common import open_store, record_id, setup
from bot.terminal import safe, safe_bytes

ORDER = 44


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("quarantine", help="list, show, retry or drop quarantined messages",
                       description="Messages that could not be processed are kept raw here. "
                       "`retry ID` hands it back: the worker ingests the kept copy on its next"
                       " cycle.")
    p.add_argument("op", nargs="?", default="list", choices=["list", "show", "retry", "drop"])
    p.add_argument("id", nargs="?", type=record_id)
    p.add_argument("--raw", action="store_true",
                   help="show: write the kept bytes exactly (control characters are escaped "
                   "otherwise, so that mail cannot send commands to your terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        if args.op == "list":
            rows = store.quarantined()
            for r in rows:
                print(safe(f"#{r.id} {r.at:%Y-%m-%dT%H:%M:%S} {r.ref}: {r.error}"))
            print(f"{len(rows)} message(s) in quarantine")
            return 0
        if args.id is None:
            print(f"supportbot: quarantine {args.op} needs an ID", file=sys.stderr)
            return 2
        row = store.quarantine_row(args.id)
        if row is None:
            print(f"supportbot: no quarantined message #{args.id}", file=sys.stderr)
            return 1
        if args.op == "show":
            raw = row.raw or b""
            sys.stdout.buffer.write(raw if args.raw else safe_bytes(raw))
            return 0
        with store.transaction():
            if args.op == "retry":
                store.set_quarantine_status(args.id, "retry")
            else:
                store.set_quarantine_status(args.id, "dropped")
        print(safe(f"#{args.id} {'dropped' if args.op == 'drop' else 'queued for retry'}: "
                   f"{row.ref}"))
        return 0
    finally:
        store.close()
