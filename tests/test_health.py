"""`health` and `status` tell the truth about each failure, driven on real servers.

Each failure an operator meets — a wrong IMAP password (Dovecot), SMTP refusing (a closed
port, then aiosmtpd on it), a broken rules edit, timers nobody fires — makes `health` exit 1
naming the cause once it has lasted the configured window, and `status`'s first line say it
at once; after the fix both return to ok. The worker runs on a fake clock set in the past,
so "failing for 400 s" takes no time; the commands judge at the real time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import metrics
from bot.channels.smtp import SmtpChannel
from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.vocab import ChannelName
from bot.worker import CycleReport
from tests.helpers import REPO, deliver, embedded_settings, make_mail
from tests.imap_helpers import imap_settings
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import SmtpServer

VAGUE = make_mail(subject="broken", body="it is broken again", message_id="<v1@customer.example>")
QUESTION = make_mail(subject="Exporting contacts", body="How do I export my contacts to a CSV "
                     "file? I looked in the settings page but could not find a button.")


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def cycle(settings: Settings, at: datetime) -> CycleReport:
    async def go() -> CycleReport:
        async with open_worker(settings, clock=FakeClock(at)) as worker:
            channel = worker.channels.get(ChannelName.SMTP)
            if isinstance(channel, SmtpChannel):
                channel.backoff = 0.001  # its in-batch retries: milliseconds, not seconds
            return await worker.cycle()
    return asyncio.run(go())


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.fixture
def judge(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """health and status on a state file: (health's exit code, its line, status's first line)."""
    def run(settings: Settings) -> tuple[int, str, str]:
        capsys.readouterr()  # what the worker printed before
        monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state_path))
        code, health = cli(capsys, "health")
        _, status = cli(capsys, "status")
        return code, health.strip(), status.splitlines()[0]
    return run


def test_a_wrong_imap_password_is_named_after_the_window_and_clears_when_fixed(
        tmp_path: Path, mailbox: Mailbox, smtp_server: SmtpServer, judge) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "new").mkdir()
    new = imap_settings(tmp_path / "new", mailbox, smtp_server,
                        SUPPORTBOT_IMAP_PASSWORD="not-the-password")
    assert cycle(new, ago(10)).source_errors
    code, health, status = judge(new)
    assert code == 0 and "but imap failing since" in health  # within the window: a warning
    assert status.startswith("degraded: imap failing since") and "authentication" in status

    wrong = imap_settings(tmp_path, mailbox, smtp_server,
                          SUPPORTBOT_IMAP_PASSWORD="not-the-password")
    assert cycle(wrong, ago(400)).source_errors
    assert cycle(wrong, ago(5)).source_errors  # still failing, 400 s on
    code, health, status = judge(wrong)
    assert code == 1
    assert health.startswith("unhealthy: imap failing since") and "authentication" in health
    assert status.startswith("degraded: imap failing since")

    mailbox.append("INBOX", QUESTION)
    right = imap_settings(tmp_path, mailbox, smtp_server)
    assert cycle(right, ago(0)).ok
    code, health, status = judge(right)
    assert (code, status) == (0, "ok") and health.startswith("healthy")


def test_smtp_refusing_is_named_and_clears_once_mail_goes_out(
        tmp_path: Path, judge, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    closed = SmtpServer().start()
    closed.stop()  # the port now refuses connections
    settings = embedded_settings(tmp_path, SUPPORTBOT_SMTP_HOST=closed.host,
                                 SUPPORTBOT_SMTP_PORT=str(closed.port), SUPPORTBOT_SMTP_TLS="none")
    deliver(tmp_path / "inbox", QUESTION, ago(500))
    report = cycle(settings, ago(400))
    assert report.retry == 1 and not report.ok
    code, health, status = judge(settings)
    assert code == 1 and health.startswith("unhealthy: smtp failing since")
    assert "(connection refused)" in health
    assert status.startswith("degraded: smtp failing since") and "connection refused" in status
    _, text = cli(capsys, "status")
    assert "acknowledge to ann@customer.example not sent yet" in text  # the ticket's reply
    assert sample("supportbot_channel_failing", channel="smtp") == 1

    with SmtpServer(port=closed.port) as server:  # the operator starts the server again
        assert cycle(settings, ago(0)).ok
        assert len(server.messages) == 1
    code, health, status = judge(settings)
    assert (code, status) == (0, "ok") and health.startswith("healthy")
    _, text = cli(capsys, "status")
    assert "not sent yet" not in text and "smtp: last success" in text
    assert sample("supportbot_channel_failing", channel="smtp") == 0
    stamp = sample("supportbot_channel_last_success_timestamp_seconds", channel="smtp")
    assert stamp is not None and abs(stamp - ago(0).timestamp()) < 60


def test_a_rejected_rules_reload_is_named_at_once_with_file_and_line(
        tmp_path: Path, judge, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    shutil.copy(REPO / "rules.yaml", rules)
    settings = embedded_settings(tmp_path, SUPPORTBOT_RULES=str(rules))
    assert cycle(settings, ago(0)).ok
    assert judge(settings)[0] == 0

    good = rules.read_text()

    async def edits() -> list[tuple[int, str, str]]:  # one worker, running while ops edit
        seen = []
        async with open_worker(settings, clock=FakeClock(ago(0))) as worker:
            rules.write_text(good + "\nthis is: [not valid\n")
            await worker.cycle()
            seen.append(judge(settings))
            rules.write_text(good + "\n# fixed\n")
            await worker.cycle()
            seen.append(judge(settings))
        return seen

    broken, fixed = asyncio.run(edits())
    code, health, status = broken
    assert code == 1 and health.startswith("unhealthy: rules reload rejected")
    assert f"{rules}:" in health and "a restart would fail" in health
    assert status.startswith("degraded: rules reload rejected")
    assert fixed == (0, fixed[1], "ok") and fixed[1].startswith("healthy")


def test_overdue_timers_are_named_and_clear_when_a_worker_fires_them(
        tmp_path: Path, judge, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", VAGUE, ago(3 * 86400))
    assert cycle(settings, ago(3 * 86400 - 60)).ok  # asks for details; check-in due a day later
    code, health, status = judge(settings)  # no worker ran since: the check-in is two days late
    assert code == 1 and health.startswith("unhealthy: 1 timer(s) overdue since")
    assert "check_in for ticket #1" in health
    assert status.startswith("degraded: 1 timer(s) overdue")

    assert cycle(settings, ago(0)).ok
    code, health, status = judge(settings)
    assert (code, status) == (0, "ok")


def test_health_json_gives_every_part(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", QUESTION, ago(60))
    assert cycle(settings, ago(0)).ok
    monkeypatch.setenv("SUPPORTBOT_STATE", str(settings.state_path))
    code, out = cli(capsys, "health", "--json")
    data = json.loads(out)
    assert code == 0 and data["healthy"] is True and data["cause"] is None
    parts = {(p["part"], p["name"]): p for p in data["parts"]}
    assert parts[("source", "maildir")]["ok"] and parts[("channel", "maildir")]["last_success"]
    assert {("rules", "rules"), ("timers", "timers"), ("worker", "worker")} <= set(parts)


def test_run_once_exits_1_and_keeps_the_old_heartbeat_when_nothing_could_be_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = SmtpServer().start()
    closed.stop()
    env = {"SUPPORTBOT_STATE": str(tmp_path / "state.db"),
           "SUPPORTBOT_MAILDIR": str(tmp_path / "inbox"),
           "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
           "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
           "SUPPORTBOT_SMTP_HOST": closed.host, "SUPPORTBOT_SMTP_PORT": str(closed.port),
           "SUPPORTBOT_SMTP_TLS": "none"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    deliver(tmp_path / "inbox", QUESTION, ago(60))
    monkeypatch.setattr(SmtpChannel, "__init__", _fast_smtp(SmtpChannel.__init__))
    assert main(["run", "--once"]) == 1
    from bot.store import Store
    store = Store(tmp_path / "state.db")
    try:
        assert store.get_meta("heartbeat") is None
    finally:
        store.close()


def _fast_smtp(init):  # type: ignore[no-untyped-def]
    def fast(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        self.backoff = 0.001
    return fast


def test_a_part_no_longer_configured_is_not_judged(tmp_path: Path) -> None:
    from bot import health
    from bot.store import Store
    from bot.vocab import HealthPart

    store = Store(tmp_path / "state.db")
    try:
        health.failed(store, HealthPart.SOURCE, "maildir", ago(900), "first try, since replaced")
        health.failed(store, HealthPart.SOURCE, "imap", ago(900), "login refused")
        health.configured(store, ["imap"], ["smtp"])  # what the worker now runs with
        verdict = health.assess(store, ago(0), failing_seconds=300, heartbeat_max_age=300)
    finally:
        store.close()
    names = [(f.part, f.name) for f in verdict.findings]
    assert ("source", "imap") in names and ("source", "maildir") not in names
    cause = verdict.first_cause(unhealthy_only=True)
    assert cause is not None and cause.name == "imap"


def test_help_scout_refusing_the_app_credentials_is_named(
        tmp_path: Path, judge) -> None:  # type: ignore[no-untyped-def]
    from bot.config import load_settings
    from bot.demo.fake_helpscout import FakeHelpScout

    fake = FakeHelpScout(clock=FakeClock(ago(0)))
    fake.add_conversation("Export", "ann@customer.example", "How do I export my contacts?")
    with fake.serve() as url:
        def settings(secret: str) -> Settings:
            return load_settings({
                "SUPPORTBOT_STATE": str(tmp_path / "state.db"),
                "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
                "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
                "SUPPORTBOT_HELPSCOUT_APP_ID": fake.app_id,
                "SUPPORTBOT_HELPSCOUT_APP_SECRET": secret,
                "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": str(fake.mailbox_id),
                "SUPPORTBOT_HELPSCOUT_BASE_URL": url}, cwd=tmp_path)

        wrong = settings("not-the-secret")
        assert cycle(wrong, ago(400)).source_errors
        assert cycle(wrong, ago(5)).source_errors
        code, health, status = judge(wrong)
        assert code == 1 and health.startswith("unhealthy: helpscout failing since")
        assert "authentication failed" in health and status.startswith("degraded: helpscout")

        right = settings(fake.app_secret)
        assert cycle(right, ago(0)).ok
        code, health, status = judge(right)
        assert (code, status) == (0, "ok")
