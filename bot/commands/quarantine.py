"""`supportbot quarantine [list|show ID|retry ID|drop ID]`: mail the bot could not process.

Like Mailman's shunt queue: nothing unreadable is lost, an operator can look at it and,
after fixing the cause (a rules change, a new version), hand it back to the worker.
"""

from __future__ import annotations

import argparse
import sys

from bot.commands._common import open_store, setup

ORDER = 44


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("quarantine", help="list, show, retry or drop quarantined messages",
                       description="Messages that could not be processed are kept raw here. "
                       "`retry ID` hands it back: the worker ingests the kept copy on its next"
                       " cycle.")
    p.add_argument("op", nargs="?", default="list", choices=["list", "show", "retry", "drop"])
    p.add_argument("id", nargs="?", type=_quarantine_id)
    p.set_defaults(func=run)


def _quarantine_id(text: str) -> int:
    if not text.lstrip("#").isdigit() or int(text.lstrip("#")) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a quarantine ID (see `quarantine list`)")
    return int(text.lstrip("#"))


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    store = open_store(settings)
    try:
        if args.op == "list":
            rows = store.quarantined()
            for r in rows:
                print(f"#{r.id} {r.at:%Y-%m-%dT%H:%M:%S} {r.ref}: {r.error}")
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
            sys.stdout.buffer.write(row.raw or b"")
            return 0
        with store.transaction():
            if args.op == "retry":
                store.set_quarantine_status(args.id, "retry")
            else:
                store.set_quarantine_status(args.id, "dropped")
        print(f"#{args.id} {'dropped' if args.op == 'drop' else 'queued for retry'}: {row.ref}")
        return 0
    finally:
        store.close()
