"""Building the bot's outgoing mail: replies that thread, forwards, alerts.

Every value that reaches a header passes through here and is sanitised, so text from a
requester (a subject, a display name) can never add a header or a recipient.

Header choices (RFC 3834 and what help desks learned):

- ``Auto-Submitted``: ``auto-replied`` on direct answers to a requester's message,
  ``auto-generated`` on messages the bot starts itself (check-ins, closures, alerts).
  This is the standard marker RFC-compliant responders (Sieve vacation, RFC 5230) honour.
- ``X-Auto-Response-Suppress: All``: Exchange/Outlook ignore ``Auto-Submitted`` but honour
  this one, so their out-of-office replies stay away from us.
- No ``Precedence``: it is non-standard (RFC 2076 calls it "controversial, discouraged";
  RFC 3834 standardises ``Auto-Submitted`` instead) and ``bulk``/``junk`` push a personal
  reply towards spam or "promotions" folders. Responders that honour neither header are
  stopped by the per-recipient caps and loop detection, not by a header. A caller that
  wants it anyway can pass it in ``extra_headers``.
- ``X-Supportbot-Ticket`` / ``X-Supportbot-Kind``: for operators and tests; the reliable
  "this is ours" signal is the Message-ID shape from `make_message_id`.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from bot.mail import mime
from bot.mail.addresses import valid_address
from bot.mail.attachments import File
from bot.mail.echo import echo_subject
from bot.mail.ticketref import TICKET_REF


class ComposeError(ValueError):
    """The message cannot be built safely (no valid sender or recipient, bad header)."""


# Message-IDs: `<sb.{ticket}.{kind}.{random}@{domain}>`; bot.mail.automated recognises them.
OWN_ID = re.compile(r"^<sb\.(\d+)\.([a-z0-9_-]+)\.([0-9a-f]+)@([^<>@\s]+)>$")
# Reply prefixes in the languages help desks meet most (Re, Aw, Sv, Antw, Odp, Ynt, Vs...),
# including counters like "Re[2]:" and "Re(3):".
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|antwort|odp|ynt|rif|ref|réf|res|atb)"
    r"(?:\s*[\[(]\d+[\])])?\s*:\s*", re.IGNORECASE)
_MSG_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII except ':' (RFC 5322 ftext)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_NEWLINES = re.compile(rb"\r\n|\r|\n")

MAX_REFERENCES = 20  # the root plus the most recent ids: enough to thread, bounded in size
# Set by compose() itself; extra_headers may not replace them.
_RESERVED = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references",
    "reply-to", "sender", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "return-path",
})


def make_message_id(ticket_id: int, kind: str, domain: str) -> str:
    """A fresh Message-ID that says "ours" when it comes back (stored before sending)."""
    safe_kind = re.sub(r"[^a-z0-9_-]", "", kind.lower()) or "mail"
    safe_domain = re.sub(r"[^A-Za-z0-9.-]", "", domain).strip(".") or "localhost"
    return f"<sb.{int(ticket_id)}.{safe_kind}.{secrets.token_hex(8)}@{safe_domain}>"


def clean(value: str) -> str:
    """One line of header text: control characters (CR, LF, NUL...) become spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())


def ticket_subject(original: str, ticket_id: int) -> str:
    """``Re: <original> [#id]``: one ``Re:``, one tag, readable when the original is empty."""
    text = clean(original or "")
    text = TICKET_REF.sub(lambda m: "" if int(m.group(1)) == ticket_id else m.group(0), text)
    previous = None
    while previous != text:
        previous = text
        text = _REPLY_PREFIX.sub("", text, count=1)
    text = echo_subject(text)  # short and plain: the bot must not carry a stranger's text
    return f"Re: {text or 'Your request'} [#{ticket_id}]"


def _mailbox(value: str) -> tuple[str, str] | None:
    """`Name <addr>` or a bare address as (plain-text name, bare address).

    Deliberately not a full RFC 5322 parse: a name like ``x Bcc: evil@x <ann@x>`` would
    parse as a group and silently change the recipient; here it stays a (quoted) name.
    """
    text = clean(value)
    angle = re.fullmatch(r"(.*)<([^<>]*)>", text)
    name, addr = (angle.group(1).strip(), angle.group(2)) if angle else ("", text)
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    bare = valid_address(addr)
    if bare is None:
        return None
    return clean(name), bare


def _message_ids(values: Sequence[str | None]) -> list[str]:
    """Valid ``<id>`` tokens in order, duplicates dropped."""
    seen: dict[str, None] = {}
    for value in values:
        for mid in _MSG_ID.findall(value or ""):
            if len(mid) <= 250:
                seen.setdefault(mid, None)
    return list(seen)


def thread_references(references: Sequence[str], in_reply_to: str | None) -> list[str]:
    """RFC 5322 3.6.4: the parent's References plus its Message-ID, capped.

    When capped, the root (first) id is kept with the most recent ones, which is what
    threading algorithms (JWZ, RFC 5256) need.
    """
    ids = _message_ids([*references, in_reply_to])
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids


def compose(*, kind: str, from_header: str, to: Sequence[str], subject: str, text: str,
            html: str | None, message_id: str, date: datetime, in_reply_to: str | None = None,
            references: Sequence[str] = (), auto_submitted: str | None = "auto-replied",
            cc: Sequence[str] = (), reply_to: str | None = None,
            attach_original: bytes | None = None, files: Sequence[File] = (),
            extra_headers: Mapping[str, str] | None = None) -> bytes:
    """The complete RFC 5322 message (CRLF line endings, ASCII), ready to store and send.

    Invalid To/Cc addresses are left out; `ComposeError` when the From, every To, the
    Message-ID or an extra header is unusable. The original, when attached, is spliced in
    byte for byte as ``message/rfc822``: re-serialising it would re-fold or even fail on the
    broken mail forwards often carry.
    """
    sender = _mailbox(from_header)
    if sender is None:
        raise ComposeError(f"invalid From address: {clean(from_header)!r}")
    recipients = [a for a in (_mailbox(v) for v in to) if a is not None]
    if not recipients:
        raise ComposeError(f"no valid recipient among {[clean(v) for v in to]!r}")
    copies = [a for a in (_mailbox(v) for v in cc) if a is not None]
    if not OWN_ID.fullmatch(message_id) and not _MSG_ID.fullmatch(message_id):
        raise ComposeError(f"invalid Message-ID: {clean(message_id)!r}")

    # name (lower-case) -> header bytes, in the order written; extra headers replace ours
    fields: dict[str, bytes] = {}
    fields["from"] = mime.header("From", mime.address_list([sender]))
    fields["to"] = mime.header("To", mime.address_list(recipients))
    if copies:
        fields["cc"] = mime.header("Cc", mime.address_list(copies))
    answer_to = _mailbox(reply_to) if reply_to else None
    if answer_to is not None:
        fields["reply-to"] = mime.header("Reply-To", mime.address_list([answer_to]))
    fields["subject"] = mime.header("Subject", mime.unstructured(clean(subject)[:998]))
    fields["date"] = mime.header(
        "Date", [format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))])
    fields["message-id"] = mime.header("Message-ID", [message_id])
    parent = _message_ids([in_reply_to])
    if parent:
        fields["in-reply-to"] = mime.header("In-Reply-To", parent[:1])
    refs = thread_references(references, in_reply_to)
    if refs:
        fields["references"] = mime.header("References", refs)  # folded between ids
    if auto_submitted:
        fields["auto-submitted"] = mime.header("Auto-Submitted",
                                               mime.unstructured(clean(auto_submitted)))
    fields["x-auto-response-suppress"] = mime.header("X-Auto-Response-Suppress", ["All"])
    own = OWN_ID.fullmatch(message_id)
    if own:
        fields["x-supportbot-ticket"] = mime.header("X-Supportbot-Ticket", [own.group(1)])
    fields["x-supportbot-kind"] = mime.header("X-Supportbot-Kind", mime.unstructured(clean(kind)))
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
            raise ComposeError(f"header {name!r} cannot be set through extra_headers")
        fields.pop(name.lower(), None)  # a replaced header moves to the end, as it is set
        fields[name.lower()] = mime.header(name, mime.unstructured(clean(value)))

    headers, payload = _body(text, html, attach_original, files)
    return (b"".join(fields.values()) + mime.header("MIME-Version", ["1.0"])
            + b"".join(headers) + b"\r\n" + payload)


def _file_part(file: File) -> tuple[list[bytes], bytes]:
    """An attached file, base64 in lines of 76 (RFC 2045 6.8)."""
    encoded = base64.b64encode(file.data)
    lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)] or [b""]
    name = mime.param_value(file.filename)
    return ([mime.header("Content-Type", [f"{file.content_type};", f"name={name}"]),
             mime.header("Content-Disposition", ["attachment;", f"filename={name}"]),
             mime.header("Content-Transfer-Encoding", ["base64"])],
            b"\r\n".join(lines))


def _body(text: str, html: str | None, attach_original: bytes | None,
          files: Sequence[File] = ()) -> tuple[list[bytes], bytes]:
    """text/plain, or multipart/alternative with the HTML; inside multipart/mixed with the
    original when there is one. No boundary occurs in any content, the original included."""
    parts = [mime.text_part("plain", text, flow=True)]
    if html is not None:
        parts.append(mime.text_part("html", html))
    contents = [body for _, body in parts]
    if attach_original is None and files:
        attached = [_file_part(f) for f in files]
        contents += [body for _, body in attached]
        outer = mime.choose_boundary(_boundary, contents)
        first = parts[0] if len(parts) == 1 else mime.multipart(
            "alternative", parts, mime.choose_boundary(_boundary, [*contents, outer.encode()]))
        return mime.multipart("mixed", [first, *attached], outer)
    if attach_original is None:
        if len(parts) == 1:
            return parts[0]
        return mime.multipart("alternative", parts, mime.choose_boundary(_boundary, contents))
    original = _NEWLINES.sub(b"\r\n", attach_original)
    if not original.endswith(b"\r\n"):
        original += b"\r\n"
    contents.append(original)
    outer = mime.choose_boundary(_boundary, contents)
    first = parts[0] if len(parts) == 1 else mime.multipart(
        "alternative", parts, mime.choose_boundary(_boundary, [*contents, outer.encode()]))
    attachment = ([mime.header("Content-Type", ["message/rfc822"]),
                   mime.header("Content-Disposition", ["attachment;", 'filename="original.eml"']),
                   mime.header("Content-Transfer-Encoding",
                               ["7bit" if original.isascii() else "8bit"])],
                  original.removesuffix(b"\r\n"))  # the delimiter's CRLF ends its last line
    return mime.multipart("mixed", [first, attachment], outer)


def _boundary() -> str:
    # "=_" cannot occur in quoted-printable text; 128 random bits cannot be guessed.
    return f"=_sb_{secrets.token_hex(16)}"


