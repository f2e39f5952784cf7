"""The files a person attached to their mail, to pass on with their words.

An owner who answers "the corrected invoice is attached" must not have the invoice dropped
on the way to the requester. Only real attachments go (Content-Disposition: attachment),
never an attached message (that would carry the bot's internal forward along), capped in
number and size; names are reduced to safe ASCII.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

MAX_FILES = 10
MAX_BYTES = 10 * 1024 * 1024  # in all: beyond it the rest is left out (the log says so)
_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()-]+")


@dataclass(frozen=True)
class File:
    filename: str
    content_type: str
    data: bytes


def files_of(raw: bytes | None) -> tuple[tuple[File, ...], int]:
    """The attachments of ``raw`` and how many were left out (too many, too big)."""
    if not raw:
        return (), 0
    try:
        msg = message_from_bytes(raw, policy=policy.default)
    except Exception:  # noqa: BLE001 - unreadable mail simply has no files to pass on
        return (), 0
    found: list[File] = []
    left_out = total = 0
    for part in msg.walk():
        if not isinstance(part, EmailMessage) or part.is_multipart() \
                or part.get_content_disposition() != "attachment" \
                or part.get_content_maintype() == "message":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        if len(found) >= MAX_FILES or total + len(data) > MAX_BYTES:
            left_out += 1
            continue
        total += len(data)
        ctype = part.get_content_type().lower()
        name = _UNSAFE.sub("_", part.get_filename() or "attachment").strip(" ._")[:100]
        found.append(File(name or "attachment",
                          ctype if _TYPE.match(ctype) else "application/octet-stream", data))
    return tuple(found), left_out
