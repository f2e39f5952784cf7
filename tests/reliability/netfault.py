"""Network-fault suite: the worker behind fault-injecting proxies to IMAP, SMTP and HTTP.

Dovecot, aiosmtpd and the fake Help Scout each sit behind a `FaultProxy` that resets,
stalls and cuts connections mid-transfer (seeded), and every proxy drops all its open
connections every few seconds. Tickets arrive by IMAP and as Help Scout conversations
while an in-process worker cycles on a fake clock (so outbox backoffs pass at once).
Then the faults stop and clean cycles run until everything is answered. Nothing may be
lost or doubled; an exception escaping `cycle()` is a defect.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.demo.fake_helpscout import FakeHelpScout
from tests.reliability.accounting import (
    Delivery,
    HelpScoutCount,
    StoreCheck,
    check_store,
    count_all_redeliveries,
    count_helpscout,
    count_mail,
)
from tests.reliability.inprocess import Driver, DriveStats, errors_in, logs_to
from tests.reliability.process import REPO
from tests.reliability.tickets import Ticket, make_tickets
from tests.servers.dovecot import DovecotServer, MailUser
from tests.servers.faultproxy import FaultProxy, Faults, ProxyStats
from tests.servers.smtp import SmtpServer

Progress = Callable[[str], None]
CLEAN_STEP = timedelta(minutes=20)  # longer than most outbox backoffs, far below check-ins


@dataclass
class NetReport:
    imap_tickets: int = 0
    hs_conversations: int = 0
    fault_cycles: int = 0
    clean_cycles: int = 0
    drops: int = 0
    proxies: dict[str, ProxyStats] = field(default_factory=dict)
    drive: DriveStats = field(default_factory=DriveStats)
    mail: Delivery = field(default_factory=Delivery)
    all_redeliveries: int = 0
    hs: HelpScoutCount = field(default_factory=HelpScoutCount)
    store: StoreCheck = field(default_factory=StoreCheck)
    errors_logged: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        out = self.drive.problems()
        out += self.mail.problems() + self.hs.problems()
        out += self.store.problems(expected_tickets=self.imap_tickets + self.hs_conversations)
        return out

    def rows(self) -> list[tuple[str, object]]:
        faults = {name: f"{s.connections} conn: {s.resets} resets, {s.cuts} cuts, "
                        f"{s.stalls} stalls" for name, s in self.proxies.items()}
        return [
            ("tickets: IMAP / Help Scout", f"{self.imap_tickets} / {self.hs_conversations}"),
            ("cycles under faults / clean", f"{self.fault_cycles} / {self.clean_cycles}"),
            *[(f"proxy {name}", text) for name, text in faults.items()],
            ("drop_all() blips", self.drops),
            ("exceptions out of cycle() / hung", f"{len(self.drive.raised)} / {self.drive.hung}"),
            ("IMAP answered / missing", f"{self.mail.answered} / {self.mail.missing}"),
            ("IMAP duplicates (another Message-ID)", self.mail.duplicates),
            ("same-Message-ID redeliveries (requester / all)",
             f"{self.mail.redeliveries} / {self.all_redeliveries}"),
            ("Help Scout answered / missing", f"{self.hs.answered} / {self.hs.missing}"),
            ("Help Scout duplicate replies / notes",
             f"{self.hs.duplicate_replies} / {self.hs.duplicate_notes}"),
            ("store integrity_check", self.store.integrity),
            ("outbox rows by status", dict(sorted(self.store.outbox.items()))),
            ("error events logged", sum(self.errors_logged.values())),
            ("seconds", round(self.seconds, 1)),
        ]


class _Dropper(threading.Thread):
    """At random moments (up to ``every`` seconds apart) every proxy cuts all its open
    connections at once: a network blip, which also reaches connections kept alive."""

    def __init__(self, proxies: list[FaultProxy], every: float, seed: int) -> None:
        super().__init__(name="drop-all", daemon=True)
        self.proxies = proxies
        self.every = every
        self.drops = 0
        self._rng = random.Random(seed)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._rng.uniform(0.05, self.every)):
            for proxy in self.proxies:
                proxy.drop_all()
            self.drops += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _settings(workdir: Path, imap: FaultProxy, smtp: FaultProxy, hs: FaultProxy,
              user: MailUser, fake: FakeHelpScout) -> Settings:
    return load_settings({
        "SUPPORTBOT_STATE": str(workdir / "state.db"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_FROM": "Acme Support <support@example.com>",
        "SUPPORTBOT_POLL_SECONDS": "1",
        "SUPPORTBOT_IMAP_HOST": "127.0.0.1", "SUPPORTBOT_IMAP_PORT": str(imap.port),
        "SUPPORTBOT_IMAP_USER": user.name, "SUPPORTBOT_IMAP_PASSWORD": user.password,
        "SUPPORTBOT_IMAP_TLS": "none",
        "SUPPORTBOT_SMTP_HOST": "127.0.0.1", "SUPPORTBOT_SMTP_PORT": str(smtp.port),
        "SUPPORTBOT_SMTP_TLS": "none",
        "SUPPORTBOT_HELPSCOUT_APP_ID": fake.app_id,
        "SUPPORTBOT_HELPSCOUT_APP_SECRET": fake.app_secret,
        "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": str(fake.mailbox_id),
        "SUPPORTBOT_HELPSCOUT_BASE_URL": f"http://127.0.0.1:{hs.port}",
    }, cwd=workdir)


def _schedule(items: list[Ticket], cycles: int, rng: random.Random) -> list[list[Ticket]]:
    """Spread ``items`` over the first two thirds of the cycles, in random waves."""
    feeding = max(1, (2 * cycles) // 3)
    waves: list[list[Ticket]] = [[] for _ in range(cycles)]
    for item in items:
        waves[rng.randrange(feeding)].append(item)
    return waves


def run_network_suite(*, imap_tickets: int, hs_conversations: int, fault_cycles: int,
                      seed: int, workdir: Path, dovecot: DovecotServer | None = None,
                      reset: float = 0.15, cut: float = 0.15, stall: float = 0.05,
                      stall_seconds: float = 1.5, drop_every: float = 1.0, pause: float = 0.5,
                      cycle_timeout: float = 300.0, max_clean_cycles: int = 12,
                      progress: Progress | None = None) -> NetReport:
    say = progress or (lambda _: None)
    rng = random.Random(seed)
    report = NetReport(imap_tickets=imap_tickets, hs_conversations=hs_conversations)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    clock = FakeClock(datetime.now(UTC))
    mail = make_tickets(imap_tickets, seed=seed, tag="net")
    convs = make_tickets(hs_conversations, seed=seed + 1, tag="nethelpscout")
    mail_waves = _schedule(mail, fault_cycles, rng)
    conv_waves = _schedule(convs, fault_cycles, rng)
    conv_ids: list[int] = []
    with ExitStack() as stack:
        server = dovecot or stack.enter_context(DovecotServer())
        smtp = stack.enter_context(SmtpServer())
        fake = FakeHelpScout(clock=clock)
        url = stack.enter_context(fake.serve())
        targets = {"imap": (server.host, server.imap_port), "smtp": (smtp.host, smtp.port),
                   "helpscout": ("127.0.0.1", urlsplit(url).port or 80)}
        proxies = {}
        for n, (name, (host, port)) in enumerate(targets.items()):
            proxies[name] = stack.enter_context(FaultProxy(host, port, Faults(
                reset=reset, cut=cut, stall=stall, stall_seconds=stall_seconds,
                seed=seed * 10 + n)))
        user = server.add_user()
        settings = _settings(workdir, proxies["imap"], proxies["smtp"], proxies["helpscout"],
                             user, fake)
        dropper = _Dropper(list(proxies.values()), drop_every, seed)

        def feed(n: int) -> None:
            if mail_waves[n]:
                server.append_many(user, "INBOX", [t.raw() for t in mail_waves[n]])
            for t in conv_waves[n]:
                conv_ids.append(fake.add_conversation(t.subject, t.sender, t.body,
                                                      customer_name=t.name))

        async def settled(driver: Driver) -> bool:
            if count_mail(mail, list(smtp.messages)).missing:
                return False
            if count_helpscout(fake, conv_ids).missing:
                return False
            assert driver.worker is not None
            counts = driver.worker.store.outbox_counts()
            return not counts.get("pending") and not counts.get("sending")

        async def go() -> None:
            async with Driver(settings, clock, cycle_timeout=cycle_timeout) as driver:
                dropper.start()
                try:
                    for n in range(fault_cycles):
                        await asyncio.to_thread(feed, n)
                        await driver.cycle(timedelta(seconds=rng.uniform(20, 90)))
                        await asyncio.sleep(rng.uniform(0.0, pause))  # idle, as between polls
                        say(f"network: fault cycle {n + 1}/{fault_cycles}, "
                            f"{len(smtp.messages)} mails, {len(conv_ids)} conversations")
                finally:
                    dropper.stop()
                for proxy in proxies.values():
                    proxy.set_faults(Faults())
                report.fault_cycles = fault_cycles
                report.clean_cycles = await driver.until(
                    lambda: settled(driver), advance=CLEAN_STEP,
                    max_cycles=max_clean_cycles, min_cycles=2)
                report.drive = driver.stats

        with logs_to(workdir / "worker.log"):
            asyncio.run(go())
        report.drops = dropper.drops
        report.proxies = {name: p.stats for name, p in proxies.items()}
        received = list(smtp.messages)
        report.mail = count_mail(mail, received)
        report.all_redeliveries = count_all_redeliveries(received)
        report.hs = count_helpscout(fake, conv_ids)
        uidvalidity = server.uidvalidity(user)
        refs = [f"imap:INBOX:{uidvalidity}:{uid}" for uid in server.uids(user)]
        report.store = check_store(settings.state_path, refs=refs,
                                   message_ids=[t.message_id for t in mail])
    report.errors_logged = errors_in(workdir / "worker.log")
    report.seconds = time.monotonic() - started
    return report
