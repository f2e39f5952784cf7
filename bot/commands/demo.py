"""`supportbot demo`: see the bot work with no credentials, in seconds."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.commands._common import invoked_as, setup

ORDER = 5


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the real pipeline on sample tickets, on a simulated clock",
                       description="Puts sample tickets and an auto-reply into a fresh local "
                       "Maildir, runs the worker on a simulated clock through two days, and "
                       "prints the timeline. Leaves the mail it wrote on disk to inspect.")
    p.add_argument("--dir", type=Path, default=Path("demo-output"),
                   help="where to put the demo's mailboxes and state (wiped first; "
                   "default ./demo-output)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bot.demo.run import run_demo

    settings = setup(args, check_runtime=False)
    asyncio.run(run_demo(settings, args.dir.resolve(), command=invoked_as()))
    return 0
