"""A reply's own words: the text above the quoted earlier message.

Mail clients quote what they answer in a few well-known shapes: ``>`` lines, an
attribution line ("On Mon, 23 Nov 2026, Ann wrote:", "Am ... schrieb ...:"), Outlook's
"-----Original Message-----" or its ``From:/Sent:/To:/Subject:`` block, Gmail's
"---------- Forwarded message ---------". Everything from the first of these on is the
earlier conversation, which the bot already has; deciding again on a reply, or relaying an
owner's answer, must look at what the person wrote *now*. Linear in the text's length.
"""

from __future__ import annotations

import re

# a line that starts the quoted part (everything from it on is dropped)
_CUT = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|forwarded message|ursprüngliche nachricht|message d'origine)"
    r"|_{8,}\s*$"
    r"|(?:on|am|le|el|op)\s.{0,200}(?:wrote|schrieb|a écrit|escribió|schreef)\s*:\s*$"
    r"|from:\s.{0,200}$(?=\n\s*(?:sent|date|to|subject|cc):)"
    r")",
    re.IGNORECASE | re.MULTILINE)


def own_words(text: str) -> str:
    """The text of a reply without the message it quotes (and without ``>`` lines)."""
    cut = _CUT.search(text)
    head = text[:cut.start()] if cut else text
    lines = [line for line in head.splitlines() if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()
