"""The requester's own words: what rules match, apart from what they quoted or attached.

A ticket's body often carries text the requester did not write: an earlier message below
"On ... wrote:" or Outlook's ``From:/Sent:/To:/Subject:`` block, a forwarded notification
with its unsubscribe footer, a signature, a uuencoded or base64 file pasted inline. A word
like "SPF" in any of those says nothing about the requester's problem, so rules read only
the rest. One exception keeps the deliverability promise: a bounce the person pasted or
forwarded (a mailer-daemon notice, an SMTP error) *is* their problem, so it stays in.
Pure and line-based, one pass: it runs on every new ticket.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.mail.automated import is_bounce_subject
from bot.model import Attachment

QUOTED = "quoted earlier message"
FORWARDED = "forwarded message"
FOOTER = "notification footer"
SIGNATURE = "signature"
UUENCODED = "uuencoded attachment"
BASE64 = "base64 blob"

_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht|originalmeddelande)\s*-{2,}"
    r"|#{1,3}-? ?please (?:type|write) your reply above this line"
    r"|-{2,}\s*reply above this line\s*-{2,})",
    re.IGNORECASE)
_FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado)\s*-{2,}|begin forwarded message:|start of forwarded message)",
    re.IGNORECASE)
_WROTE = re.compile(r"^\s*(?:-+\s*)?on\b.{0,200}\bwrote:\s*$"
                    r"|^.{0,200}\b(?:schrieb|a écrit|escribió)\s*:\s*$", re.IGNORECASE)
_ON = re.compile(r"^\s*on\s\S", re.IGNORECASE)
_BLOCK_FROM = re.compile(r"^\s*\*?(?:from|de|von|van|da|från|fra|от)\s*:\*?\s*\S",
                         re.IGNORECASE)
_BLOCK_FIELD = re.compile(
    r"^\s*\*?(?:sent|date|envoyé|gesendet|enviado|verzonden|data|skickat|sendt|to|à|an|para"
    r"|aan|a|till|til|cc|subject|objet|betreff|asunto|onderwerp|oggetto|assunto|ämne|emne"
    r"|отправлено|дата|кому|копия|тема)\s*:\*?", re.IGNORECASE)
# "Thu, 26 Jun 2014 14:00 +0400 от Alex <a@x.example>:" (mail.ru, Yandex): the quote's byline
_BYLINE = re.compile(r"^.{0,200}<[^<>\s@]+@[^<>\s]+>\s*:\s*$")
_FOOTER = re.compile(
    r"^\s*(?:you (?:received|are receiving|have received|receive) this (?:message|e-?mail"
    r"|notification)|to unsubscribe from this (?:group|list)|if you (?:did not|didn'?t) "
    r"(?:sign up|subscribe|request)|to stop receiving (?:these|this|such)|this (?:e-?mail|message"
    r"|notification) (?:was|is) (?:sent|generated|delivered) (?:to|by|from|automatically)"
    r"|(?:click here to |to )?unsubscribe\b|manage (?:your )?(?:e-?mail )?(?:preferences"
    r"|notifications|subscriptions)|view (?:this|it) (?:e-?mail )?in your browser"
    r"|for more options, visit https?://groups\.google)", re.IGNORECASE)
_MOBILE = re.compile(r"^\s*(?:sent from my \S.*|get outlook for \S.*|sent from (?:mail|yahoo"
                     r" mail|outlook) for \S.*)$", re.IGNORECASE)
_UU_BEGIN = re.compile(r"^begin(?:-base64)? [0-7]{3,4} (\S.*)$")
_UU_END = re.compile(r"^(?:end|====)\s*$")
_BLOB_LINE = re.compile(r"^(?:[A-Za-z0-9+/]{40,}={0,2}|M[\x21-\x60]{55,61})\s*$")
_BLOB_RUN = 3  # blob-like lines in a row before they are a blob, not a long word
# Every line any check below could act on matches this; the rest are the requester's words
# at once (most lines of most tickets), which keeps the reading at a few us per ticket.
_CANDIDATE = re.compile(
    r"^\s*(?:[-#_*>]|(?:on|begin|start|you|to|if|this|click|unsubscribe|manage|view|for|sent"
    r"|get)\b|\w{1,14}\s*:)|:\s*$|^[A-Za-z0-9+/]{40}|^M[\x21-\x60]{55}",
    re.IGNORECASE)
_QUOTE_PREFIX = re.compile(r"^(?:\s*>)+ ?")
# A notice that mail failed: this is evidence of the requester's problem, quoted or not.
_DAEMON_FROM = re.compile(r"^\s*\*?(?:from|de|von)\s*:\*?.*\b(?:mailer-?daemon|postmaster|mail "
                          r"delivery (?:sub)?system|mail administrator)\b", re.IGNORECASE)
_SUBJECT_LINE = re.compile(r"^\s*\*?(?:subject|betreff|objet|asunto)\s*:\*?\s*(.*)$",
                           re.IGNORECASE)
_DSN_LINE = re.compile(r"^\s*(?:final-recipient|diagnostic-code|action: failed|status: [45]\.)"
                       r"|\b[45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b", re.IGNORECASE)


@dataclass(frozen=True)
class OwnWords:
    """``own``: what the requester wrote; ``pasted``: bounces they pasted or forwarded;
    ``set_aside``: what rules do not read, each with why."""

    own: str
    pasted: str = ""
    set_aside: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return f"{self.own}\n{self.pasted}" if self.pasted else self.own

    @property
    def set_aside_text(self) -> str:
        return "\n".join(text for _, text in self.set_aside)


def read_own_words(body: str) -> OwnWords:
    """Split ``body`` into the requester's own words, pasted bounces and the rest."""
    lines = body.splitlines()
    own: list[str] = []
    pasted: list[str] = []
    aside: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _CANDIDATE.search(line) is None:
            own.append(line)
            i += 1
            continue
        cut = _quote_start(lines, i)
        if cut is not None:
            _keep_or_set_aside(cut, lines[i:], pasted, aside)
            break
        if line.rstrip() in ("--", "-- ") or line.strip() == "__":
            _keep_or_set_aside(SIGNATURE, lines[i:], pasted, aside)
            break
        begin = _UU_BEGIN.match(line)
        if begin is not None:
            end = next((j for j in range(i + 1, len(lines)) if _UU_END.match(lines[j])),
                       len(lines) - 1)
            aside.append((f"{UUENCODED} {begin.group(1).strip()[:60]}",
                          "\n".join(lines[i:end + 1])))
            i = end + 1
            continue
        run = _run(lines, i, lambda text: _BLOB_LINE.match(text) is not None)
        if run >= _BLOB_RUN:
            kind = UUENCODED if lines[i].startswith("M") else BASE64
            aside.append((kind, "\n".join(lines[i:i + run])))
            i += run
            continue
        run = _run(lines, i, lambda text: text.lstrip().startswith(">"))
        if run:
            _keep_or_set_aside(QUOTED, lines[i:i + run], pasted, aside)
            i += run
            continue
        if _FOOTER.match(line):
            end = next((j for j in range(i, len(lines)) if not lines[j].strip()), len(lines))
            aside.append((FOOTER, "\n".join(lines[i:end])))
            i = end
            continue
        if _MOBILE.match(line):
            aside.append((SIGNATURE, line))
        else:
            own.append(line)
        i += 1
    return OwnWords("\n".join(own).strip(), "\n".join(pasted).strip(), tuple(aside))


def _run(lines: list[str], start: int, test: Callable[[str], bool]) -> int:
    """How many lines from ``start`` on pass ``test``."""
    count = 0
    while start + count < len(lines) and test(lines[start + count]):
        count += 1
    return count


def _quote_start(lines: list[str], i: int) -> str | None:
    """Why the rest of the body from line ``i`` is someone else's message, or None."""
    line = lines[i]
    if _FORWARD_MARKER.match(line):
        return FORWARDED
    if _MARKER.match(line) or _WROTE.match(line):
        return QUOTED
    if _ON.match(line) and i + 1 < len(lines) and _WROTE.match(f"{line} {lines[i + 1]}"):
        return QUOTED  # "On Mon, 2 Apr 2012 at 17:44, Bob <bob@x>" wrapped before "wrote:"
    if _BYLINE.match(line):
        return QUOTED
    if _BLOCK_FROM.match(line) or _BLOCK_FIELD.match(line):
        block = lines[i:i + 6]
        fields = sum(1 for nxt in block if _BLOCK_FIELD.match(nxt) or _BLOCK_FROM.match(nxt))
        if fields >= 3 and any(_BLOCK_FROM.match(nxt) for nxt in block):
            return QUOTED  # Outlook's From: / Sent: / To: / Subject: block, in any order
    return None


def _keep_or_set_aside(why: str, block: list[str], pasted: list[str],
                       aside: list[tuple[str, str]]) -> None:
    """A quoted block is set aside, unless it is a delivery failure the person passed on."""
    plain = [_QUOTE_PREFIX.sub("", line) for line in block]
    if _is_bounce(plain):
        pasted.extend(plain)
    else:
        aside.append((why, "\n".join(block)))


def _is_bounce(lines: list[str]) -> bool:
    for line in lines[:400]:
        if _DAEMON_FROM.match(line) or _DSN_LINE.search(line):
            return True
        subject = _SUBJECT_LINE.match(line)
        if subject is not None and is_bounce_subject(subject.group(1)):
            return True
    return False


def describe_reading(reading: OwnWords, attachments: tuple[Attachment, ...]) -> str:
    """For `explain`: what rules read and what they left out, or "" when it is the whole body."""
    notes = [f"{why} ({len(text.splitlines())} line(s))" for why, text in reading.set_aside]
    if reading.pasted:
        notes.insert(0, "kept: a bounce the requester pasted or forwarded "
                     f"({len(reading.pasted.splitlines())} line(s))")
    if attachments:
        notes.append(f"{len(attachments)} attachment(s), never read")
    if not notes:
        return ""
    return "rules read the requester's own words; " + "; ".join(notes)
