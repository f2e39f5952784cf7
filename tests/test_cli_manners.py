"""The command line's manners: quiet on a closed pipe, no state invented, a TLS mode that
does not fit named at once, numbers checked, `outbox retry` and `quarantine retry` doing what
they say, and `-v` everywhere. Real servers underneath (Dovecot, aiosmtpd)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import imap_connection
from bot.channels.smtp import SmtpChannel
from bot.cli import build_parser, main
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from bot.store.run_lock import sole_worker
from bot.vocab import ChannelName
from bot.worker import CycleReport
from tests.helpers import REPO, deliver, embedded_settings, make_mail
from tests.imap_helpers import imap_settings
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

NOW = datetime.now(UTC)
QUESTION = make_mail(subject="Exporting contacts", body="How do I export my contacts to a CSV "
                     "file? I looked in the settings page but could not find a button.")


def cycle(settings: Settings) -> CycleReport:
    async def go() -> CycleReport:
        async with open_worker(settings, clock=FakeClock(datetime.now(UTC))) as worker:
            channel = worker.channels.get(ChannelName.SMTP)
            if isinstance(channel, SmtpChannel):
                channel.backoff = 0.001  # its in-batch retries: milliseconds, not seconds
            return await worker.cycle()
    return asyncio.run(go())


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", QUESTION, NOW)
    cycle(settings)
    store = Store(settings.state_path)
    with store.transaction():
        for n in range(3000):  # far more than a pipe holds: the writer meets the closed end
            store.log(NOW, 1, "note", f"line {n} " + "x" * 60)
    store.close()
    env = {"PATH": "/usr/bin:/bin", "SUPPORTBOT_STATE": str(settings.state_path)}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "log", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"Ticket #1")
    proc.stdout.close()  # what `| head -1` does
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    assert stderr == "" and code == 141


@pytest.mark.parametrize("command", [["status"], ["log", "1"], ["report"], ["quarantine"],
                                     ["outbox"], ["status", "--json"]])
def test_read_only_commands_refuse_a_state_that_does_not_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    typo = tmp_path / "supportbto.db"
    monkeypatch.setenv("SUPPORTBOT_STATE", str(typo))
    assert main(command) == 2
    assert f"no state at {typo}: check SUPPORTBOT_STATE" in capsys.readouterr().err
    assert not typo.exists()


def test_starttls_against_the_imaps_port_names_the_fix(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_connection, "GREETING_SECONDS", 1.0)  # 8 s in production
    settings = imap_settings(tmp_path, mailbox, smtp_server, SUPPORTBOT_IMAP_TLS="starttls",
                             SUPPORTBOT_IMAP_PORT=str(mailbox.server.imaps_port))
    error = cycle(settings).source_errors["imap"]
    assert f"the server on {mailbox.server.imaps_port} speaks TLS at once: use " \
        "SUPPORTBOT_IMAP_TLS=ssl" in error
    assert "gave up after" not in error  # not retried: no retry fixes a configuration


def test_ssl_against_the_plain_port_names_the_fix(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer) -> None:
    settings = imap_settings(tmp_path, mailbox, smtp_server, SUPPORTBOT_IMAP_TLS="ssl",
                             SUPPORTBOT_TLS_INSECURE="1")
    error = cycle(settings).source_errors["imap"]
    assert "does not speak TLS at once: use SUPPORTBOT_IMAP_TLS=starttls" in error


@pytest.mark.parametrize("argv", [["report", "--days", "-3"], ["report", "--days", "x"],
                                  ["replay", "--rules", "r.yaml", "--days", "0"],
                                  ["quarantine", "retry", "-1"]])
def test_numeric_arguments_are_checked(argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert "supportbot" in capsys.readouterr().err


def test_every_command_takes_v() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    for name, sub in commands.choices.items():  # type: ignore[union-attr]
        assert "-v" in sub._option_string_actions, name


def test_outbox_retry_sends_now_what_waited_for_the_backoff(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    closed = SmtpServer().start()
    closed.stop()
    env = {"SUPPORTBOT_SMTP_HOST": closed.host, "SUPPORTBOT_SMTP_PORT": str(closed.port),
           "SUPPORTBOT_SMTP_TLS": "none"}
    settings = embedded_settings(tmp_path, **env)
    deliver(tmp_path / "inbox", QUESTION, NOW)
    assert cycle(settings).retry == 1  # waits 30 s, then longer
    for key, value in {**env, "SUPPORTBOT_STATE": str(settings.state_path),
                       "SUPPORTBOT_MAILDIR": str(tmp_path / "inbox"),
                       "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
                       "SUPPORTBOT_TEMPLATES": str(REPO / "templates")}.items():
        monkeypatch.setenv(key, value)

    with SmtpServer(port=closed.port) as server:  # the operator fixed SMTP
        with sole_worker(settings.state_path):  # a worker runs: it will do the sending
            assert main(["outbox", "retry"]) == 0
        assert "1 message(s) due now; the running worker sends them" in capsys.readouterr().out
        assert server.messages == []
        assert main(["outbox", "retry"]) == 0  # no worker runs: sent from here
        assert capsys.readouterr().out.startswith("1 sent, 0 still waiting")
        assert len(server.messages) == 1
    main(["outbox"])
    assert "0 message(s) waiting" in capsys.readouterr().out


def test_quarantine_retry_is_handled_in_the_next_cycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", QUESTION, NOW)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in this version")

    with monkeypatch.context() as patched:
        patched.setattr("bot.pipeline.decide", broken)
        report = cycle(settings)
    assert [o.status for o in report.outcomes] == ["quarantined"]
    monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state_path))
    main(["quarantine"])
    assert "1 message(s) in quarantine" in capsys.readouterr().out
    assert main(["quarantine", "retry", "1"]) == 0  # the fixed version is deployed

    report = cycle(settings)
    assert [o.status for o in report.outcomes] == ["ticket"] and report.sent == 1
    main(["status"])
    assert "Quarantine:" not in capsys.readouterr().out
