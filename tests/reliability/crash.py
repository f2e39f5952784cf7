"""Crash suite: a worker process against Dovecot + aiosmtpd, SIGKILLed again and again.

Tickets arrive in IMAP INBOX in waves while the worker runs. Each round starts
`python -m bot run` and kills it with SIGKILL, either at a random moment ("timed") or a
random few milliseconds after the SMTP server accepted a message ("mid-send", which
aims at the window between the server's acceptance and the store's record of it).
A final `run --once` drains what is left; then the SMTP server counts, per ticket,
the requester-facing messages, and the store is checked.

With ``state_url`` (PostgreSQL) and ``workers`` > 1, that many workers run at once on the
one database and each round SIGKILLs one of them in turn, restarting it at once: the
survivors take the dead one's source lease and its rows in flight over (after
SUPPORTBOT_LEASE_SECONDS, short here). At the end the workers get SIGTERM (which releases
their leases) and the final `run --once` starts once a killed worker's lease has run out.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability import process
from tests.reliability.accounting import (
    Delivery,
    StoreCheck,
    check_store,
    count_all_redeliveries,
    count_mail,
)
from tests.reliability.tickets import make_tickets
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import SmtpServer

Progress = Callable[[str], None]


@dataclass
class CrashReport:
    tickets: int = 0
    kills: int = 0
    kills_mid_send: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    final_runs: int = 0
    final_exit_codes: list[int] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)
    all_redeliveries: int = 0
    smtp_messages: int = 0
    store: StoreCheck = field(default_factory=StoreCheck)
    errors_logged: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        out = list(self.unexpected_exits)
        if any(code != 0 for code in self.final_exit_codes):
            out.append(f"final run exit codes {self.final_exit_codes}")
        out += self.delivery.problems()
        out += self.store.problems(expected_tickets=self.tickets)
        return out

    def rows(self) -> list[tuple[str, object]]:
        d = self.delivery
        return [
            ("tickets", self.tickets),
            ("SIGKILLs (of which mid-send)", f"{self.kills} ({self.kills_mid_send})"),
            ("answered", d.answered),
            ("missing", d.missing),
            ("duplicates (another Message-ID)", d.duplicates),
            ("same-Message-ID redeliveries (requester)", d.redeliveries),
            ("same-Message-ID redeliveries (all mail)", self.all_redeliveries),
            ("wrong kind / stray", f"{d.wrong_kind} / {d.stray}"),
            ("messages at the SMTP server", self.smtp_messages),
            ("store integrity_check", self.store.integrity),
            ("outbox rows by status", dict(sorted(self.store.outbox.items()))),
            ("tickets in store / ledger rows", f"{self.store.tickets} / {self.store.ledger}"),
            ("ledger missing", len(self.store.ledger_missing)),
            ("unexpected worker exits", len(self.unexpected_exits)),
            ("final clean runs (exit codes)", self.final_exit_codes),
            ("error events logged", sum(self.errors_logged.values())),
            ("seconds", round(self.seconds, 1)),
        ]


def _wait_started(proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    """Until the worker logged its start (a SIGTERM while Python still imports is not
    the stop being tested: nothing is held yet, and the process dies by the signal)."""
    deadline = time.monotonic() + timeout
    while "worker started" not in process.tail(log_path, 200) and proc.poll() is None:
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _waves(count: int, parts: int, rng: random.Random) -> list[int]:
    """Split ``count`` tickets into ``parts`` random, non-empty-ish wave sizes."""
    cuts = sorted(rng.randint(0, count) for _ in range(parts - 1))
    edges = [0, *cuts, count]
    return [edges[i + 1] - edges[i] for i in range(parts)]


LEASE_SECONDS = 2.0  # several workers: how soon a killed worker's work is taken over


def run_crash_suite(*, tickets: int, kills: int, seed: int, workdir: Path,
                    dovecot: DovecotServer | None = None, sent_folder: bool = False,
                    max_lifetime: float = 3.5, progress: Progress | None = None,
                    state_url: str | None = None, workers: int = 1) -> CrashReport:
    """Run the suite; ``dovecot`` may be a running server (a fresh user is made on it)."""
    assert workers == 1 or state_url, "several workers need a PostgreSQL state"
    say = progress or (lambda _: None)
    rng = random.Random(seed)
    report = CrashReport(tickets=tickets)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    with ExitStack() as stack:
        server = dovecot or stack.enter_context(DovecotServer())
        smtp = stack.enter_context(SmtpServer())
        user = server.add_user()
        extra = {"SUPPORTBOT_IMAP_SENT_FOLDER": "Sent"} if sent_folder else {}
        if state_url:
            extra.update(SUPPORTBOT_STATE=state_url, SUPPORTBOT_LEASE_SECONDS=str(LEASE_SECONDS))
        state = state_url or workdir / "state.db"
        env = process.imap_smtp_env(
            workdir, imap_host=server.host, imap_port=server.imap_port, user=user.name,
            password=user.password, smtp_host=smtp.host, smtp_port=smtp.port,
            SUPPORTBOT_POLL_SECONDS="0.2", **extra)
        all_tickets = make_tickets(tickets, seed=seed, tag="crash")
        sizes = _waves(tickets, kills + 1, rng)
        queue = list(all_tickets)

        def append_wave(size: int) -> None:
            wave, queue[:] = queue[:size], queue[size:]
            if wave:
                server.append_many(user, "INBOX", [t.raw() for t in wave])

        append_wave(sizes[0])
        procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        proc_logs: list[Path] = [logs / "none.log"] * workers
        for n in range(kills):
            victim = n % workers
            for w in range(workers):  # the one killed last round, and all of them at first
                if procs[w] is None:
                    proc_logs[w] = logs / f"run-{n:03d}-w{w}.log"
                    procs[w] = process.start(["run"], env, workdir, proc_logs[w])
            for w, other in enumerate(procs):
                if w != victim and other is not None and other.poll() is not None:
                    report.unexpected_exits.append(f"worker {w} exited by itself in round {n} "
                                                   f"with {other.returncode}")
            proc = procs[victim]
            assert proc is not None
            log_path = logs / f"run-{n:03d}-w{victim}.log"
            mid_send = n % 2 == 1
            before = len(smtp.messages)
            time.sleep(rng.uniform(0.0, 1.0))
            append_wave(sizes[n + 1])
            if mid_send:
                try:
                    smtp.wait_for(before + 1, timeout=8.0)
                    time.sleep(rng.choice([0.0, rng.uniform(0.0, 0.03)]))
                except TimeoutError:
                    mid_send = False  # nothing to send this round: it became a timed kill
            else:
                time.sleep(rng.uniform(0.2, max_lifetime))
            if proc.poll() is not None:
                report.unexpected_exits.append(
                    f"run {n} exited by itself with {proc.returncode}: "
                    f"{process.tail(log_path, 5)}")
            else:
                proc.kill()
                report.kills += 1
                report.kills_mid_send += mid_send
            proc.wait()
            procs[victim] = None
            say(f"crash: round {n + 1}/{kills}, {len(smtp.messages)} messages at the server")
        append_wave(len(queue))
        for proc, path in zip(procs, proc_logs, strict=True):
            if proc is not None:  # a survivor stops as a platform stops it, once it is up
                _wait_started(proc, path)
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            if proc is not None and proc.wait(timeout=60) != 0:
                report.unexpected_exits.append(f"a worker exited {proc.returncode} on SIGTERM")
        if state_url:
            time.sleep(LEASE_SECONDS)  # the last killed worker's rows in flight are free
        for attempt in range(3):
            code = process.run(["run", "--once"], env, workdir, logs / f"final-{attempt}.log")
            report.final_runs += 1
            report.final_exit_codes.append(code)
            check = check_store(state)
            if not check.outbox.get("pending") and not check.outbox.get("sending"):
                break
        uidvalidity = server.uidvalidity(user)
        refs = [f"imap:INBOX:{uidvalidity}:{uid}" for uid in server.uids(user)]
        report.store = check_store(state, refs=refs,
                                   message_ids=[t.message_id for t in all_tickets])
        received = list(smtp.messages)
    report.smtp_messages = len(received)
    report.delivery = count_mail(all_tickets, received)
    report.all_redeliveries = count_all_redeliveries(received)
    report.errors_logged = process.error_events(sorted(logs.glob("*.log")))
    report.seconds = time.monotonic() - started
    return report
