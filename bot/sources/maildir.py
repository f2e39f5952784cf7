"""The embedded default source: a local Maildir (`new/`, `cur/`, `tmp/`).

The bot never moves or flags files: what it has handled lives in the store's ledger,
keyed by the Maildir's unique file key. Arrival time is the file's delivery time (mtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.sources.base import Batch, CursorStore, Inbound
from bot.vocab import SourceKind


class MaildirSource:
    name = "maildir"

    def __init__(self, path: Path, cursors: CursorStore, known: Callable[[str], bool], *,
                 poll_seconds: float, batch_size: int = 200) -> None:
        self.path = path
        self.cursors = cursors
        self.known = known
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.cursor_key = f"maildir:{path}"
        self._wake = asyncio.Event()

    def _scan(self) -> list[tuple[float, str, Path]]:
        """Every message file, oldest first (runs in a thread: no store access here)."""
        found: list[tuple[float, str, Path]] = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                key = entry.name.split(mailbox.Maildir.colon, 1)[0]
                found.append((entry.stat().st_mtime, key, Path(entry.path)))
        found.sort()
        return found

    async def batches(self) -> AsyncIterator[Batch]:
        mailbox.Maildir(str(self.path), create=True)  # makes new/cur/tmp on a fresh machine
        initial = self.cursors.get_cursor(self.cursor_key) is None
        pending = [e for e in await asyncio.to_thread(self._scan)
                   if not self.known(f"maildir:{e[1]}")]
        if not pending and initial:
            yield Batch(items=[], cursor="seen", initial=True)
            return
        for start in range(0, len(pending), self.batch_size):
            items: list[Inbound] = []
            for mtime, key, path in pending[start:start + self.batch_size]:
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:  # moved to cur/ by a mail client meanwhile
                    moved = next(iter((self.path / "cur").glob(key + "*")), None)
                    if moved is None:
                        continue
                    raw = moved.read_bytes()
                items.append(Inbound(source=SourceKind.MAILDIR, ref=f"maildir:{key}", raw=raw,
                                     received_at=datetime.fromtimestamp(mtime, UTC)))
            yield Batch(items=items, cursor="seen", initial=initial)

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def aclose(self) -> None:
        return None
