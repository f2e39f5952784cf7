"""Which recipient bounced, how badly, and which of our messages it was.

RFC 3464 delivery-status notifications say it exactly; the many MTAs that still send
free-text bounces are read best effort (X-Failed-Recipients, status codes in the text).
A recipient is only ``permanent`` with evidence of a 5.x.x failure: wrongly marking a
customer's address dead is worse than one more capped follow-up to a dead address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message as MimePart

from bot.mail.addresses import address_list
from bot.mail.automated import is_bounce_subject
from bot.mail.parse import decode_payload, message_from_bytes_safe
from bot.model import Message


@dataclass(frozen=True)
class Bounce:
    recipients: tuple[str, ...]
    permanent: bool
    original_message_ids: tuple[str, ...]
    status: str | None


@dataclass(frozen=True)
class _Record:
    recipient: str
    action: str
    status: str | None

    @property
    def permanent(self) -> bool:
        # "failed" after a 4.x.x (queue expired) says nothing about the address itself
        status = self.status or ""
        if self.action == "failed":
            return not status.startswith("4")
        return not self.action and status.startswith("5")

    @property
    def temporary(self) -> bool:
        return not self.permanent and (
            self.action in ("failed", "delayed") or (self.status or "").startswith("4"))


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?:^|\s|[:;(])([45][0-5]\d)[\s-]", re.MULTILINE)
_MSGID_LINE = re.compile(r"^[ \t>]*(?:Original-)?Message-ID:[ \t]*(<[^<>\s]+>)",
                         re.IGNORECASE | re.MULTILINE)
_MSGID = re.compile(r"<[^<>\s]+>")
# Where a free-text bounce starts quoting the returned message: addresses after it are not
# the failed recipients but the original's own headers.
_RETURNED = re.compile(
    r"^[ \t>]*(?:(?:Received|Return-Path|From|To|Subject|Message-ID|Date|Reporting-MTA)[ \t]*:"
    r"|-+ ?(?:original message|this is a copy|below this line)|original message follows"
    r"|included is a copy)",
    re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_DELAY = re.compile(
    r"\(delay(?:ed)?\)|\bdelayed\b|still being retried|will be retried|will (?:continue to )?"
    r"retry|not yet been delivered|could not send message for past", re.IGNORECASE)
_PERMANENT_TEXT = re.compile(r"permanent (?:fatal )?error|permanently|fatal error", re.I)
_ROBOTS = re.compile(r"^(?:mailer-?daemon|postmaster|post_master)(?:@|$)", re.IGNORECASE)
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES = frozenset({"message/rfc822", "message/global", "text/rfc822-headers",
                             "message/rfc822-headers", "message/partial"})


def read_bounce(msg: Message) -> Bounce | None:
    """The failure a bounce reports, or None when ``msg`` reports no failed delivery."""
    mime = message_from_bytes_safe(msg.raw) if msg.raw else None
    records = _dsn_records(mime) if mime is not None else []
    ids = _original_ids(msg, mime)
    if records:
        failed = [r for r in records if r.permanent] or [r for r in records if r.temporary]
        if not failed:
            return None  # delivered / relayed / expanded: a success notice
        permanent = failed[0].permanent
        return Bounce(tuple(dict.fromkeys(r.recipient for r in failed if r.recipient)),
                      permanent, ids, next((r.status for r in failed if r.status), None))
    return _free_text_bounce(msg, ids)


# -- RFC 3464 ----------------------------------------------------------------------------

def _dsn_records(mime: MimePart) -> list[_Record]:
    records: list[_Record] = []
    for part in _walk(mime):
        if part.get_content_type() not in _DSN_TYPES:
            continue
        for fields in _dsn_blocks(part):
            # Original-Recipient is the address as we wrote it, before any alias expansion
            recipient = (_recipient(fields.get("original-recipient", ""))
                         or _recipient(fields.get("final-recipient", "")))
            action = fields.get("action", "").strip().lower().partition(" ")[0]
            status = _status(fields.get("status", "")) or _status(
                fields.get("diagnostic-code", ""))
            if recipient or action:
                records.append(_Record(recipient, action, status))
    return records


def _dsn_blocks(part: MimePart) -> list[dict[str, str]]:
    """The field groups of a delivery-status body, whichever way the parser left them."""
    payload = part.get_payload()
    texts: list[str] = []
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if not isinstance(block, MimePart):
                continue
            blocks.append({k.strip().lower(): _unfold(str(v)) for k, v in
                           reversed(list(block.raw_items()))})
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                texts.append(rest)  # fields after a malformed line end up as body text
    else:
        texts.append(decode_payload(part))
    for text in texts:
        for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
            fields: dict[str, str] = {}
            for name, value in re.findall(r"^([A-Za-z][\w-]*)[ \t]*:[ \t]*(.*(?:\n[ \t]+.*)*)",
                                          chunk, re.MULTILINE):
                fields.setdefault(name.lower(), _unfold(value))
            if fields:
                blocks.append(fields)
    return blocks


def _recipient(value: str) -> str:
    """``rfc822; Ann@Example.com`` -> ``ann@example.com``."""
    _, sep, address = value.partition(";")
    pairs = address_list([address if sep else value])
    return pairs[0][1] if pairs else ""


def _status(value: str) -> str | None:
    match = _ENHANCED.search(value)
    return match.group(0) if match else None


# -- free-text bounces ---------------------------------------------------------------------

def _free_text_bounce(msg: Message, ids: tuple[str, ...]) -> Bounce | None:
    failed_header = ", ".join(msg.headers.get_all("X-Failed-Recipients"))
    if not (failed_header or _ROBOTS.match(msg.from_addr) or is_bounce_subject(msg.subject)):
        return None
    match = _RETURNED.search(msg.text)
    report = msg.text[:match.start()] if match else msg.text
    ours = {msg.from_addr, msg.return_path or "", *msg.to, *msg.cc}
    if failed_header:
        recipients = [a for _, a in address_list([failed_header])]
    else:
        found = [a.lower() for a in _ADDRESS.findall(report)]
        recipients = [a for a in found if a not in ours and not _ROBOTS.match(a)]
    enhanced = _ENHANCED.search(report)
    code = _SMTP_CODE.search(report)
    status = enhanced.group(0) if enhanced else (code.group(1) if code else None)
    delayed = bool(_DELAY.search(msg.subject)) or (
        (status or "").startswith("4") and not _PERMANENT_TEXT.search(report))
    permanent = not delayed and ((status or "").startswith("5") or bool(failed_header)
                                 or bool(_PERMANENT_TEXT.search(report)))
    if not (recipients or status or ids):
        return None
    return Bounce(tuple(dict.fromkeys(recipients)), permanent, ids, status)


# -- the returned message ------------------------------------------------------------------

def _original_ids(msg: Message, mime: MimePart | None) -> tuple[str, ...]:
    """Message-IDs of the message that bounced, most reliable source first."""
    found: list[str] = []
    if mime is not None:
        for part in _walk(mime):
            ctype = part.get_content_type()
            if ctype not in _RETURNED_TYPES:
                continue
            payload = part.get_payload()
            if isinstance(payload, list):
                for inner in payload:
                    if isinstance(inner, MimePart):
                        found.extend(_MSGID.findall(_unfold(str(inner.get("Message-ID", "")))))
            else:
                found.extend(_MSGID_LINE.findall(decode_payload(part)))
    found.extend(_MSGID_LINE.findall(msg.text))
    found.extend(msg.in_reply_to)
    found.extend(msg.references)
    return tuple(i for i in dict.fromkeys(found) if i != msg.message_id)


def _walk(mime: MimePart, limit: int = 200) -> list[MimePart]:
    """Every part, attached messages included, bounded against hostile nesting."""
    parts: list[MimePart] = []
    stack = [mime]
    while stack and len(parts) < limit:
        part = stack.pop()
        parts.append(part)
        payload = part.get_payload()
        if isinstance(payload, list) and part.get_content_type() not in _DSN_TYPES:
            stack.extend(reversed([p for p in payload if isinstance(p, MimePart)]))
    return parts


def _unfold(value: str) -> str:
    return re.sub(r"\s*\n\s*", " ", value).strip()
