"""`check` warns when the last day's mail suggests a set-up settings.mail does not cover."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from bot.cli import main
from bot.clock import FakeClock
from bot.mail.automated import NO_SETUP, MailSetup
from bot.mail.setups import Seen, suggestions
from bot.runtime import open_worker
from tests.helpers import REPO, embedded_settings
from tests.reliability.inprocess import quiet_logs
from tests.reliability.maildir import deliver_bytes

GROUP = REPO / "tests" / "fixtures" / "wider" / "files" / "written-setup-google-group.eml"


def test_one_list_id_explaining_most_of_the_day_is_named() -> None:
    day = [Seen("ignored", "List-Id: support.example.com")] * 4 + [Seen("ticket", None)] * 2
    [warning] = suggestions(day, NO_SETUP)
    assert warning.startswith("4 of the last day's 6 messages were ignored for List-Id "
                              "support.example.com")
    assert suggestions(day, MailSetup(list_ids=frozenset({"support.example.com"}))) == []
    assert suggestions(day[:4], NO_SETUP) == []  # too few to say anything


def test_web_forms_and_relays_are_named() -> None:
    form = [Seen("ignored", "sender noreply@forms.example.com (replies to ann@x.example)")] * 5
    assert "settings.mail.form_senders" in suggestions(form, NO_SETUP)[0]
    newsletter = [Seen("ignored", "sender noreply@shop.example")] * 5
    assert suggestions(newsletter, NO_SETUP) == []
    relay = [Seen("ignored", "Auto-Submitted: auto-forwarded")] * 5
    assert "relay_auto_forwarded" in suggestions(relay, NO_SETUP)[0]
    assert suggestions(relay, MailSetup(relay_auto_forwarded=True)) == []


def test_check_reads_the_last_days_mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    raw = GROUP.read_bytes()
    for n in range(6):
        deliver_bytes(tmp_path / "inbox", raw.replace(b"<CAF=nora.1@", f"<n{n}@".encode()),
                      now - timedelta(minutes=n + 1))
    settings = embedded_settings(tmp_path)

    async def cycle() -> None:
        async with open_worker(settings, clock=FakeClock(now)) as worker:
            await worker.cycle()
    with quiet_logs():
        asyncio.run(cycle())

    monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state_path))
    rules = tmp_path / "rules.yaml"
    shipped = (REPO / "rules.yaml").read_text()
    try:
        assert main(["check", "--rules", str(REPO / "rules.yaml")]) == 0
        out = capsys.readouterr().out
        assert ("warning: 6 of the last day's 6 messages were ignored for List-Id "
                "support.example.com") in out
        rules.write_text(shipped.replace("settings:\n", "settings:\n  mail:\n    list_ids: "
                                         "[support.example.com]\n", 1))
        assert main(["check", "--rules", str(rules)]) == 0
        assert "warning" not in capsys.readouterr().out
    finally:
        structlog.reset_defaults()
