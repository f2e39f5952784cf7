"""Bad input through the worker: every file of ../shared/corpus plus bytes that are no mail.

Shared by tests/test_corpus_worker.py (which asserts) and bench/reliability.py (which
prints). The embedded Maildir set-up on a fake clock: one cycle over everything, then one
more ticket to show the bot carries on.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bot.clock import FakeClock
from bot.commands.status import collect
from bot.config import Settings
from bot.mail.parse import parse_message
from bot.rules.load import load_ruleset
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, embedded_settings, make_mail, outbox_mail
from tests.reliability.inprocess import quiet_logs
from tests.reliability.maildir import deliver_bytes

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
REQUESTER_KINDS = {"acknowledge", "ask_info", "forwarded", "answer"}
FIRST_KIND = {"acknowledge": "acknowledge", "ask_info": "ask_info", "forward": "forwarded",
              "answer": "answer"}
NOT_MAIL = [b"\x00\x01\x02 not an email at all", b"", b"\xff\xfe\x00\x00" * 64]
AFTER = "<after@customer.example>"


@dataclass
class CorpusReport:
    files: int = 0  # corpus files plus the non-mail inputs
    statuses: Counter[str] = field(default_factory=Counter)  # ledger rows by status
    tickets: int = 0  # human tickets in the manifest
    answered_as_expected: int = 0
    wrong_or_missing: list[str] = field(default_factory=list)
    answered_twice: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)  # mail to neither requester nor team
    quarantined_in_status: int = 0
    carried_on: bool = False
    raised: str | None = None

    def problems(self) -> list[str]:
        out = [f"worker raised {self.raised}"] if self.raised else []
        if sum(self.statuses.values()) != self.files:
            out.append(f"{self.files} files delivered, {sum(self.statuses.values())} in ledger")
        out += [f"wrong or missing answer: {x}" for x in self.wrong_or_missing]
        out += [f"answered twice: {x}" for x in self.answered_twice]
        out += [f"written to a stranger: {x}" for x in self.strangers]
        if self.quarantined_in_status != self.statuses["quarantined"]:
            out.append(f"status shows {self.quarantined_in_status} quarantined, the ledger "
                       f"{self.statuses['quarantined']}")
        if not self.carried_on:
            out.append("the next ticket was not answered")
        return out

    def rows(self) -> list[tuple[str, object]]:
        return [
            ("files delivered (corpus + not-mail)", self.files),
            ("ledger by status", dict(sorted(self.statuses.items()))),
            ("human tickets answered once, as expected", (f"{self.answered_as_expected} / "
                                                         f"{self.tickets}")),
            ("answered twice / wrong or missing",
             f"{len(self.answered_twice)} / {len(self.wrong_or_missing)}"),
            ("messages to a machine or stranger", len(self.strangers)),
            ("quarantined (status --json)", self.quarantined_in_status),
            ("worker raised", self.raised or "no"),
            ("next ticket answered afterwards", "yes" if self.carried_on else "NO"),
        ]


def _cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


def run_corpus(corpus: Path, workdir: Path) -> CorpusReport:
    report = CorpusReport()
    inbox = workdir / "inbox"
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for n, path in enumerate(files):
        deliver_bytes(inbox, path.read_bytes(), T0 - timedelta(minutes=30, seconds=n))
    for raw in NOT_MAIL:
        deliver_bytes(inbox, raw, T0 - timedelta(minutes=5))
    report.files = len(files) + len(NOT_MAIL)
    settings = embedded_settings(workdir)
    clock = FakeClock(T0)
    try:
        with quiet_logs():
            _cycle(settings, clock)
    except Exception as exc:  # noqa: BLE001 - whatever escapes the worker is the finding
        report.raised = f"{type(exc).__name__}: {exc}"
        return report

    manifest = yaml.safe_load((corpus / "tickets" / "manifest.yaml").read_text())["tickets"]
    expected: dict[str, tuple[str, str]] = {}
    for entry in manifest:
        msg = parse_message((corpus / "tickets" / entry["file"]).read_bytes())
        expected[msg.message_id or entry["file"]] = (entry["file"],
                                                     FIRST_KIND[entry["action"]])
        report.tickets += 1
    requesters = {parse_message((corpus / "tickets" / e["file"]).read_bytes()).from_addr
                  for e in manifest}
    team = load_ruleset(REPO / "rules.yaml", REPO / "templates").settings.team_addresses
    answers: dict[str, list[str]] = defaultdict(list)
    for sent in outbox_mail(workdir / "outbox"):
        to = {a.addr_spec.lower() for a in sent.message["To"].addresses}
        if not to <= requesters | team:
            report.strangers.append(f"{sent.kind} to {sorted(to)}")
        if sent.kind in REQUESTER_KINDS:
            answers[str(sent.message["In-Reply-To"])].append(sent.kind)
    for message_id, (name, kind) in expected.items():
        got = answers.get(message_id, [])
        if got == [kind]:
            report.answered_as_expected += 1
        elif len(got) > 1:
            report.answered_twice.append(f"{name}: {got}")
        else:
            report.wrong_or_missing.append(f"{name}: {got}, expected {kind}")
    report.strangers += [f"answer to unknown {m}" for m in answers if m not in expected]

    store = Store(settings.state_path)
    try:
        report.statuses = Counter(r["status"] for r in
                                  store.db.rows("SELECT status FROM messages"))
        report.quarantined_in_status = len(collect(store)["quarantined"])
    finally:
        store.close()

    deliver_bytes(inbox, make_mail(message_id=AFTER, subject="Question about exporting contacts",
                                   body="How do I export my contacts to a CSV file?"), T0)
    clock.advance(60)
    with quiet_logs():
        _cycle(settings, clock)
    later = [s.kind for s in outbox_mail(workdir / "outbox") if s.message["In-Reply-To"] == AFTER]
    report.carried_on = later == ["acknowledge"]
    return report
