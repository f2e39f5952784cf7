"""A worker process on a fake clock that SIGKILLs itself at a chosen step of a cycle.

`python -m tests.crash_helpers AT KILL` runs one cycle of a worker configured by the
SUPPORTBOT_* environment, with its clock standing at AT (ISO-8601), and sends itself
SIGKILL (no clean-up, no flush, no close: what a crash or an OOM kill does) at KILL:

- ``before-send``: the first time the outbox is about to send planned rows, i.e. after the
  decision and its messages were committed and before any of them went out;
- ``after-send``: as soon as an outbox pass has sent something and recorded it;
- ``end``: after the whole cycle, before the worker closes.

The story tests run one such process per step and then restart, so each step of a
conversation is cut at each of these points. (A kill inside an SMTP transaction, after the
server accepted a message and before the store recorded it, is the one window where the
design prefers a same-Message-ID resend to a loss; the crash suite in tests/reliability
measures that one.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from bot.clock import FakeClock
from bot.config import load_settings
from bot.outbox import FlushReport, Outbox
from bot.runtime import open_worker

REPO = Path(__file__).resolve().parent.parent  # the child imports no test module: fast start
Kill = Literal["before-send", "after-send", "end"]
KILLS: tuple[Kill, ...] = ("before-send", "after-send", "end")


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill: Kill) -> None:
    """Wrap Outbox.flush so the process dies at ``kill``."""
    flush = Outbox.flush

    async def flush_then_maybe_die(self: Outbox, now: datetime,
                                   *, stop: asyncio.Event | None = None) -> FlushReport:
        if kill == "before-send" and self.store.outbox_counts().get("pending"):
            _die()
        report = await flush(self, now, stop=stop)
        if kill == "after-send" and report.sent:
            _die()
        return report

    Outbox.flush = flush_then_maybe_die  # type: ignore[method-assign]


async def _one_cycle(at: datetime, kill: Kill) -> None:
    settings = load_settings(os.environ, cwd=Path.cwd())
    _arm(kill)
    async with open_worker(settings, clock=FakeClock(at)) as worker:
        await worker.cycle()
        if kill == "end":
            _die()


def run_killed(env: Mapping[str, str], at: datetime, kill: Kill, workdir: Path,
               timeout: float = 60.0) -> int:
    """One cycle in a child process, killed at ``kill``; returns its exit status (-9 when
    the kill point was reached)."""
    log = workdir / "crash-child.log"
    with log.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.crash_helpers", at.isoformat(), kill],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")},
                 **env, "SUPPORTBOT_LOG_FORMAT": "json"},
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout,
            check=False)
    return proc.returncode


if __name__ == "__main__":
    asyncio.run(_one_cycle(datetime.fromisoformat(sys.argv[1]), sys.argv[2]))  # type: ignore[arg-type]
