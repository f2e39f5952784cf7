"""The demo told for a person: per step, per ticket, what the bot did, why, and what people got.

Only the simulated clock appears (the worker's own log, on the real clock, goes to a file),
lines stay within ``WIDTH``, and every message sent is shown as its recipient would see it:
who, the subject, and the first lines of the text.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from bot.mail.html2text import html_to_text
from bot.store import ActivityRow, Store

WIDTH = 100
EXCERPT_LINES = 5  # wrapped lines of each text shown
# Activity the "receives" lines already tell (planned, then sent) or that is the header.
_TOLD_ELSEWHERE = frozenset({"planned", "sent"})

_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00|Z)?")

Printer = Callable[[str], None]


@dataclass(frozen=True)
class Delivery:
    """One message as its recipient meets it."""

    ticket: int | None
    headline: str  # who receives what: "ann@x receives acknowledge: Re: Hello [#1]"
    text: str


def wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    """``text`` in lines of at most WIDTH: ``first`` before the first, ``rest`` before others."""
    return textwrap.wrap(text, WIDTH, initial_indent=first,
                         subsequent_indent=rest if rest is not None else " " * len(first),
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def excerpt(text: str, prefix: str = "       | ") -> list[str]:
    """The first lines of a text, wrapped, as a quote; '...' when there is more."""
    lines: list[str] = []
    more = False
    visible = "".join(c for c in text if unicodedata.category(c) != "Cf")  # e.g. zero-width
    for paragraph in (p.strip() for p in visible.replace("\r\n", "\n").split("\n")):
        if not paragraph:
            continue
        if len(lines) >= EXCERPT_LINES:
            more = True
            break
        lines += wrap(paragraph, prefix, prefix)
    more = more or len(lines) > EXCERPT_LINES
    return lines[:EXCERPT_LINES] + ([prefix + "..."] if more else [])


def maildir_deliveries(outbox: Path) -> Callable[[], list[Delivery]]:
    """New messages in the outbox Maildir since the last call, oldest first."""
    seen: set[str] = set()

    def new() -> list[Delivery]:
        folder = outbox / "new"
        if not folder.is_dir():
            return []
        files = sorted((f for f in folder.iterdir() if f.name not in seen),
                       key=lambda f: (f.stat().st_mtime_ns, f.name))
        result = []
        for f in files:
            seen.add(f.name)
            msg = message_from_bytes(f.read_bytes(), policy=policy.default)
            assert isinstance(msg, EmailMessage)
            body = msg.get_body(("plain", "html"))
            text = body.get_content() if body is not None else ""
            if body is not None and body.get_content_subtype() == "html":
                text = html_to_text(text)
            ticket = str(msg["X-Supportbot-Ticket"] or "")
            result.append(Delivery(
                int(ticket) if ticket.isdigit() else None,
                f"{msg['To']} receives {msg['X-Supportbot-Kind'] or 'mail'}: {msg['Subject']}",
                text))
        return result
    return new


class Narrator:
    """Prints what happened since the last step, grouped by ticket."""

    def __init__(self, store: Store, deliveries: Callable[[], list[Delivery]],
                 out: Printer) -> None:
        self.store = store
        self.deliveries = deliveries
        self.out = out
        self.seen = len(store.activity(limit=100000))

    def step(self, now: datetime, heading: str) -> None:
        self.out("")
        for line in wrap(f"{now:%a %d %b %H:%M} - {heading}", "== ", "   "):
            self.out(line)
        rows = self.store.activity(limit=100000)
        fresh, self.seen = rows[self.seen:], len(rows)
        sent = self.deliveries()
        for ticket in _in_order([r.ticket_id for r in fresh] + [d.ticket for d in sent]):
            self._ticket(ticket, [r for r in fresh if r.ticket_id == ticket],
                         [d for d in sent if d.ticket == ticket])

    def _ticket(self, ticket_id: int | None, rows: list[ActivityRow], sent: list[Delivery]) -> None:
        self.out("")
        ticket = self.store.get_ticket(ticket_id) if ticket_id is not None else None
        if ticket is not None:
            self.out(cut(f"  #{ticket.id}  {ticket.subject!r}  from {ticket.requester}"))
        elif ticket_id is None:
            self.out("  not a ticket")
        for row in rows:
            if row.action in _TOLD_ELSEWHERE:
                continue
            rule = f" [rule: {row.rule}]" if row.rule and row.action == "classified" else ""
            for line in wrap(f"{_readable_times(row.detail)}{rule}",
                             f"    {row.at:%H:%M}  "
                             f"{row.action:<17} ", " " * 30):
                self.out(line)
        for delivery in sent:
            for line in wrap(delivery.headline, "    -> ", " " * 7):
                self.out(line)
            for line in excerpt(delivery.text):
                self.out(line)


def _readable_times(text: str) -> str:
    """Stored ISO times as the story's clock reads ("Tue 01 Dec 09:00")."""
    return _ISO_TIME.sub(lambda m: f"{datetime.fromisoformat(m.group(0)):%a %d %b %H:%M}", text)


def _in_order(values: Iterable[int | None]) -> list[int | None]:
    return list(dict.fromkeys(values))


def cut(line: str) -> str:
    return line if len(line) <= WIDTH else line[:WIDTH - 3] + "..."
