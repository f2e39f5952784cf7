"""The wider-world corpus (tests/fixtures/wider, issue 18) through the real worker: every
robot ignored and never written to or paged for, every person answered once, on-call
alerted (and the urgent notice sent) exactly for the people who report a deliverability
problem. Figures per category: `bench/bench_wider.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.mail.automated import detect_automated
from bot.mail.parse import parse_message
from tests.reliability.wider import WIDER, Entry, entries, robots_written_to, run_wider


def test_every_message_has_provenance_and_a_file() -> None:
    listed = entries()
    assert sorted(e.file for e in listed) == sorted(p.name for p in (WIDER / "files").iterdir())
    for e in listed:
        p = e.provenance
        assert ({"repository", "path", "commit", "licence"} <= p.keys()
                or p.get("modelled_on")), e.file
        if "commit" in p:
            assert len(p["commit"]) == 40 and (WIDER / f"LICENSE-{p['repository'].split('/')[1]}"
                                                ".txt").is_file(), e.file


def test_robots_ignored_people_answered_critical_only_for_deliverability(
        tmp_path: Path) -> None:
    results = run_wider(tmp_path)
    assert [r.problem() for r in results if not r.ok] == []
    assert robots_written_to(tmp_path) == []
    assert {r.entry.category for r in results} >= {
        "dmarc-aggregate", "tls-report", "abuse-complaint", "delayed-delivery",
        "challenge-response", "robot-sender", "auto-reply-subject", "repeated-header",
        "person-suppress-header", "person-own-words", "person-deliverability",
        "setup-google-group", "setup-web-form", "setup-relay"}


@pytest.mark.parametrize("entry", [e for e in entries() if e.setup], ids=lambda e: e.file)
def test_without_its_setting_a_set_up_message_looks_like_a_robot(entry: Entry) -> None:
    msg = parse_message((WIDER / "files" / entry.file).read_bytes())
    assert detect_automated(msg, own_addresses=frozenset({"support@example.com"}),
                            own_domain="example.com") is not None
