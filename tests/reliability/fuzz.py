"""Whole-pipeline fuzzing: arbitrary bytes delivered to the Maildir inbox, one worker cycle.

Shared by the hypothesis test (short) and bench/reliability.py (long). The worker must
never raise, and every delivered file must end up in the ledger (answered, ignored,
a duplicate or quarantined): nothing may be silently skipped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.runtime import open_worker
from tests.helpers import embedded_settings, make_mail
from tests.reliability.maildir import deliver_bytes

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SEEDS = [
    make_mail(),
    make_mail(subject="My emails aren't sending", body="They bounce with 550 5.7.1 errors."),
    make_mail(headers={"Auto-Submitted": "auto-replied"}, subject="Out of office"),
    b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\nContent-Type: "
    b"multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n",
    b"From: =?utf-8?q?A=0D=0ABcc:_x@evil.example?= <a@b.example>\r\nSubject: =?x-unknown?"
    b"b?////?=\r\nContent-Type: text/html; charset=klingon\r\n\r\n<p>hi</p>\r\n",
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
