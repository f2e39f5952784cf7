"""Counting what reached the outside world, per ticket, and checking the store afterwards.

The SMTP server is the witness for mail: per original Message-ID, the requester-facing
messages (`X-Supportbot-Kind` acknowledge / ask_info / forwarded, `In-Reply-To` = the
original). The fake Help Scout is the witness for conversations: reply threads of type
`message` written by the bot.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.tickets import REQUESTER_KINDS, Ticket


@dataclass
class Delivery:
    """The accounting of one set of tickets: the figures the suites print."""

    tickets: int = 0
    answered: int = 0  # tickets with at least one requester-facing message
    missing: int = 0  # tickets with none
    duplicates: int = 0  # tickets that got more than one distinct requester-facing message
    redeliveries: int = 0  # extra copies of a Message-ID already delivered (same bytes)
    wrong_kind: int = 0  # answered, but not with the kind the rules should choose
    stray: int = 0  # requester-facing messages that answer no ticket of ours
    examples: list[str] = field(default_factory=list)

    def problems(self, *, allow_redeliveries: bool = True) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{self.missing} ticket(s) never answered")
        if self.duplicates:
            out.append(f"{self.duplicates} ticket(s) answered more than once")
        if self.wrong_kind:
            out.append(f"{self.wrong_kind} ticket(s) answered with the wrong kind")
        if self.stray:
            out.append(f"{self.stray} requester message(s) answering no known ticket")
        if self.redeliveries and not allow_redeliveries:
            out.append(f"{self.redeliveries} same-Message-ID redelivery(ies)")
        return [p + (f" (e.g. {'; '.join(self.examples[:3])})" if self.examples else "")
                for p in out]


def count_mail(tickets: Sequence[Ticket], received: Iterable[Any]) -> Delivery:
    """`received`: `tests.servers.smtp.Received` objects (anything with `.message`)."""
    by_original: dict[str, list[str]] = defaultdict(list)  # original -> [Message-ID, ...]
    kinds: dict[str, set[str]] = defaultdict(set)
    stray = 0
    for item in received:
        msg = item.message
        kind = str(msg.get("X-Supportbot-Kind", ""))
        if kind not in REQUESTER_KINDS:
            continue
        original = str(msg.get("In-Reply-To", "")).strip()
        by_original[original].append(str(msg.get("Message-ID", "")).strip())
        kinds[original].add(kind)
    known = {t.message_id for t in tickets}
    stray = sum(len(v) for k, v in by_original.items() if k not in known)
    d = Delivery(tickets=len(tickets), stray=stray)
    for t in tickets:
        ids = by_original.get(t.message_id, [])
        distinct = Counter(ids)
        if not ids:
            d.missing += 1
            d.examples.append(f"missing {t.message_id}")
            continue
        d.answered += 1
        if len(distinct) > 1:
            d.duplicates += 1
            d.examples.append(f"{t.message_id} answered by {sorted(distinct)}")
        d.redeliveries += sum(n - 1 for n in distinct.values())
        if kinds[t.message_id] != {t.expected}:
            d.wrong_kind += 1
            d.examples.append(f"{t.message_id} got {sorted(kinds[t.message_id])}, "
                              f"expected {t.expected}")
    return d


def count_all_redeliveries(received: Iterable[Any]) -> int:
    """Extra copies of any Message-ID the bot sent (owners' forwards and alerts too)."""
    ids = Counter(str(r.message.get("Message-ID", "")).strip() for r in received
                  if r.message.get("X-Supportbot-Kind"))
    return sum(n - 1 for n in ids.values())


@dataclass
class StoreCheck:
    integrity: str = ""
    outbox: dict[str, int] = field(default_factory=dict)
    tickets: int = 0
    ledger: int = 0
    ledger_missing: list[str] = field(default_factory=list)  # refs or Message-IDs not recorded
    quarantined: int = 0

    def problems(self, *, expected_tickets: int | None = None) -> list[str]:
        out = []
        if self.integrity != "ok":
            out.append(f"PRAGMA integrity_check: {self.integrity}")
        for status in ("sending", "pending", "failed"):
            if self.outbox.get(status):
                out.append(f"{self.outbox[status]} outbox row(s) left {status}")
        if self.ledger_missing:
            out.append(f"{len(self.ledger_missing)} message(s) not in the ledger, e.g. "
                       f"{self.ledger_missing[:3]}")
        if expected_tickets is not None and self.tickets != expected_tickets:
            out.append(f"{self.tickets} tickets in the store, expected {expected_tickets}")
        return out


def check_store(path: Path | str, *, refs: Iterable[str] = (),
                message_ids: Iterable[str] = ()) -> StoreCheck:
    """Read-only look at the state (a SQLite file or a PostgreSQL URL) once every worker is
    gone. PostgreSQL has no integrity_check: its constraints held or the writes failed."""
    if isinstance(path, str) and path.startswith("postgresql://"):
        import psycopg

        conn: Any = psycopg.connect(path, autocommit=True)
        integrity = "ok"
    else:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
    try:
        check = StoreCheck()
        check.integrity = integrity
        check.outbox = dict(conn.execute(
            "SELECT status, count(*) FROM outbox GROUP BY status"))
        check.tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        check.ledger = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        check.quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        seen_refs = {r[0] for r in conn.execute("SELECT ref FROM messages")}
        seen_ids = {r[0] for r in conn.execute("SELECT message_id FROM messages")}
        check.ledger_missing = ([r for r in refs if r not in seen_refs]
                                + [m for m in message_ids if m not in seen_ids])
        return check
    finally:
        conn.close()


@dataclass
class HelpScoutCount:
    """Per conversation in the fake Help Scout: the bot's reply threads and notes."""

    conversations: int = 0
    answered: int = 0
    missing: int = 0
    duplicate_replies: int = 0  # conversations with more than one reply thread
    duplicate_notes: int = 0  # conversations with more than one internal note
    examples: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{self.missing} conversation(s) never answered")
        if self.duplicate_replies:
            out.append(f"{self.duplicate_replies} conversation(s) with more than one reply")
        if self.duplicate_notes:
            out.append(f"{self.duplicate_notes} conversation(s) with more than one note")
        return [p + (f" (e.g. {'; '.join(self.examples[:3])})" if self.examples else "")
                for p in out]


def count_helpscout(fake: Any, conversation_ids: Iterable[int]) -> HelpScoutCount:
    """`fake`: a `bot.demo.fake_helpscout.FakeHelpScout`; no agent writes in these runs,
    so every `message` thread is the bot's reply and every note the bot's note."""
    c = HelpScoutCount()
    for conv in conversation_ids:
        c.conversations += 1
        threads = fake.threads(conv)
        replies = [t for t in threads if t["type"] == "message"]
        notes = [t for t in threads if t["type"] == "note"]
        if not replies:
            c.missing += 1
            c.examples.append(f"conversation {conv}: no reply")
            continue
        c.answered += 1
        if len(replies) > 1:
            c.duplicate_replies += 1
            c.examples.append(f"conversation {conv}: {len(replies)} replies")
        if len(notes) > 1:
            c.duplicate_notes += 1
            c.examples.append(f"conversation {conv}: {len(notes)} notes")
    return c
