"""The outbox Maildir: where the embedded default and the demo "send" their mail.

A real Maildir (``new/``, ``cur/``, ``tmp/``) any mail client can open. Idempotent per
Message-ID: a resend after a crash (same bytes, same Message-ID) is recognised and not
written twice. File names carry a digest of the Message-ID, so the check is a lookup in
an index of file names built once per process — no file is opened to read its headers.
File names start with the write time, so sorting them gives the order of sending.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from bot.channels.base import OnOutcome, OutboxItem, SendOutcome
from bot.vocab import ChannelName, SendStatus

log = structlog.get_logger(__name__)

_DIGEST = re.compile(r"\.sb([0-9a-f]{32})\.")


def _digest(item: OutboxItem) -> str:
    key = item.message_id or f"outbox:{item.id}"
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class MaildirChannel:
    name = ChannelName.MAILDIR

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: set[str] | None = None
        # Maildir's rule: '/' and ':' in the host part are escaped.
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    async def send_batch(self, items: Sequence[OutboxItem],
                         on_outcome: OnOutcome | None = None) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        for item in items:  # one at a time, so each is recorded before the next is written
            (outcome,) = await asyncio.to_thread(self._write_all, [item])
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(item, outcome)
        return outcomes

    async def aclose(self) -> None:
        return None

    def _write_all(self, items: list[OutboxItem]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        for item in items:
            try:
                outcomes.append(self._write(item))
            except OSError as exc:  # disk full, permissions: worth another try later
                log.error("outbox maildir write failed", path=str(self.path), error=str(exc))
                outcomes.append(SendOutcome(SendStatus.RETRY, f"maildir: {exc}"))
        return outcomes

    def _index(self) -> set[str]:
        if self._known is None:
            for sub in ("tmp", "new", "cur"):  # a Maildir, also inside an existing folder
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._known = {
                m.group(1)
                for sub in ("new", "cur") for entry in os.scandir(self.path / sub)
                if (m := _DIGEST.search(entry.name))
            }
        return self._known

    def _write(self, item: OutboxItem) -> SendOutcome:
        known = self._index()
        digest = _digest(item)
        if digest in known:
            return SendOutcome(SendStatus.SENT, "already in the outbox Maildir (same Message-ID)")
        name = f"{time.time_ns()}.sb{digest}.{self._host}"
        tmp = self.path / "tmp" / name
        with open(tmp, "wb") as fh:
            fh.write(item.payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / "new" / name)  # atomic: readers never see half a file
        known.add(digest)
        return SendOutcome(SendStatus.SENT, f"maildir new/{name}", remote_id=name)
