"""Reading the ticket tag a subject carries, ``[#123]``.

`bot.mail.compose.ticket_subject` writes the tag; this reads it back when the requester
answers, so the rules engine and the pipeline never need the composing side.
"""

from __future__ import annotations

import re

TICKET_REF = re.compile(r"\[#(\d{1,12})\]")


def find_ticket_ref(subject: str) -> int | None:
    """The ticket number in a subject tag ``[#123]``; the last tag wins (ours is appended)."""
    found = TICKET_REF.findall(subject or "")
    return int(found[-1]) if found else None
