"""Leases: which worker reads which source, and which workers are alive.

With several workers on one PostgreSQL database, each source (an IMAP folder, a Help Scout
mailbox) is read by the one worker holding its lease; a lease runs out
`SUPPORTBOT_LEASE_SECONDS` after its holder last renewed it, so when a worker dies another
takes its sources over within that time. Each worker also holds a lease on its own name:
outbox rows it left `sending` count as in doubt only once that lease is gone. SIGTERM
releases everything at once. On SQLite (one worker per file, by its lock) the same code runs
and every lease is simply ours.

Leases decide who does the work, not whether it is done twice: the ledger's unique refs and
the outbox's idempotency keys still hold if two workers ever overlapped.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

import structlog

from bot.clock import Clock
from bot.store import Store
from bot.store.store import WORKER_LEASE

log = structlog.get_logger(__name__)


def new_holder() -> str:
    """A name no other worker, nor this one's next life, will have."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    def __init__(self, store: Store, clock: Clock, seconds: float,
                 holder: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.seconds = seconds
        self.holder = holder or new_holder()
        self.held: set[str] = set()

    @property
    def renew_every(self) -> float:
        """Well inside the lease, so a busy moment does not lose it."""
        return self.seconds / 3

    @property
    def check_every(self) -> float:
        """How often a worker without every source looks for one whose holder died."""
        return self.seconds / 6

    def _until(self) -> datetime:
        # written short of the full term by one check interval: a lease whose holder died
        # runs out, and is noticed, within SUPPORTBOT_LEASE_SECONDS of its last renewal
        return self.clock.now() + timedelta(seconds=self.seconds - self.check_every)

    def start(self, *, sole_worker: bool) -> None:
        """Announce this worker; ``sole_worker`` (SQLite's file lock): no one else is alive,
        so leases left by a killed predecessor are cleared instead of waited out."""
        with self.store.transaction():
            if sole_worker:
                self.store.release_leases(None)
            self.hold(WORKER_LEASE + self.holder)

    def hold(self, name: str) -> bool:
        """Take or keep ``name``; False while another live worker holds it."""
        got = self.store.take_lease(name, self.holder, self.clock.now(), self._until())
        if got and name not in self.held:
            log.info("lease taken", lease=name, holder=self.holder)
            self.held.add(name)
        elif not got and name in self.held:
            log.warning("lease lost to another worker", lease=name, holder=self.holder)
            self.held.discard(name)
        return got

    def renew(self) -> None:
        """Extend everything held; a lease another worker took meanwhile is dropped."""
        with self.store.transaction():
            still = self.store.renew_leases(self.holder, self._until())
        for name in self.held - still:
            log.warning("lease lost to another worker", lease=name, holder=self.holder)
        self.held &= still
        if WORKER_LEASE + self.holder not in self.held:
            self.hold(WORKER_LEASE + self.holder)

    def release(self) -> None:
        """Give every lease back now (SIGTERM, end of `run --once`): no one waits them out."""
        with self.store.transaction():
            self.store.release_leases(self.holder)
        if self.held:
            log.info("leases released", leases=sorted(self.held), holder=self.holder)
        self.held.clear()
