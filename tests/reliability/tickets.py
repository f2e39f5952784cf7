"""Incoming tickets for the reliability suites: distinct senders and Message-IDs, and a mix
of subjects that the shipped rules.yaml answers with acknowledge, ask_info and forward."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

# The first message the requester hears, by the rule the subject draws.
PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "acknowledge": (
        ("Question about exporting contacts",
         "How do I export my contacts to a CSV file? I looked in settings but could not find it."),
        ("Training session for new agents?",
         "Do you offer a short onboarding session for three new agents who start in December?"),
    ),
    "ask_info": (
        ("help", "help"),
        ("not working", "Not working for me today."),
    ),
    "forwarded": (
        ("Charged twice this month",
         "I was charged twice for my subscription in October, please refund one of the charges."),
        ("My emails aren't sending",
         ("Since this morning none of my emails to clients are going out, they bounce back with "
         "550 errors.")),
        ("Cannot log in",
         ("I reset my password twice but I still cannot log in to my account, it says invalid "
         "credentials.")),
    ),
}
# What the requester is sent first (X-Supportbot-Kind); `forward` goes to the owner.
REQUESTER_KINDS = frozenset({"acknowledge", "ask_info", "forwarded"})


@dataclass(frozen=True)
class Ticket:
    number: int
    message_id: str
    sender: str  # bare address, one per ticket so the per-recipient cap never applies
    name: str
    subject: str
    body: str
    expected: str  # the requester-facing kind the rules should choose

    def raw(self) -> bytes:
        """RFC 5322 bytes with CRLF line ends, as IMAP APPEND wants them."""
        msg = EmailMessage()
        msg["From"] = f"{self.name} <{self.sender}>"
        msg["To"] = "Acme Support <support@example.com>"
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = self.message_id
        msg.set_content(self.body)
        return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def make_tickets(count: int, *, seed: int, tag: str) -> list[Ticket]:
    """``count`` tickets, kinds in random (seeded) order; numbers make every body unique."""
    rng = random.Random(seed)
    kinds = sorted(PHRASES)
    out = []
    for n in range(count):
        kind = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
        subject, body = rng.choice(PHRASES[kind])
        out.append(Ticket(
            number=n, message_id=f"<{tag}.{seed}.{n}@customer{n}.example>",
            sender=f"person{n}@customer{n}.example", name=f"Person {n}",
            subject=subject, body=f"{body}\n\nRef {n}", expected=kind))
    return out
