"""Backlog throughput by store and number of workers: SQLite (one worker) beside PostgreSQL
with 1, 2 and 4 workers, side by side.

Usage: python bench/bench_workers.py [--count 1000] [--workers 1 2 4] [--repeat 1]
Each run: COUNT new tickets wait in the embedded Maildir; that many `supportbot run`
processes start at once on one state (a private PostgreSQL cluster from
tests/servers/postgres.py, or a SQLite file) and answer through a local aiosmtpd; the clock
stops when every ticket is recorded and every planned message is sent. Printed: tickets/s
from the first worker's start, and each worker's share of the sends (who claimed the rows).

What can scale: the Maildir (like an IMAP folder or a Help Scout mailbox) is one source,
read under one lease by one worker at a time, so parsing and deciding stay on one worker;
the outbox and the timers are shared out (SKIP LOCKED). With 2 cores shared by the workers,
PostgreSQL and this script, more workers than cores only add contention.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.store import Store
from tests.helpers import deliver, make_mail
from tests.reliability import process
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

TIMEOUT = 600.0


def backlog(inbox: Path, count: int) -> None:
    now = datetime.now(UTC)
    for n in range(count):
        deliver(inbox, make_mail(
            sender=f"Person {n} <p{n}@customer{n % 50}.example>",
            message_id=f"<bench{n}@customer.example>", subject=f"Question about exporting {n}",
            body=f"How do I export my contacts to a CSV file? Reference {n}."), now)


def run(state: str, workers: int, count: int, smtp: SmtpServer, work: Path) -> tuple[float, str]:
    inbox = work / "inbox"
    backlog(inbox, count)
    env = process.worker_env(
        work, SUPPORTBOT_STATE=state, SUPPORTBOT_MAILDIR=str(inbox),
        SUPPORTBOT_SMTP_HOST=smtp.host, SUPPORTBOT_SMTP_PORT=str(smtp.port),
        SUPPORTBOT_SMTP_TLS="none", SUPPORTBOT_POLL_SECONDS="0.2",
        SUPPORTBOT_LOG_LEVEL="warning")
    started = time.monotonic()
    procs = [process.start(["run"], env, work, work / f"worker-{w}.log")
             for w in range(workers)]
    store = Store(state if state.startswith("postgresql://") else Path(state))
    try:
        while True:
            counts = store.outbox_counts()
            done = (sum(store.message_counts().values()) >= count and counts.get("sent", 0)
                    and not counts.get("pending") and not counts.get("sending"))
            if done:
                break
            if time.monotonic() - started > TIMEOUT or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers stopped or timed out: "
                                   f"{process.tail(work / 'worker-0.log')}")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        shares = Counter(str(r["claimed_by"]) for r in
                         store.db.rows("SELECT claimed_by FROM outbox WHERE status = 'sent'"))
    finally:
        store.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    split = " / ".join(str(n) for n in sorted(shares.values(), reverse=True))
    return count / elapsed, split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1, help="runs per set-up (median)")
    args = parser.parse_args()
    print(f"Backlog of {args.count} new tickets, answered over SMTP (aiosmtpd on loopback); "
          f"{os.cpu_count()} CPUs")
    print(f"{'store':<12} {'workers':>7} {'tickets/s':>10}  sends per worker")
    with PostgresServer() as pg, SmtpServer() as smtp:
        setups = [("sqlite", 1)] + [("postgresql", w) for w in args.workers]
        for kind, workers in setups:
            rates, split = [], ""
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
                    work = Path(tmp)
                    state = pg.new_database() if kind == "postgresql" else str(work / "s.db")
                    rate, split = run(state, workers, args.count, smtp, work)
                    rates.append(rate)
            rates.sort()
            print(f"{kind:<12} {workers:>7} {rates[len(rates) // 2]:>10.0f}  {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
