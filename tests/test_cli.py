"""The command line as users meet it: help, demo, signals, health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli import build_parser, main
from tests.helpers import REPO, deliver, make_mail

SUBCOMMANDS = {"run", "demo", "check", "explain", "test", "replay", "log", "status", "report",
               "health", "quarantine"}


def test_help_lists_every_subcommand_and_each_has_its_own_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in text
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert f"supportbot {name}" in capsys.readouterr().out


def test_parser_knows_every_subcommand() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    assert set(actions[0].choices) >= SUBCOMMANDS  # type: ignore[arg-type]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update({
        "SUPPORTBOT_STATE": str(tmp / "state.db"), "SUPPORTBOT_MAILDIR": str(tmp / "inbox"),
        "SUPPORTBOT_OUTBOX_MAILDIR": str(tmp / "outbox"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_POLL_SECONDS": "0.5", "SUPPORTBOT_LOG_FORMAT": "json", **extra})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_worker_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    from datetime import UTC, datetime

    deliver(tmp_path / "inbox", make_mail(), datetime.now(UTC))
    env = _env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = subprocess.run([sys.executable, "-m", "bot", "health"], env=env,
                                    cwd=tmp_path, capture_output=True, text=True)
            if health.returncode == 0:
                break
            time.sleep(0.2)
        assert health.returncode == 0, health.stdout
        proc.send_signal(sig)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert "worker stopped" in stderr
    assert list((tmp_path / "outbox" / "new").iterdir())


def test_health_fails_without_a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORTBOT_STATE", str(tmp_path / "none.db"))
    assert main(["health"]) == 1


def test_a_dependency_missing_from_the_venv_is_one_line_naming_the_fix() -> None:
    """A checkout pulled without `make`: the new package is not installed yet."""
    code = ("import sys; sys.modules['regex'] = None\n"
            "from bot.cli import main\nraise SystemExit(main(['check']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "'regex' is not installed" in done.stderr and "make install" in done.stderr
