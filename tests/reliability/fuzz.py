"""Fuzzing the bot with hypothesis (and atheris, when installed).

The whole pipeline: arbitrary bytes delivered to the Maildir inbox, one worker cycle; the
worker must never raise, and every delivered file must end up in the ledger (answered,
ignored, a duplicate or quarantined): nothing may be silently skipped. Also, as plain
functions for bench/reliability.py: raw bytes through parse + decide, and rules.yaml
text (random, or the shipped file mutated) through the loader. The short versions run
in tests/reliability/test_fuzz_worker.py and tests/rules, tests/mail.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.errors import MalformedMessage, RulesError
from bot.mail.parse import parse_message
from bot.rules.decide import decide
from bot.rules.load import load_ruleset
from bot.rules.ruleset import RuleSet
from bot.runtime import open_worker
from bot.templates import Templates
from tests.helpers import REPO, embedded_settings, make_mail
from tests.reliability.maildir import deliver_bytes

T = TypeVar("T")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SEEDS = [
    make_mail(),
    make_mail(subject="My emails aren't sending", body="They bounce with 550 5.7.1 errors."),
    make_mail(headers={"Auto-Submitted": "auto-replied"}, subject="Out of office"),
    (b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\nContent-Type: "
    b"multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n"),
    (b"From: =?utf-8?q?A=0D=0ABcc:_x@evil.example?= <a@b.example>\r\nSubject: =?x-unknown?"
    b"b?////?=\r\nContent-Type: text/html; charset=klingon\r\n\r\n<p>hi</p>\r\n"),
]
HEADERS = ["From", "To", "Subject", "Message-ID", "In-Reply-To", "References", "Reply-To",
           "Return-Path", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted",
           "Precedence", "List-Id", "Date", "MIME-Version"]


def _mutate(seed: bytes, edits: list[tuple[int, bytes]], cut: int | None) -> bytes:
    data = bytearray(seed)
    for at, chunk in edits:
        at %= max(len(data), 1)
        data[at:at + len(chunk)] = chunk
    return bytes(data[:cut] if cut is not None else data)


def _soup(pairs: list[tuple[str, str]], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in pairs)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


MUTATED = st.builds(_mutate, st.sampled_from(SEEDS),
                    st.lists(st.tuples(st.integers(0, 5000), st.binary(min_size=1, max_size=8)),
                             max_size=8),
                    st.none() | st.integers(0, 2000))
SOUP = st.builds(_soup, st.lists(st.tuples(st.sampled_from(HEADERS), st.text(max_size=80)),
                                 max_size=10), st.binary(max_size=300))
RAW_MAIL = st.one_of(st.binary(max_size=1500), MUTATED, SOUP)


def pipeline_once(raws: list[bytes]) -> None:
    """Deliver ``raws`` to a fresh embedded set-up and run one cycle; raise on a problem."""
    with tempfile.TemporaryDirectory(prefix="supportbot-fuzz-") as tmp:
        root = Path(tmp)
        for n, raw in enumerate(raws):
            deliver_bytes(root / "inbox", raw, T0 - timedelta(seconds=n + 1))
        settings = embedded_settings(root)

        async def go() -> None:
            async with open_worker(settings, clock=FakeClock(T0)) as worker:
                await worker.cycle()
        asyncio.run(go())
        conn = sqlite3.connect(settings.state_path)
        try:
            recorded = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
        if recorded != len(raws):
            raise AssertionError(f"{len(raws)} delivered, {recorded} in the ledger")
        if integrity != "ok":
            raise AssertionError(f"integrity_check: {integrity}")


# -- parse + decide, and rules.yaml, as plain functions for bench/reliability.py ----------
SHIPPED_RULES = (REPO / "rules.yaml").read_text(encoding="utf-8")
RULE_TOKENS = ["\n", "  ", "- ", ": ", "'", '"', "[", "]", "{", "}", "(", ")", "\\", "*", "&a",
               "*a", "!!python/object:os.system", "|", ">", "#", "\t", "?", "%", "@", "\x00",
               "matches: ", "when:", "any:", "all:", "not:", "continue: true", "to: ",
               "action: ", "priority: ", "24h", "-1h", "9999999999d", "(?P<x>", "(a+)+$"]


def _mutate_text(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace, at each position, up to ``width`` characters with a token or random text."""
    for at, width, chunk in edits:
        at %= max(len(text), 1)
        text = text[:at] + chunk + text[at + width:]
    return text


RULES_TEXT = st.one_of(
    st.text(max_size=300),
    st.builds(_mutate_text, st.just(SHIPPED_RULES),
              st.lists(st.tuples(st.integers(0, len(SHIPPED_RULES)), st.integers(0, 40),
                                 st.sampled_from(RULE_TOKENS) | st.text(max_size=12)),
                       min_size=1, max_size=6)))


def decide_once(raw: bytes, ruleset: RuleSet) -> None:
    """Parse and decide; only MalformedMessage may come out of parsing, nothing of deciding."""
    try:
        msg = parse_message(raw)
    except MalformedMessage:
        return
    decision = decide(msg, None, T0, ruleset)
    if not (decision.ignored or decision.actions):
        raise AssertionError("a decision with neither an action nor a reason to ignore")


def rules_once(text: str, directory: Path, templates: Templates) -> None:
    """Any rules.yaml text loads, or fails with `file:line: message` errors; nothing else."""
    path = directory / "rules.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_ruleset(path, templates)
    except RulesError as exc:
        if not exc.errors or not all(e.startswith(f"{path}:") for e in exc.errors):
            raise AssertionError(f"errors without file:line: {exc.errors[:3]}") from None


# -- runners for bench/reliability.py ------------------------------------------------------
@dataclass
class FuzzReport:
    name: str
    examples: int = 0
    seconds: float = 0.0
    failure: str | None = None
    engine: str = "hypothesis"

    def problems(self) -> list[str]:
        return [f"{self.name}: {self.failure}"] if self.failure else []

    def rows(self) -> list[tuple[str, object]]:
        return [(f"{self.name} ({self.engine})",
                 f"{self.examples} inputs in {self.seconds:.0f} s, "
                 + ("no unhandled exception" if not self.failure else "FAILED"))]


def run_hypothesis(name: str, strategy: st.SearchStrategy[T], check: Callable[[T], None],
                   examples: int) -> FuzzReport:
    """Run ``check`` over ``examples`` generated inputs; the shrunk failure, if any."""
    report = FuzzReport(name)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy)
    def run(value: T) -> None:
        report.examples += 1
        check(value)

    started = time.monotonic()
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - any failure is a finding; hypothesis shrank it
        notes = "\n".join(getattr(exc, "__notes__", []))
        report.failure = f"{type(exc).__name__}: {exc}\n{notes}"[:3000]
    report.seconds = time.monotonic() - started
    return report


def run_atheris(target: str, seconds: int, workdir: Path) -> FuzzReport:
    """`python -m tests.reliability.atheris_fuzz TARGET` for ``seconds``, seeded with real
    mail or the shipped rules.yaml; a report saying "skipped" when atheris is missing."""
    report = FuzzReport(f"{target} (coverage-guided)", engine="atheris")
    if importlib.util.find_spec("atheris") is None:
        report.engine = "atheris not installed: skipped"
        return report
    seeds = workdir / f"seeds-{target}"
    seeds.mkdir(parents=True, exist_ok=True)
    sources = (sorted((REPO / "tests" / "fixtures" / "mail").rglob("*.eml"))
               if target == "mail" else [REPO / "rules.yaml"])
    for n, path in enumerate(sources):
        (seeds / f"seed-{n}").write_bytes(path.read_bytes())
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.atheris_fuzz", target,
         f"-max_total_time={seconds}", f"-artifact_prefix={workdir}/", "-rss_limit_mb=2048",
         str(seeds)], cwd=REPO, capture_output=True, text=True, timeout=seconds + 300,
        check=False)
    report.seconds = time.monotonic() - started
    runs = re.search(r"Done (\d+) runs", done.stderr)
    report.examples = int(runs.group(1)) if runs else 0
    if done.returncode != 0:
        report.failure = "\n".join(done.stderr.splitlines()[-25:])
    return report
