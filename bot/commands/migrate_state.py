"""`supportbot migrate-state --to URL`: move a deployment's state to another store.

SQLite to PostgreSQL when a deployment leaves its local disk (a Procfile platform, a second
worker), and back. The copy is every row of every table, ids included, in one transaction
(`bot/store/copy.py`), checked table by table by counts. The worker must be stopped: on a
SQLite state the command holds the worker's own lock, so it refuses while one runs and none
can start meanwhile; on PostgreSQL it refuses while any worker's lease is alive (a
worker killed a moment ago holds one for up to SUPPORTBOT_LEASE_SECONDS). The
destination must be empty: a new database, or a path with no file yet.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from bot.clock import SystemClock
from bot.commands._common import require_state, setup
from bot.errors import ConfigError
from bot.store import Store
from bot.store.copy import copy_state, count_rows
from bot.store.database import is_postgres_url
from bot.store.run_lock import sole_worker
from bot.store.store import WORKER_LEASE

ORDER = 46


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate-state", help="copy the state into an empty PostgreSQL database "
                       "(or SQLite file), verified by counts",
                       description="Copy every row of the state in SUPPORTBOT_STATE into an "
                       "empty store, then compare the counts table by table. Stop the worker "
                       "first; afterwards point SUPPORTBOT_STATE (or DATABASE_URL) at the new "
                       "store and start it.")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user:pass@host:port/db, or the path of a new SQLite file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    require_state(settings)
    source = settings.state
    target: Path | str = args.to if is_postgres_url(args.to) else Path(args.to).resolve()
    if isinstance(target, Path):
        if isinstance(source, Path) and target == source.resolve():
            raise ConfigError("--to names the state itself: give a new database or file")
        if target.exists():
            raise ConfigError(f"{target} already exists: migrate-state writes only into a new "
                              "SQLite file or an empty database")
    elif target == source:
        raise ConfigError("--to names the state itself: give a new database or file")
    lock: AbstractContextManager[None] = (
        sole_worker(settings.state_path) if settings.state_url is None else nullcontext())
    with lock:
        src = Store(source)
        try:
            if settings.state_url is not None and _live_workers(src):
                print("supportbot: a worker is running on this state (its lease is alive): stop "
                      "every worker first, then migrate", file=sys.stderr)
                return 1
            dst = Store(target)
            try:
                return _copy(src, dst)
            finally:
                dst.close()
        finally:
            src.close()


def _copy(src: Store, dst: Store) -> int:
    if any(count_rows(dst).values()):
        print(f"supportbot: {dst.describe()} is not empty: migrate-state writes only into an "
              "empty database", file=sys.stderr)
        return 1
    copied = copy_state(src, dst)
    before, after = count_rows(src), count_rows(dst)
    width = max(len(t) for t in before)
    for table, n in before.items():
        mark = "" if after.get(table) == n == copied.get(table) else \
            f"  MISMATCH: {after.get(table, 0)} in the copy"
        print(f"{table:<{width}}  {n:>9}{mark}")
    if before != after or copied != before:
        print(f"supportbot: the copy in {dst.describe()} does not match; keep using "
              f"{src.describe()}", file=sys.stderr)
        return 1
    print(f"copied {sum(before.values())} rows from {src.describe()} to {dst.describe()}; "
          "counts match. Point SUPPORTBOT_STATE (or DATABASE_URL) at it and start the worker.")
    return 0


def _live_workers(store: Store) -> list[str]:
    now = SystemClock().now()
    return [name for name, (_, until) in store.leases().items()
            if name.startswith(WORKER_LEASE) and until > now]
