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

# A batch is read whole before it is recorded: past this many bytes the next message starts
# a new batch, so twenty 50 MB mails are read (and held) one at a time.
BATCH_BYTES = 8 * 1024 * 1024


class MaildirSource:
    name = SourceKind.MAILDIR

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
                try:
                    mtime = entry.stat().st_mtime
                except OSError:  # gone since the listing (a client moved it): next scan
                    continue
                found.append((mtime, key, Path(entry.path)))
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
        items: list[Inbound] = []
        size = 0
        for mtime, key, path in pending:
            item = self._read(mtime, key, path)
            if item is None:
                continue
            if items and size + len(item.raw or b"") > BATCH_BYTES:
                yield Batch(items=items, cursor="seen", initial=initial)
                items, size = [], 0
            items.append(item)
            size += len(item.raw or b"")
            if len(items) >= self.batch_size:
                yield Batch(items=items, cursor="seen", initial=initial)
                items, size = [], 0
        if items:
            yield Batch(items=items, cursor="seen", initial=initial)

    def _read(self, mtime: float, key: str, path: Path) -> Inbound | None:
        """One file, read when its turn comes; an unreadable one is an item in error, which
        the pipeline quarantines (with the reason) instead of failing every cycle on it."""
        ref = f"maildir:{key}"
        received = datetime.fromtimestamp(mtime, UTC)
        try:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # moved to cur/ by a mail client meanwhile
                moved = next(iter((self.path / "cur").glob(key + "*")), None)
                if moved is None:
                    return None
                raw = moved.read_bytes()
        except OSError as exc:
            return Inbound(source=SourceKind.MAILDIR, ref=ref, received_at=received,
                           error=f"unreadable file {path.name}: {exc.strerror or exc}")
        return Inbound(source=SourceKind.MAILDIR, ref=ref, raw=raw, received_at=received)

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def aclose(self) -> None:
        return None
