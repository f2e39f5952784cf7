"""Every file of ../shared/corpus through the real worker (embedded Maildir set-up).

Real bounces, auto-replies, feedback reports, broken MIME, odd charsets and human tickets,
plus the corpus's own non-mail files and bytes that are no email at all: nothing crashes,
no machine and no stranger is ever written to, every human ticket is answered once with
the first action its manifest expects, unreadable input is quarantined (and shown by
`supportbot status --json`), and the bot carries on afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from bot.cli import main
from tests.reliability.badinput import run_corpus


def test_the_whole_corpus_through_the_worker(tmp_path: Path, corpus: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_corpus(corpus, tmp_path)
    assert report.problems() == []
    assert report.tickets == report.answered_as_expected == 30
    assert report.statuses["ticket"] == 30
    assert report.statuses["quarantined"] >= 3  # at least the bytes that are no mail

    monkeypatch.setenv("SUPPORTBOT_STATE", str(tmp_path / "state.db"))
    capsys.readouterr()
    try:
        assert main(["status", "--json"]) == 0
    finally:  # the command bound structlog to this test's captured stderr
        structlog.reset_defaults()
    status = json.loads(capsys.readouterr().out)
    assert len(status["quarantined"]) == report.statuses["quarantined"]
    assert all(q["error"] and q["ref"] for q in status["quarantined"])
