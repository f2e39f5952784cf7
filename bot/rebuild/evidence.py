"""What the mailbox still knows about the bot's past work, read from message headers.

Each message the bot sends has a Message-ID ``<sb.{ticket}.{kind}.{random}@domain>`` and
threads under the requester's mail (In-Reply-To, References); a forward or relay carries
the requester's message itself as its second part. So the headers of our copies in the
Sent folder say which ticket each message was for, what it was, when it was written, and
which inbound messages it answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.errors import MalformedMessage
from bot.mail.addresses import address_list
from bot.mail.compose import OWN_ID
from bot.mail.parse import decode_header_value, parse_message
from bot.mail.ticketref import TICKET_REF
from bot.vocab import MessageKind, SourceKind

# The header fields the rebuild reads: enough to know the message, never its body.
SENT_FIELDS = ("MESSAGE-ID", "DATE", "TO", "CC", "SUBJECT", "IN-REPLY-TO", "REFERENCES",
               "X-SUPPORTBOT-TICKET", "X-SUPPORTBOT-KIND")


@dataclass(frozen=True)
class SentMessage:
    """One message of ours found in the Sent folder."""

    ticket_id: int
    kind: MessageKind
    message_id: str
    at: datetime  # its Date: when it was planned, the moment its timers counted from
    to: tuple[tuple[str, str], ...]  # (display name, address)
    subject: str
    in_reply_to: str | None
    answers: tuple[str, ...]  # inbound Message-IDs it was written after: References, In-Reply-To
    original: str | None  # the Message-ID of the mail a forward or relay carried
    headers: bytes


@dataclass(frozen=True)
class InboxEntry:
    """One message in the support folder, known by its ledger ref and Message-ID."""

    ref: str
    message_id: str
    received_at: datetime
    folder: str
    uidvalidity: int
    uid: int


def read_sent(headers: bytes, sent_at: datetime,
              original_headers: bytes | None = None) -> SentMessage | None:
    """The ``SentMessage`` in these header bytes; None when it is not one of ours."""
    try:
        msg = parse_message(headers + b"\r\n", source=SourceKind.IMAP)
    except MalformedMessage:
        return None
    own = OWN_ID.fullmatch(msg.message_id or "")
    if own is None or int(own.group(1)) <= 0:  # ticket 0: the report, no ticket to rebuild
        return None
    try:
        kind = MessageKind(msg.headers.get("X-Supportbot-Kind") or own.group(2))
    except ValueError:
        return None
    original = None
    if original_headers:
        try:
            original = parse_message(original_headers + b"\r\n").message_id
        except MalformedMessage:
            original = None
    to = tuple((" ".join(decode_header_value(name).split()), addr)
               for name, addr in address_list(msg.headers.get_all("To")))
    answers = tuple(dict.fromkeys(
        m for m in (*msg.references, *msg.in_reply_to) if not OWN_ID.fullmatch(m)))
    return SentMessage(ticket_id=int(own.group(1)), kind=kind, message_id=str(msg.message_id),
                       at=msg.date or sent_at, to=to, subject=msg.subject,
                       in_reply_to=next(iter(msg.in_reply_to), None), answers=answers,
                       original=original, headers=headers)


def original_subject(subject: str, ticket_id: int) -> str:
    """The requester's subject under our ``Re: ... [#N]`` (``bot.mail.compose.ticket_subject``)."""
    text = TICKET_REF.sub(lambda m: "" if int(m.group(1)) == ticket_id else m.group(0), subject)
    text = " ".join(text.split())
    if text.lower().startswith("re:"):
        text = text[3:].strip()
    return "" if text == "Your request" else text


def answered_ids(sent: Iterable[SentMessage]) -> dict[str, int]:
    """Inbound Message-ID -> the ticket whose mail shows it had been read (the first one)."""
    out: dict[str, int] = {}
    for message in sorted(sent, key=lambda m: m.at):
        for mid in (*message.answers, *([message.original] if message.original else [])):
            out.setdefault(mid, message.ticket_id)
    return out
