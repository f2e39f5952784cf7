"""The wider-world corpus (tests/fixtures/wider) through the real worker, with figures.

Shared by tests/test_wider_corpus.py (which asserts) and bench/bench_wider.py (which
prints the figures per category). Each group of messages with the same ``setup`` runs in
its own embedded Maildir deployment whose rules.yaml is the shipped one plus that
``settings.mail``; one worker cycle on a fake clock, then the ledger and the outbox say
what happened to each message: ignored or answered, how many messages reached its
sender, whether on-call was alerted and whether the requester got the urgent notice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.clock import FakeClock
from bot.mail.addresses import reply_recipient
from bot.mail.automated import is_robot_sender
from bot.mail.parse import parse_message
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, embedded_settings, outbox_mail
from tests.reliability.inprocess import quiet_logs
from tests.reliability.maildir import deliver_bytes

WIDER = REPO / "tests" / "fixtures" / "wider"
T0 = datetime(2026, 12, 21, 18, 0, tzinfo=UTC)
TO_REQUESTER = {"acknowledge", "ask_info", "forwarded", "answer"}
URGENT = "forwarded-urgent"


@dataclass(frozen=True)
class Entry:
    file: str
    category: str
    robot: bool
    critical: bool
    setup: dict[str, Any] | None
    provenance: dict[str, Any]


@dataclass
class Result:
    entry: Entry
    status: str = "missing"  # the ledger's word: ticket, ignored, quarantined, ...
    reason: str | None = None
    priority: str | None = None
    to_sender: list[str] = field(default_factory=list)  # kinds of mail to its requester
    alerted: bool = False
    urgent_notice: bool = False

    @property
    def ok(self) -> bool:
        if self.entry.robot:
            return (self.status == "ignored" and not self.to_sender and not self.alerted)
        answered = self.status == "ticket" and len(self.to_sender) == 1
        return answered and self.alerted == self.entry.critical and (
            self.urgent_notice == self.entry.critical)

    def problem(self) -> str:
        e = self.entry
        return (f"{e.file} ({e.category}): ledger {self.status} ({self.reason}), priority "
                f"{self.priority}, to sender {self.to_sender}, alerted {self.alerted}, urgent "
                f"notice {self.urgent_notice}; expected {'robot' if e.robot else 'person'}"
                f"{', critical' if e.critical else ''}")


def entries() -> list[Entry]:
    manifest = yaml.safe_load((WIDER / "manifest.yaml").read_text(encoding="utf-8"))
    out = []
    for item in manifest["messages"]:
        provenance = item.get("source") or {"modelled_on": item["modelled_on"]}
        out.append(Entry(item["file"], item["category"], item["expect"] == "ignored",
                         bool(item["critical"]), item.get("setup"), provenance))
    return out


def _rules_with(setup: dict[str, Any] | None, path: Path) -> Path:
    if setup is None:
        return REPO / "rules.yaml"
    rules = yaml.safe_load((REPO / "rules.yaml").read_text(encoding="utf-8"))
    rules["settings"]["mail"] = setup
    path.write_text(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def _cycle(workdir: Path, rules: Path) -> Path:
    settings = embedded_settings(workdir, SUPPORTBOT_RULES=str(rules))

    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0)) as worker:
            await worker.cycle()
    with quiet_logs():
        asyncio.run(go())
    return settings.state_path


def robots_written_to(workdir: Path) -> list[str]:
    """Every robot address (no-reply@, mailer-daemon@, ...) the outboxes of a run wrote to."""
    return sorted({a.addr_spec.lower() for outbox in workdir.glob("group*/outbox")
                   for mail in outbox_mail(outbox) for a in mail.message["To"].addresses
                   if is_robot_sender(a.addr_spec.lower())})


def run_wider(workdir: Path) -> list[Result]:
    """Every manifest entry through the worker; one Result each, in manifest order."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries():
        groups[yaml.safe_dump(entry.setup)].append(entry)
    results: dict[str, Result] = {}
    for n, group in enumerate(groups.values()):
        where = workdir / f"group{n}"
        where.mkdir(parents=True)
        refs: dict[str, Entry] = {}
        for i, entry in enumerate(group):
            raw = (WIDER / "files" / entry.file).read_bytes()
            key = deliver_bytes(where / "inbox", raw, T0 - timedelta(minutes=30, seconds=i))
            refs[f"maildir:{key}"] = entry
        state = _cycle(where, _rules_with(group[0].setup, where / "rules.yaml"))
        results.update(_read(where, state, refs))
    return [results[e.file] for e in entries()]


def _read(where: Path, state: Path, refs: dict[str, Entry]) -> dict[str, Result]:
    store = Store(state)
    try:
        rows = {r["ref"]: r for r in store.db.rows(
            "SELECT m.ref, m.status, m.reason, m.ticket_id, t.priority FROM messages m "
            "LEFT JOIN tickets t ON t.id = m.ticket_id")}
    finally:
        store.close()
    sent = outbox_mail(where / "outbox")
    out: dict[str, Result] = {}
    for ref, entry in refs.items():
        result = Result(entry)
        row = rows.get(ref)
        if row is not None:
            result.status, result.reason, result.priority = (row["status"], row["reason"],
                                                              row["priority"])
            raw = (WIDER / "files" / entry.file).read_bytes()
            sender = reply_recipient(parse_message(raw)) or ""
            ticket = str(row["ticket_id"]) if row["ticket_id"] is not None else None
            for mail in sent:
                to = {a.addr_spec.lower() for a in mail.message["To"].addresses}
                # a person's mail belongs to their ticket (fixtures share senders); a robot
                # has no ticket, so any mail to its address counts against it
                mine = mail.ticket == ticket if ticket is not None else sender in to
                if mine and sender in to and mail.kind in TO_REQUESTER:
                    result.to_sender.append(mail.kind)
                    body = mail.message.get_body(("plain",))
                    text = body.get_content() if body is not None else ""
                    result.urgent_notice |= mail.kind == "forwarded" and "urgent" in text.lower()
                if ticket is not None and mail.ticket == ticket and mail.kind == "alert":
                    result.alerted = True
        out[entry.file] = result
    return out


def figures(results: list[Result]) -> list[tuple[str, str]]:
    """Per category: robots ignored, people answered, false critical (and missed critical)."""
    by: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by[r.entry.category].append(r)
    rows = []
    for category, items in sorted(by.items()):
        robots = [r for r in items if r.entry.robot]
        people = [r for r in items if not r.entry.robot]
        parts = []
        if robots:
            ignored = sum(r.status == "ignored" and not r.to_sender and not r.alerted
                          for r in robots)
            parts.append(f"robots ignored {ignored}/{len(robots)}")
        if people:
            answered = sum(r.status == "ticket" and len(r.to_sender) == 1 for r in people)
            false = sum(r.alerted and not r.entry.critical for r in people)
            missed = sum(r.entry.critical and not r.alerted for r in people)
            parts.append(f"people answered {answered}/{len(people)}, false critical {false}, "
                         f"missed critical {missed}")
        rows.append((category, "; ".join(parts)))
    return rows
