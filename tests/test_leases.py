"""Several workers on one PostgreSQL database: one reads a source at a time, a dead worker's
source is taken over within SUPPORTBOT_LEASE_SECONDS, a stopped one's at once, and the
outbox is shared out with no row sent twice. Two real workers in one process, one clock."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.commands.status import collect
from bot.runtime import open_worker
from bot.store import Store
from bot.worker import Worker
from tests.helpers import deliver, embedded_settings, make_mail, outbox_mail
from tests.reliability import process

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _mail(n: int) -> bytes:
    return make_mail(sender=f"Person {n} <p{n}@customer{n}.example>",
                     message_id=f"<lease{n}@c.example>", subject="Question about exporting",
                     body=f"How do I export my contacts to a CSV file? Ref {n}")


@asynccontextmanager
async def two_workers(tmp_path: Path, pg_url: str,
                      clock: FakeClock) -> AsyncIterator[tuple[Worker, Worker]]:
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=pg_url,
                                 SUPPORTBOT_LEASE_SECONDS="30")
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_worker(settings, clock=clock))
        b = await stack.enter_async_context(open_worker(settings, clock=clock))
        yield a, b


def test_one_worker_reads_a_source_and_a_dead_ones_is_taken_over(
        tmp_path: Path, pg_url: str) -> None:
    clock = FakeClock(T0)

    async def go() -> None:
        async with two_workers(tmp_path, pg_url, clock) as (a, b):
            deliver(tmp_path / "inbox", _mail(1), T0)
            assert (await a.cycle()).counts == Counter(ticket=1)
            deliver(tmp_path / "inbox", _mail(2), T0)
            assert (await b.cycle()).counts == Counter()  # a holds the Maildir
            assert b._next_wake_seconds(await b.cycle()) <= 5  # b keeps looking
            # a dies (no release); its lease runs out within SUPPORTBOT_LEASE_SECONDS
            a._lease_keeper.cancel()  # type: ignore[union-attr]
            clock.advance(timedelta(seconds=20))
            assert (await b.cycle()).counts == Counter()
            clock.advance(timedelta(seconds=10))
            assert (await b.cycle()).counts == Counter(ticket=1)

    asyncio.run(go())
    assert len(outbox_mail(tmp_path / "outbox")) == 2


def test_a_stopped_worker_hands_its_source_over_at_once(tmp_path: Path, pg_url: str) -> None:
    clock = FakeClock(T0)
    settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=pg_url)

    async def go() -> None:
        async with open_worker(settings, clock=clock) as b:
            async with open_worker(settings, clock=clock) as a:
                await a.cycle()
                await b.cycle()
                seen = collect(Store(pg_url), settings, now=clock.now())["workers"]
                assert seen["alive"] == sorted([a.leases.holder, b.leases.holder])
                assert list(seen["reading"].values()) == [a.leases.holder]
            # a is closed (what SIGTERM leads to): its leases are gone, b reads at once
            deliver(tmp_path / "inbox", _mail(3), T0)
            assert (await b.cycle()).counts == Counter(ticket=1)

    asyncio.run(go())


def test_two_workers_share_the_outbox_and_send_each_row_once(
        tmp_path: Path, pg_url: str) -> None:
    clock = FakeClock(T0)
    for n in range(60):
        deliver(tmp_path / "inbox", _mail(n), T0)

    async def go() -> None:
        async with two_workers(tmp_path, pg_url, clock) as (a, b):
            a.outbox.batch_size = b.outbox.batch_size = 5
            a.outbox.channels = {}  # a only reads: what it plans stays pending
            await a.cycle()
            a.outbox.channels = b.outbox.channels
            await asyncio.gather(a.outbox.flush(clock.now()), b.outbox.flush(clock.now()))

    asyncio.run(go())
    store = Store(pg_url)
    claimed = Counter(row["claimed_by"] for row in store.db.rows("SELECT claimed_by FROM outbox"))
    assert store.outbox_counts() == {"sent": 60}
    assert len(claimed) == 2 and min(claimed.values()) >= 5  # both took their share
    sent = outbox_mail(tmp_path / "outbox")
    assert len(sent) == 60 == len({s.message["Message-ID"] for s in sent})


@pytest.mark.slow
def test_sigterm_hands_the_source_to_the_other_worker_process(
        tmp_path: Path, pg_url: str) -> None:
    """Two real worker processes: the one reading gets SIGTERM and releases its lease, so
    the other reads new mail at its next look (a sixth of the lease), long before the
    lease (30 s, written for 25) could have run out by itself."""
    env = process.worker_env(tmp_path, SUPPORTBOT_STATE=pg_url,
                             SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"),
                             SUPPORTBOT_OUTBOX_MAILDIR=str(tmp_path / "outbox"),
                             SUPPORTBOT_POLL_SECONDS="0.2", SUPPORTBOT_LEASE_SECONDS="30")
    store = Store(pg_url)
    reader = process.start(["run"], env, tmp_path, tmp_path / "a.log")
    standby = None
    try:
        deliver(tmp_path / "inbox", _mail(1), datetime.now(UTC))
        _until(lambda: len(outbox_mail(tmp_path / "outbox")) == 1, reader, tmp_path / "a.log")
        standby = process.start(["run"], env, tmp_path, tmp_path / "b.log")
        _until(lambda: len(collect(store)["workers"]["alive"]) == 2, standby, tmp_path / "b.log")
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(timeout=30) == 0
        assert len(collect(store)["workers"]["alive"]) == 1  # released, not left to expire
        deliver(tmp_path / "inbox", _mail(2), datetime.now(UTC))
        _until(lambda: len(outbox_mail(tmp_path / "outbox")) == 2, standby, tmp_path / "b.log",
               timeout=20.0)
    finally:
        for proc in (reader, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        store.close()


def _until(done: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
           timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, process.tail(log)
        assert time.monotonic() < deadline, process.tail(log)
        time.sleep(0.05)
