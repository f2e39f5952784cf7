"""Help Scout fault suite: the worker against the fake Help Scout misbehaving on purpose.

Conversations arrive in waves while the fake answers with 429 storms, 5xx (also after the
write took effect), connections cut before or after the write, slow answers, a few answers
slower than the client's timeout (each costs 20 s of real time), and tokens that expire
between and during cycles. The
worker cycles in-process on the fake's clock (retry waits and rate-limit pauses pass at
once). Afterwards every conversation must hold exactly one reply from the bot.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.demo.fake_helpscout import FakeHelpScout, Fault
from tests.reliability.accounting import HelpScoutCount, StoreCheck, check_store, count_helpscout
from tests.reliability.inprocess import Driver, DriveStats, errors_in, logs_to
from tests.reliability.process import REPO
from tests.reliability.tickets import make_tickets

Progress = Callable[[str], None]
CLIENT_TIMEOUT = 20.0  # HelpScoutClient's default: a delay beyond it is a timeout


@dataclass
class HsReport:
    conversations: int = 0
    fault_cycles: int = 0
    clean_cycles: int = 0
    injected: Counter[str] = field(default_factory=Counter)  # faulty answers the fake gave
    expirations: int = 0
    rate_limited: int = 0  # 429 answers the fake gave
    tokens: int = 0
    requests: int = 0
    drive: DriveStats = field(default_factory=DriveStats)
    count: HelpScoutCount = field(default_factory=HelpScoutCount)
    store: StoreCheck = field(default_factory=StoreCheck)
    errors_logged: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        out = self.drive.problems()
        return out + self.count.problems() + self.store.problems(
            expected_tickets=self.conversations)

    def rows(self) -> list[tuple[str, object]]:
        c = self.count
        return [
            ("conversations", self.conversations),
            ("cycles under faults / clean", f"{self.fault_cycles} / {self.clean_cycles}"),
            ("faulty answers given, by fault", dict(sorted(self.injected.items()))),
            ("tokens expired / issued", f"{self.expirations} / {self.tokens}"),
            ("429 answers / requests", f"{self.rate_limited} / {self.requests}"),
            ("exceptions out of cycle() / hung", f"{len(self.drive.raised)} / {self.drive.hung}"),
            ("answered / missing", f"{c.answered} / {c.missing}"),
            ("duplicate replies / notes", f"{c.duplicate_replies} / {c.duplicate_notes}"),
            ("store integrity_check", self.store.integrity),
            ("outbox rows by status", dict(sorted(self.store.outbox.items()))),
            ("error events logged", sum(self.errors_logged.values())),
            ("seconds", round(self.seconds, 1)),
        ]


def _fault(rng: random.Random) -> tuple[str, Fault]:
    """One misbehaviour, as the fake's `Fault` and a name for the report."""
    name = rng.choice(["429 storm", "5xx", "5xx after write", "cut", "cut after write", "slow"])
    if name == "429 storm":
        return name, Fault("rate_limit", times=rng.randint(3, 15), seconds=rng.choice([1, 5, 30]))
    if name == "5xx":
        return name, Fault("status", status=rng.choice([500, 502, 503, 504]),
                           times=rng.randint(1, 4))
    if name == "5xx after write":
        return name, Fault("status", status=500, method="POST", after_commit=True)
    if name == "cut":
        return name, Fault("cut", times=rng.randint(1, 3))
    if name == "cut after write":
        return name, Fault("cut", method="POST", after_commit=True)
    return name, Fault("delay", seconds=rng.uniform(0.2, 1.5), times=rng.randint(1, 3))


# The write takes effect, the answer comes after the client gave up: an unknown outcome.
TIMEOUT = Fault("delay", seconds=CLIENT_TIMEOUT + 1.5, method="POST")


def _settings(workdir: Path, url: str, fake: FakeHelpScout) -> Settings:
    return load_settings({
        "SUPPORTBOT_STATE": str(workdir / "state.db"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_POLL_SECONDS": "1",
        "SUPPORTBOT_HELPSCOUT_APP_ID": fake.app_id,
        "SUPPORTBOT_HELPSCOUT_APP_SECRET": fake.app_secret,
        "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": str(fake.mailbox_id),
        "SUPPORTBOT_HELPSCOUT_BASE_URL": url,
    }, cwd=workdir)


def run_helpscout_suite(*, conversations: int, fault_cycles: int, seed: int, workdir: Path,
                        faults_per_cycle: int = 3, timeouts: int = 0, limit: int = 400,
                        cycle_timeout: float = 300.0, max_clean_cycles: int = 12,
                        progress: Progress | None = None) -> HsReport:
    say = progress or (lambda _: None)
    rng = random.Random(seed)
    report = HsReport(conversations=conversations)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    clock = FakeClock(datetime.now(UTC))
    tickets = make_tickets(conversations, seed=seed, tag="hs")
    feeding = max(1, (2 * fault_cycles) // 3)
    waves: list[list[int]] = [[] for _ in range(fault_cycles)]
    for n in range(conversations):
        waves[rng.randrange(feeding)].append(n)
    busy = [n for n, wave in enumerate(waves) if wave]  # a timeout needs a write to hit
    timeout_cycles = set(rng.sample(busy, min(timeouts, len(busy))))
    armed: list[tuple[str, Fault, int]] = []
    conv_ids: list[int] = []
    with ExitStack() as stack:
        fake = FakeHelpScout(clock=clock, limit=limit)
        url = stack.enter_context(fake.serve())
        settings = _settings(workdir, url, fake)

        def expire() -> None:
            fake.expire_tokens()
            report.expirations += 1

        def settled(driver: Driver) -> bool:
            if count_helpscout(fake, conv_ids).missing:
                return False
            assert driver.worker is not None
            counts = driver.worker.store.outbox_counts()
            return not counts.get("pending") and not counts.get("sending")

        async def go() -> None:
            async with Driver(settings, clock, cycle_timeout=cycle_timeout) as driver:
                for n in range(fault_cycles):
                    for t in (tickets[i] for i in waves[n]):
                        conv_ids.append(fake.add_conversation(t.subject, t.sender, t.body,
                                                              customer_name=t.name))
                    for name, fault in [_fault(rng) for _ in range(faults_per_cycle)]:
                        fake.inject(fault)
                        armed.append((name, fault, fault.times))
                    if n in timeout_cycles:  # ahead of the queue: the next write meets it
                        fault = replace(TIMEOUT)
                        fake.faults.insert(0, fault)
                        armed.append(("timeout after write", fault, fault.times))
                    if rng.random() < 0.3:
                        expire()  # between cycles
                    if rng.random() < 0.3:  # or in the middle of one
                        timer = threading.Timer(rng.uniform(0.0, 0.3), expire)
                        timer.start()
                    await driver.cycle(timedelta(seconds=rng.uniform(20, 90)))
                    say(f"helpscout: fault cycle {n + 1}/{fault_cycles}, "
                        f"{len(conv_ids)} conversations")
                for name, fault, times in armed:
                    report.injected[name] += times - fault.times
                fake.faults.clear()
                report.fault_cycles = fault_cycles
                report.clean_cycles = await driver.until(
                    lambda: settled(driver), advance=timedelta(minutes=20),
                    max_cycles=max_clean_cycles, min_cycles=2)
                report.drive = driver.stats

        with logs_to(workdir / "worker.log"):
            asyncio.run(go())
        report.count = count_helpscout(fake, conv_ids)
        report.rate_limited = fake.stats.rate_limited
        report.tokens = fake.stats.tokens_issued
        report.requests = fake.stats.requests
        report.store = check_store(settings.state_path)
    report.errors_logged = errors_in(workdir / "worker.log")
    report.seconds = time.monotonic() - started
    return report
