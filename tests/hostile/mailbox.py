"""The hostile mailbox: each poison message between two normal tickets, one worker cycle.

Shared by tests/hostile/test_mailbox.py (which asserts) and bench/reliability.py (which
prints). The poisons are the reproductions of issue 16 plus the fuzzer's seed corpus
(tests/reliability/fuzz.py). For each: the worker must not raise, both normal tickets
must be answered in that same cycle, and the poison must end answered, ignored or
quarantined with a reason. CPU seconds per poison are the cycle's process time minus
that of a cycle with the two normal tickets alone.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import embedded_settings, make_mail, outbox_mail
from tests.reliability import fuzz
from tests.reliability.inprocess import quiet_logs
from tests.reliability.maildir import deliver_bytes

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ASK = "How do I export my contacts to a CSV file from the settings page?"


def _mail(headers: bytes, body: bytes = ASK.encode(), *,
          content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    return (b"From: Pat Poison <pat@poison.example>\r\nTo: support@example.com\r\n"
            b"Subject: A question\r\nMessage-ID: <p@poison.example>\r\n" + headers
            + b"Content-Type: " + content_type + b"\r\n\r\n" + body + b"\r\n")


def _html(body: str) -> bytes:
    return _mail(b"", body.encode(), content_type=b"text/html; charset=utf-8")


def _nested(depth: int) -> bytes:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(depth))
    return _mail(b"MIME-Version: 1.0\r\n", head + ASK.encode(),
                 content_type=b"multipart/mixed; boundary=top")


def _attachment(megabytes: int) -> bytes:
    data = base64.encodebytes(b"\x89PNG" * (megabytes * 262_144))
    body = (b"--a\r\nContent-Type: text/plain\r\n\r\n" + ASK.encode() + b"\r\n--a\r\n"
            b"Content-Type: image/png; name=x.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + data + b"\r\n--a--")
    return _mail(b"MIME-Version: 1.0\r\n", body, content_type=b"multipart/mixed; boundary=a")


POISONS: dict[str, Callable[[], bytes]] = {
    "html: 1 MB of unclosed <!--": lambda: _html("<p>Hi</p>" + "<!--" * 250_000),
    "html: 1 MB of '<!-- a -- >'": lambda: _html("<p>Hi</p>" + "<!-- a -- >" * 90_000),
    "html: 1 MB of '<a '": lambda: _html("<a " * 330_000 + "<p>" + ASK + "</p>"),
    "html: 1 MB of '<![CDATA[ >'": lambda: _html("<![CDATA[ >" * 90_000 + ASK),
    "html: &# and 4,301 digits": lambda: _html("<p>&#" + "1" * 4301 + "; " + ASK + "</p>"),
    "from: 840 kB of 'a,'": lambda: _mail(b"").replace(
        b"From: Pat Poison <pat@poison.example>", b"From: " + b"a," * 420_000),
    "from: 840 kB of '<'": lambda: _mail(b"").replace(
        b"From: Pat Poison <pat@poison.example>", b"From: " + b"<" * 840_000),
    "subject: 100,000 encoded words": lambda: _mail(b"").replace(
        b"Subject: A question", b"Subject: " + b"=?utf-8?q?a?= " * 100_000),
    "message-id: non-ASCII": lambda: _mail("References: <\u00fcber@x.example>\r\n".encode()
                                           ).replace(b"<p@poison.example>",
                                                     "<caf\u00e9@poison.example>".encode()),
    "message-id: NUL, ESC, BEL": lambda: _mail(b"").replace(
        b"<p@poison.example>", b"<a\x00b\x1b[2J\x07@poison.example>"),
    "references: 40,000 ids": lambda: _mail(
        b"References: " + b" ".join(b"<r%d@x.example>" % i for i in range(40_000)) + b"\r\n"),
    "headers: 50,000 lines": lambda: _mail(b"".join(b"X-H%d: v\r\n" % i
                                                    for i in range(50_000))),
    "mime: 200 levels deep": lambda: _nested(200),
    "attachment: 20 MB": lambda: _attachment(20),
    "body: 5 MB on one line": lambda: _mail(b"", ASK.encode() + b" x" * 2_500_000),
    "bytes: invalid UTF-8 and a lone surrogate": lambda: _mail(b"").replace(
        b"A question", b"caf\xed\xa0\x80 \xff\xfe question"),
    "not mail: NUL bytes": lambda: b"\x00\x01\x02 not an email at all",
    "not mail: empty": lambda: b"",
    "relay: 250-char subject, odd name": lambda: _mail(b"").replace(
        b"From: Pat Poison <pat@poison.example>",
        b"From: Visit cheap-pills.example now <pat@poison.example>").replace(
        b"Subject: A question", b"Subject: WIN NOW http://cheap-pills.example " + b"x" * 210),
    "hijack: forged In-Reply-To": lambda: _mail(b"In-Reply-To: <n0@normal.example>\r\n"),
    **{f"fuzz seed {i}": (lambda seed=seed: seed) for i, seed in enumerate(fuzz.SEEDS)},
}


@dataclass
class PoisonOutcome:
    name: str
    status: str  # the ledger's: ticket, reply, ignored, quarantined, ...
    reason: str
    cpu_seconds: float
    normals_answered: bool
    raised: str | None = None


@dataclass
class MailboxReport:
    outcomes: list[PoisonOutcome] = field(default_factory=list)
    baseline_cpu: float = 0.0
    uptime_cycles: int = 0

    def problems(self) -> list[str]:
        out: list[str] = []
        for o in self.outcomes:
            if o.raised:
                out.append(f"{o.name}: the worker raised {o.raised}")
            if not o.normals_answered:
                out.append(f"{o.name}: a normal ticket beside it was not answered")
            if o.status not in {"ticket", "reply", "ignored", "quarantined", "duplicate"}:
                out.append(f"{o.name}: ended as {o.status!r}")
            if o.status == "quarantined" and not o.reason:
                out.append(f"{o.name}: quarantined without a reason")
        return out

    def rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [
            ("poisons", len(self.outcomes)),
            ("normal tickets answered in the same cycle",
             f"{2 * sum(o.normals_answered for o in self.outcomes)} / {2 * len(self.outcomes)}"),
            ("worker cycles survived", f"{self.uptime_cycles} / {len(self.outcomes) + 1}"),
            ("baseline cycle (two normal tickets), CPU s", f"{self.baseline_cpu:.3f}")]
        for o in self.outcomes:
            why = f" ({o.reason[:60]})" if o.reason and o.status != "ticket" else ""
            rows.append((f"{o.name}", f"{o.status}{why}, {max(o.cpu_seconds, 0):.3f} s CPU"))
        return rows


def _cycle(workdir: Path, poison: bytes | None) -> tuple[float, str, str, bool, str | None]:
    settings = embedded_settings(workdir)
    inbox = workdir / "inbox"
    deliver_bytes(inbox, make_mail(sender="Nora Normal <n0@normal.example>",
                                   message_id="<n0@normal.example>", body=ASK), T0)
    if poison is not None:
        deliver_bytes(inbox, poison, T0 + timedelta(seconds=1))
    deliver_bytes(inbox, make_mail(sender="Neil Normal <n1@normal.example>",
                                   message_id="<n1@normal.example>", subject="Training",
                                   body="Do you offer onboarding sessions for new agents?"),
                  T0 + timedelta(seconds=2))
    raised: str | None = None

    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0 + timedelta(minutes=1))) as worker:
            await worker.cycle()
    started = time.process_time()
    try:
        asyncio.run(go())
    except Exception as exc:  # noqa: BLE001 - the suite reports it
        raised = f"{type(exc).__name__}: {exc}"[:200]
    cpu = time.process_time() - started
    sent_to = {s.to for s in outbox_mail(workdir / "outbox")}
    answered = {"n0@normal.example", "n1@normal.example"} <= sent_to
    status, reason = "missing", ""
    if poison is not None:
        store = Store(settings.state)
        try:
            rows = [m for m in store.db.rows(
                "SELECT status, reason, from_addr FROM messages ORDER BY id")
                if m["from_addr"] not in ("n0@normal.example", "n1@normal.example")]
        finally:
            store.close()
        if rows:
            status, reason = str(rows[0]["status"]), str(rows[0]["reason"] or "")
    return cpu, status, reason, answered, raised


def run_mailbox(workdir: Path | None = None,
                names: list[str] | None = None) -> MailboxReport:
    report = MailboxReport()
    base = workdir or Path(tempfile.mkdtemp(prefix="hostile-mailbox-"))
    with quiet_logs():
        _cycle(base / "warm-up", None)  # imports and compiled patterns: not a poison's cost
        cpu, _, _, answered, raised = _cycle(base / "baseline", None)
        report.baseline_cpu = cpu
        report.uptime_cycles += raised is None
        for i, name in enumerate(names or list(POISONS)):
            cpu, status, reason, answered, raised = _cycle(base / f"p{i}", POISONS[name]())
            report.uptime_cycles += raised is None
            report.outcomes.append(PoisonOutcome(name, status, reason,
                                                 cpu - report.baseline_cpu, answered, raised))
    return report
