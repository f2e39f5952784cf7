"""Raw RFC 5322 bytes -> `Message`, for mail as it really arrives.

Real mail is often broken: CR-only line endings, charsets nobody has heard of, encoded
words that do not decode, MIME trees with missing boundaries, 50 MB bodies. The bot must
still record and classify such mail, so parsing never raises except `MalformedMessage`,
and only when the bytes are not an email at all (no header block). Every repair made
along the way is noted in ``Message.defects``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import Message as MimePart
from email.parser import BytesParser
from email.policy import Policy
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from hashlib import sha256
from typing import Any

from bot.errors import MalformedMessage
from bot.mail.addresses import address_list, bare_address
from bot.mail.html2text import html_to_text
from bot.model import Attachment, Headers, Message, SourceKind

# Rules look at this much text; the raw bytes are kept whole for the record.
MAX_TEXT_CHARS = 200_000
MAX_HTML_CHARS = 1_000_000
# Hostile MIME trees: stop walking long before memory or the stack suffer.
MAX_PARTS = 500
MAX_DEPTH = 40

_FOLD = re.compile(r"[\r\n]+[ \t]*")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_MSGID = re.compile(r"<[^<>\s]+>")
_PRINTABLE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")
MAX_ID_CHARS = 250
MAX_REFERENCES = 50  # a References header keeps the root and the latest 49
MAX_ID_HEADER_CHARS = 64_000
_ANGLE_ADDR = re.compile(r"<[^<>]*>")
_BOM = b"\xef\xbb\xbf"
# compat32 first: we decode every header ourselves, and policy.default re-parses
# Content-Type on every access (3x slower); it is the second opinion when compat32 fails.
_POLICIES: tuple[tuple[str, Policy], ...] = (
    ("compat32", email_policy.compat32), ("policy.default", email_policy.default))
# Labels that promise nothing: try UTF-8, then a single-byte fallback.
_NO_CHARSET = frozenset({"", "unknown", "unknown-8bit", "x-unknown", "default", "charset"})


def parse_message(raw: bytes, *, source: SourceKind = SourceKind.EMAIL,
                  received_at: datetime | None = None) -> Message:
    """Parse one raw email; repairs are listed in ``defects``, never raised.

    Raises `MalformedMessage` only when the bytes hold no header field at all.
    """
    data = bytes(raw)
    if not data.strip():
        raise MalformedMessage("empty message")
    defects: list[str] = []
    normalised = _normalise(data)
    for name, policy in _POLICIES:
        try:
            fields = _extract(_parse_mime(normalised, policy), defects)
            break
        except Exception as exc:  # noqa: BLE001 - the stdlib parser fails in many ways on hostile input
            defects.append(f"{name} parser failed ({type(exc).__name__})")
    else:
        by_hand = _headers_by_hand(normalised)
        fields = _Fields(headers=[(n, decode_header_value(v)) for n, v in by_hand],
                         raw_headers=by_hand)
    if not fields.headers:
        raise MalformedMessage("no header fields: not an email message")
    h = Headers(items=tuple(fields.headers))
    try:
        envelope = _envelope(h, Headers(items=tuple(fields.raw_headers)) if fields.raw_headers
                             else h)
    except Exception as exc:  # noqa: BLE001 - an unforeseen header shape must not lose the mail
        defects.append(f"address or id headers unreadable ({type(exc).__name__})")
        envelope = {"message_id": None, "from_addr": "", "subject": h.get("Subject") or ""}
    return Message(
        source=source,
        **envelope,
        text=fields.text,
        html=fields.html,
        headers=h,
        content_type=fields.content_type,
        report_type=fields.report_type,
        attachments=tuple(fields.attachments),
        received_at=received_at,
        content_hash=sha256(data).hexdigest(),
        defects=tuple(dict.fromkeys(defects)),
        raw=data,
    )


def message_from_bytes_safe(raw: bytes) -> MimePart:
    """The stdlib MIME tree of ``raw`` (line endings normalised), for readers of structure.

    Header values in it are raw: decode them with `decode_header_value`.
    """
    data = _normalise(raw)
    for _, policy in _POLICIES[:-1]:
        try:
            return _parse_mime(data, policy)
        except Exception:  # noqa: BLE001 - try the next parser; the last one may raise
            continue
    return _parse_mime(data, _POLICIES[-1][1])


def decode_header_value(value: str) -> str:
    """A raw header value as text: unfolded, 8-bit repaired, RFC 2047 words decoded.

    A word that cannot be decoded stays as written; CR and LF never survive.
    """
    value = _FOLD.sub(" ", value)
    if not value.isascii():
        try:
            value = _decode_bytes(value.encode("utf-8", "surrogateescape"), "utf-8")
        except UnicodeEncodeError:  # a stray surrogate that did not come from bytes
            value = value.encode("utf-8", "replace").decode("utf-8")
    if "=?" in value:
        value = _decode_encoded_words(value)
    return value.replace("\r", " ").replace("\n", " ").strip()


def decode_payload(part: MimePart, limit: int | None = None) -> str:
    """A leaf part's text in its declared charset, or the best guess when that fails."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    if limit is not None:
        payload = payload[:limit]
    text = _decode_bytes(payload, _charset(part))
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- extraction ------------------------------------------------------------------------

@dataclass
class _Fields:
    headers: list[tuple[str, str]]
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # still RFC 2047-encoded
    text: str = ""
    html: str | None = None
    content_type: str = "text/plain"
    report_type: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0


def _extract(mime: MimePart, defects: list[str]) -> _Fields:
    raw_headers = [(name.strip(), str(value)) for name, value in mime.raw_items()]
    headers = [(name, decode_header_value(value)) for name, value in raw_headers]
    content_type = mime.get_content_type()
    report_type = None
    if content_type == "multipart/report":
        param = mime.get_param("report-type")
        if param is not None:
            report_type = str(collapse_rfc2231_value(param)).strip().lower() or None
    body = _Body()
    _collect(mime, body, 0, defects, top=True)
    text = "\n\n".join(t for t in body.plain if t.strip())
    html = "\n".join(body.html)[:MAX_HTML_CHARS] if body.html else None
    if not text and html:
        text = html_to_text(html)
    if len(text) > MAX_TEXT_CHARS:
        defects.append(f"text truncated to {MAX_TEXT_CHARS} characters")
        text = text[:MAX_TEXT_CHARS]
    return _Fields(headers, raw_headers, text, html, content_type, report_type, body.attachments)


def _collect(part: MimePart, body: _Body, depth: int, defects: list[str], *,
             top: bool = False) -> None:
    """Walk the MIME tree: readable text parts into ``plain``/``html``, the rest listed."""
    body.parts += 1
    if body.parts > MAX_PARTS or depth > MAX_DEPTH:
        if body.parts == MAX_PARTS + 1 or depth == MAX_DEPTH + 1:
            defects.append("MIME tree too large: rest not read")
        return
    defects.extend(type(d).__name__ for d in part.defects)
    ctype = part.get_content_type()
    payload = part.get_payload()
    if ctype.startswith("multipart/") and isinstance(payload, list):
        # The parser only puts messages in a multipart's list (typeshed also allows str).
        subparts = [sub for sub in payload if isinstance(sub, MimePart)]
        if ctype == "multipart/alternative":
            _collect_alternative(subparts, body, depth, defects)
        else:
            for sub in subparts:
                _collect(sub, body, depth + 1, defects)
        return
    if ctype.startswith("multipart/"):
        # no usable boundary: the parser kept the whole body as one string
        body.plain.append(decode_payload(part, MAX_TEXT_CHARS * 4))
        return
    filename = _filename(part)
    disposition = part.get_content_disposition()
    readable = disposition != "attachment" and filename is None and not isinstance(payload, list)
    if readable and ctype == "text/plain":
        body.plain.append(decode_payload(part, MAX_TEXT_CHARS * 4))
    elif readable and ctype == "text/html":
        body.html.append(decode_payload(part, MAX_HTML_CHARS * 4))
    elif readable and top and ctype.startswith("text/"):
        # a whole message of text/enriched or similar: still the best text there is
        body.plain.append(decode_payload(part, MAX_TEXT_CHARS * 4))
    else:
        body.attachments.append(Attachment(filename, ctype, _size(part, depth)))


def _collect_alternative(subparts: list[MimePart], body: _Body, depth: int,
                         defects: list[str]) -> None:
    """Keep one rendering: the first with plain text, else the first with HTML."""
    chosen: list[_Body] = []
    for sub in subparts:
        alt = _Body(parts=body.parts)
        _collect(sub, alt, depth + 1, defects)
        body.parts = alt.parts
        body.attachments.extend(alt.attachments)
        chosen.append(alt)
    plain = next((alt.plain for alt in chosen if any(t.strip() for t in alt.plain)), [])
    html = next((alt.html for alt in chosen if alt.html), [])
    body.plain.extend(plain)
    body.html.extend(html)


def _size(part: MimePart, depth: int) -> int:
    """Decoded size of a leaf; for an attached message, roughly its length as sent."""
    payload = part.get_payload()
    if isinstance(payload, list):
        if depth > MAX_DEPTH:
            return 0
        return sum(_size(sub, depth + 1) + sum(len(k) + len(str(v)) + 4
                                              for k, v in sub.raw_items())
                   for sub in payload if isinstance(sub, MimePart))
    decoded = part.get_payload(decode=True)
    return len(decoded) if isinstance(decoded, bytes) else len(str(payload))


def _filename(part: MimePart) -> str | None:
    name = part.get_filename()
    if name is None:
        param = part.get_param("name")  # old clients name attachments only in Content-Type
        if param is not None:
            name = collapse_rfc2231_value(param)
    if name is None:
        return None
    return decode_header_value(str(name)) or None


def _charset(part: MimePart) -> str:
    charset = part.get_param("charset")
    if charset is None:
        return ""
    return str(collapse_rfc2231_value(charset)).strip().strip('"').lower()


# -- decoding helpers ------------------------------------------------------------------

def _decode_bytes(data: bytes, charset: str) -> str:
    """Declared charset if it works, else UTF-8, else a single-byte guess with replacements."""
    charset = charset.partition("*")[0].strip().lower()  # RFC 2231 language suffix
    if charset not in _NO_CHARSET and charset not in ("us-ascii", "ascii"):
        try:
            return data.decode(charset)
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass  # unknown, mislabelled or not a text codec (`base64`): guess below
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode_encoded_words(value: str) -> str:
    """RFC 2047: adjacent words in one charset are joined before decoding (split UTF-8)."""
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(_decode_bytes(bytes(pending), pending_charset))
            pending.clear()
            pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        charset, encoding, text = match.groups()
        decoded = _decode_word(encoding, text)
        if decoded is None:  # not decodable: keep the word as written
            flush()
            out.append(between + match.group(0))
        else:
            # whitespace between two encoded words is not part of the text
            if between and not (pending_charset is not None and not between.strip()):
                flush()
                out.append(between)
            if pending_charset is not None and pending_charset != charset.lower():
                flush()
            pending_charset = charset.lower()
            pending.extend(decoded)
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def _decode_word(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(text.encode("ascii"), header=True)
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_mime(data: bytes, policy: Policy) -> MimePart:
    return BytesParser(policy=policy).parsebytes(data)


def _normalise(raw: bytes) -> bytes:
    """LF line endings and no leading BOM or blank lines: the parser's happy path."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    return data.lstrip(b"\n")


def _headers_by_hand(data: bytes) -> list[tuple[str, str]]:
    """Last resort when both parsers fail: `Name: value` lines up to the first blank line."""
    headers: list[tuple[str, str]] = []
    head = data.split(b"\n\n", 1)[0].decode("ascii", "surrogateescape")
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            if name and not any(c.isspace() for c in name):
                headers.append((name, value))
    return headers


# -- header fields ---------------------------------------------------------------------

def _envelope(h: Headers, raw: Headers) -> dict[str, Any]:
    """The `Message` fields that come from headers: addresses, ids, subject, date.

    Address lists are split while still encoded (``raw``) and only then are the names
    decoded: an encoded name that decodes to an address or a line break must stay a name.
    """
    from_pairs = _addresses(raw, "From") or _addresses(raw, "Sender")
    from_name, from_addr = from_pairs[0] if from_pairs else (_name_only(h.get("From")), "")
    return {
        "message_id": next(iter(_message_ids(h.get("Message-ID"), bare_ok=True)), None),
        "from_addr": from_addr,
        "from_name": from_name,
        "subject": h.get("Subject") or "",
        "to": tuple(a for _, a in _addresses(raw, "To")),
        "cc": tuple(a for _, a in _addresses(raw, "Cc")),
        "reply_to": tuple(a for _, a in _addresses(raw, "Reply-To")),
        "return_path": _return_path(h.get("Return-Path")),
        "in_reply_to": _message_ids(h.get("In-Reply-To"), bare_ok=True),
        "references": _message_ids(" ".join(h.get_all("References"))),
        "date": _date(h.get("Date")),
    }


_WHOLE_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _mask_encoded_words(value: str) -> tuple[str, dict[str, str]]:
    """``value`` unfolded, each encoded word replaced by an opaque quoted name; and the names.

    While the list is split, what an encoded word decodes to (an address, a comma, a line
    break) can then only ever be a display name.
    """
    words: dict[str, str] = {}

    def hide(match: re.Match[str]) -> str:
        key = f"sbencodedword{len(words)}x"
        words[key] = match.group(0)
        return f'"{key}"'

    return _WHOLE_ENCODED_WORD.sub(hide, " ".join(value.split())), words


def _addresses(h: Headers, name: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    for value in h.get_all(name):
        masked, words = _mask_encoded_words(value)
        for display, addr in address_list([masked]):
            for key, word in words.items():
                display = display.replace(key, word)
            result.append((" ".join(decode_header_value(display).split()), addr))
    return result


def _name_only(value: str | None) -> str:
    """What a From without an address still says: ``MAILER-DAEMON <>`` -> ``MAILER-DAEMON``."""
    return _ANGLE_ADDR.sub("", value or "").strip().strip('"').strip()


def _message_ids(value: str | None, *, bare_ok: bool = False) -> tuple[str, ...]:
    """``<id@host>`` tokens; a lone bare ``id@host`` is bracketed so it can still match.

    Only printable ASCII ids of at most `MAX_ID_CHARS` survive (a NUL, an ESC or a
    non-ASCII letter would travel into our own References header or a terminal), and at
    most `MAX_REFERENCES` of them: the first (the thread's root) and the latest.
    """
    if not value:
        return ()
    ids = tuple(i for i in _MSGID.findall(value[:MAX_ID_HEADER_CHARS]) if _usable_id(i))
    if not ids and bare_ok:
        token = value.strip()
        if token and "@" in token and not any(c.isspace() or c in "<>" for c in token) \
                and _usable_id(f"<{token}>"):
            return (f"<{token}>",)
    if len(ids) > MAX_REFERENCES:
        ids = (ids[0], *ids[-(MAX_REFERENCES - 1):])
    return ids


def _usable_id(message_id: str) -> bool:
    return len(message_id) <= MAX_ID_CHARS and _PRINTABLE_ID.fullmatch(message_id) is not None


def _return_path(value: str | None) -> str | None:
    if value is None:
        return None
    return bare_address(value) if value.strip() not in ("", "<>") else ""


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
