"""One worker per SQLite file: a second `supportbot run` refuses, read-only commands work,
and a SIGKILLed worker leaves no stale lock (two real processes)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability import process

pytestmark = pytest.mark.slow


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_a_second_worker_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    env = process.worker_env(tmp_path, SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"),
                             SUPPORTBOT_OUTBOX_MAILDIR=str(tmp_path / "outbox"),
                             SUPPORTBOT_POLL_SECONDS="0.2")
    first = process.start(["run"], env, tmp_path, tmp_path / "first.log")
    try:
        lock = tmp_path / "state.db.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, \
                process.tail(tmp_path / "first.log")
            time.sleep(0.05)
        second = _cli(["run", "--once"], env, tmp_path)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"another supportbot worker (pid {first.pid}) is running on" in lines[0]
        assert _cli(["status"], env, tmp_path).returncode == 0  # read-only: still works
    finally:
        first.kill()
        first.wait()
    # SIGKILL: the kernel dropped the lock with the process; the next worker starts
    again = _cli(["run", "--once"], env, tmp_path)
    assert again.returncode == 0, again.stderr
