"""One worker per SQLite file: `supportbot run` holds an OS lock on ``STATE.lock`` for life.

Two workers sharing a SQLite file would each read every source and each answer every
ticket; the second refuses to start instead. The lock is `flock` on a file beside the
state (not the state file itself, whose locks belong to SQLite), released by the kernel
when the process ends however it ends, so a SIGKILL never leaves a stale lock. Read-only
commands (`status`, `log`, ...) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import ConfigError


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


@contextmanager
def sole_worker(state: Path) -> Iterator[None]:
    """Hold the lock while the block runs; `ConfigError` when another worker has it."""
    path = lock_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"another supportbot worker (pid {holder}) is running on {state}: one worker "
                "per SQLite file; use a PostgreSQL SUPPORTBOT_STATE for several") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
