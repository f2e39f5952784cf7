"""Hostile identifiers: Message-IDs and References, CLI ids, terminal output, the state file."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import embedded_settings, outbox_mail
from tests.reliability.maildir import deliver_bytes as deliver

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ASK = b"How do I export my contacts to a CSV file from the settings page?\r\n"


def raw_mail(headers: bytes, body: bytes = ASK) -> bytes:
    return (b"From: Ann Example <ann@customer.example>\r\nTo: support@example.com\r\n"
            b"Subject: Exporting contacts\r\n" + headers + b"\r\n" + body)


def run_cycle(settings: Settings) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0)) as worker:
            await worker.cycle()
    asyncio.run(go())


@pytest.mark.parametrize("headers", [
    "Message-ID: <caf\u00e9@customer.example>\r\nReferences: <\u00fcber@x.example>\r\n".encode(),
    b"Message-ID: <a\x00b\x1b[2Jc\x07@customer.example>\r\n",
    b"Message-ID: <ok@customer.example>\r\nReferences: "
    + b" ".join(b"<r%d@x.example>" % i for i in range(40_000)) + b"\r\n",
    b"Message-ID: <" + b"x" * 5000 + b"@customer.example>\r\n",
], ids=["non-ascii", "control-chars", "40000-references", "5000-char-id"])
def test_hostile_ids_never_cost_the_ticket_its_answer(tmp_path: Path, headers: bytes) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", raw_mail(headers), T0)
    run_cycle(settings)
    [sent] = outbox_mail(tmp_path / "outbox")
    assert sent.kind == "acknowledge" and sent.to == "ann@customer.example"
    threading = (sent.message.get("In-Reply-To") or "") + (sent.message.get("References") or "")
    assert threading.isascii() and threading.isprintable()
    assert len(sent.message.get("References") or "") < 20_000
    assert Store(settings.state).quarantined() == []


def test_cli_ids_are_validated_with_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SUPPORTBOT_STATE", str(tmp_path / "state.db"))
    Store(tmp_path / "state.db").close()
    for argv in (["log", "9" * 40], ["quarantine", "show", "9" * 40], ["log", "\u00b2"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        assert "not a number of 1 to 18 digits" in capsys.readouterr().err
    assert main(["log", "#123456789012345678"]) == 1  # well-formed, simply not there


def test_mail_content_reaches_the_terminal_escaped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = embedded_settings(tmp_path)
    for key, value in {"SUPPORTBOT_STATE": str(settings.state),
                       "SUPPORTBOT_MAILDIR": str(tmp_path / "inbox")}.items():
        monkeypatch.setenv(key, value)
    evil = raw_mail(b"Message-ID: <e@x.example>\r\n").replace(
        b"Subject: Exporting contacts", b"Subject: =?utf-8?q?hi=1B]0;owned=07=1B[2J?=")
    deliver(tmp_path / "inbox", evil, T0)
    deliver(tmp_path / "inbox", b"\x1b]0;owned\x07\x00 not mail\r\n", T0)
    run_cycle(settings)
    capsys.readouterr()
    assert main(["log", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out
    [held] = Store(settings.state).quarantined()
    assert main(["quarantine", "show", str(held.id)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out
    eml = tmp_path / "evil.eml"
    eml.write_bytes(evil)
    assert main(["explain", str(eml)]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_an_existing_state_file_is_made_owner_only_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
