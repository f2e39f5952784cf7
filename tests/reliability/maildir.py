"""Byte-exact delivery into a Maildir (stdlib `mailbox.add` parses and re-serialises a
message, which repairs or chokes on exactly the broken input these tests are about)."""

from __future__ import annotations

import itertools
import os
import socket
from datetime import datetime
from pathlib import Path

_counter = itertools.count()


def deliver_bytes(inbox: Path, raw: bytes, when: datetime) -> str:
    """Write ``raw`` as is to ``inbox``/new (via tmp/, as a delivery agent does); its key."""
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    key = f"{int(when.timestamp())}.P{os.getpid()}Q{next(_counter)}.{socket.gethostname()}"
    tmp = inbox / "tmp" / key
    tmp.write_bytes(raw)
    ts = when.timestamp()
    os.utime(tmp, (ts, ts))
    tmp.rename(inbox / "new" / key)
    return key
