"""Every file of ../shared/corpus through the real worker (embedded Maildir set-up).

Real bounces, auto-replies, feedback reports, broken MIME, odd charsets and human tickets,
plus the corpus's own non-mail files and bytes that are no email at all: nothing crashes,
no machine and no stranger is ever written to, every human ticket is answered once with
the first action its manifest expects, unreadable input is quarantined (and shown by
`supportbot status --json`), and the bot carries on afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.mail.parse import parse_message
from bot.rules.load import load_ruleset
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail
from tests.reliability.maildir import deliver_bytes

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
REQUESTER_KINDS = {"acknowledge", "ask_info", "forwarded", "answer"}
FIRST_KIND = {"acknowledge": "acknowledge", "ask_info": "ask_info", "forward": "forwarded",
              "answer": "answer"}
NOT_MAIL = [b"\x00\x01\x02 not an email at all", b"", b"\xff\xfe\x00\x00" * 64]


def cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


def test_the_whole_corpus_through_the_worker(tmp_path: Path, corpus: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for n, path in enumerate(files):
        deliver_bytes(inbox, path.read_bytes(), T0 - timedelta(minutes=30, seconds=n))
    for raw in NOT_MAIL:
        deliver_bytes(inbox, raw, T0 - timedelta(minutes=5))
    settings = embedded_settings(tmp_path)
    clock = FakeClock(T0)
    cycle(settings, clock)

    manifest = yaml.safe_load((corpus / "tickets" / "manifest.yaml").read_text())["tickets"]
    tickets = {}
    for entry in manifest:
        msg = parse_message((corpus / "tickets" / entry["file"]).read_bytes())
        tickets[msg.message_id] = (entry, msg.from_addr)
    team = load_ruleset(REPO / "rules.yaml", REPO / "templates").settings.team_addresses
    requesters = {sender for _, sender in tickets.values()}
    sent = outbox_mail(tmp_path / "outbox")
    answers: dict[str, list[str]] = defaultdict(list)
    for s in sent:
        to = {a.addr_spec.lower() for a in s.message["To"].addresses}
        assert to <= requesters | team, f"{s.kind} written to {to}"
        if s.kind in REQUESTER_KINDS:
            answers[str(s.message["In-Reply-To"])].append(s.kind)
    for message_id, (entry, _) in tickets.items():
        assert answers.get(message_id) == [FIRST_KIND[entry["action"]]], entry["file"]
    assert set(answers) == set(tickets)

    store = Store(settings.state_path)
    statuses = Counter(r["status"] for r in store.conn.execute("SELECT status FROM messages"))
    store.close()
    assert sum(statuses.values()) == len(files) + len(NOT_MAIL)  # every file in the ledger
    assert statuses["ticket"] == len(tickets)

    monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state_path))
    capsys.readouterr()  # the worker's own log lines so far
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["quarantined"]) == statuses["quarantined"] >= 1
    assert all(q["error"] for q in status["quarantined"])

    # and the bot carries on
    deliver(inbox, make_mail(message_id="<after@customer.example>",
                             subject="Question about exporting contacts",
                             body="How do I export my contacts to a CSV file?"), T0)
    clock.advance(60)
    cycle(settings, clock)
    later = [s for s in outbox_mail(tmp_path / "outbox")
             if s.message["In-Reply-To"] == "<after@customer.example>"]
    assert [s.kind for s in later] == ["acknowledge"]
