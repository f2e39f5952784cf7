"""Every configuration error stops the bot with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings, secret_values
from bot.errors import ConfigError

IMAP = {"SUPPORTBOT_IMAP_HOST": "imap.example.com", "SUPPORTBOT_IMAP_USER": "u",
        "SUPPORTBOT_IMAP_PASSWORD": "p4ss"}


def test_embedded_default_needs_nothing(tmp_path: Path) -> None:
    s = load_settings({}, cwd=tmp_path)
    assert s.embedded_default
    assert s.state_path == tmp_path / "var/supportbot.db"
    assert s.maildir_path == tmp_path / "var/inbox"
    assert s.outbox_maildir_path == tmp_path / "var/outbox"
    assert s.rules_path == tmp_path / "rules.yaml"
    assert s.from_addr == "support@example.com" and s.from_name == "Support"
    assert s.backfill_hours == 24 and not s.dry_run


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SUPPORTBOT_DRY_RUN": "maybe"}, "SUPPORTBOT_DRY_RUN"),
        ({"SUPPORTBOT_POLL_SECONDS": "soon"}, "SUPPORTBOT_POLL_SECONDS"),
        ({"SUPPORTBOT_POLL_SECONDS": "-1"}, "SUPPORTBOT_POLL_SECONDS"),
        ({"SUPPORTBOT_BACKFILL_HOURS": "nan"}, "SUPPORTBOT_BACKFILL_HOURS"),
        ({"SUPPORTBOT_LOG_FORMAT": "xml"}, "SUPPORTBOT_LOG_FORMAT"),
        ({"SUPPORTBOT_FROM": "not an address"}, "SUPPORTBOT_FROM"),
        ({"SUPPORTBOT_FROM": "a@b.c\r\nBcc: x@y.z"}, "SUPPORTBOT_FROM"),
        ({**IMAP, "SUPPORTBOT_IMAP_PORT": "99999", "SUPPORTBOT_SMTP_HOST": "s"},
         "SUPPORTBOT_IMAP_PORT"),
        ({**IMAP, "SUPPORTBOT_IMAP_TLS": "maybe", "SUPPORTBOT_SMTP_HOST": "s"},
         "SUPPORTBOT_IMAP_TLS"),
        ({"SUPPORTBOT_IMAP_HOST": "h", "SUPPORTBOT_SMTP_HOST": "s"}, "SUPPORTBOT_IMAP_USER"),
        ({"SUPPORTBOT_IMAP_HOST": "h", "SUPPORTBOT_IMAP_USER": "u", "SUPPORTBOT_SMTP_HOST": "s"},
         "SUPPORTBOT_IMAP_PASSWORD"),
        (IMAP, "SUPPORTBOT_SMTP_HOST"),
        ({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_USER": "u"}, "SUPPORTBOT_SMTP_PASSWORD"),
        ({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_TLS": "tls1.0"}, "SUPPORTBOT_SMTP_TLS"),
        ({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_CONNECTIONS": "0"},
         "SUPPORTBOT_SMTP_CONNECTIONS"),
        ({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_CONNECTIONS": "many"},
         "SUPPORTBOT_SMTP_CONNECTIONS"),
        ({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_CONNECTIONS": "11"},
         "SUPPORTBOT_SMTP_CONNECTIONS"),
        ({"SUPPORTBOT_HELPSCOUT_APP_ID": "a"}, "SUPPORTBOT_HELPSCOUT_MAILBOX_ID"),
        ({"SUPPORTBOT_HELPSCOUT_APP_ID": "a", "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": "x1"},
         "SUPPORTBOT_HELPSCOUT_MAILBOX_ID"),
        ({"SUPPORTBOT_HELPSCOUT_APP_ID": "a", "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": "1"},
         "SUPPORTBOT_HELPSCOUT_APP_SECRET"),
        ({"SUPPORTBOT_HELPSCOUT_APP_ID": "a", "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": "1",
          "SUPPORTBOT_HELPSCOUT_APP_SECRET": "s", "SUPPORTBOT_HELPSCOUT_BASE_URL": "ftp://x"},
         "SUPPORTBOT_HELPSCOUT_BASE_URL"),
        ({"SUPPORTBOT_CA_FILE": "/nonexistent/ca.pem"}, "SUPPORTBOT_CA_FILE"),
        ({"SUPPORTBOT_ALERT_WEBHOOK_URL": "hooks.example.com"}, "SUPPORTBOT_ALERT_WEBHOOK_URL"),
        ({"SUPPORTBOT_METRICS_PORT": "0"}, "SUPPORTBOT_METRICS_PORT"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], names: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env, cwd=tmp_path)
    message = str(err.value)
    assert names in message
    assert "\n" not in message


def test_imap_without_smtp_is_allowed_with_explicit_outbox(tmp_path: Path) -> None:
    s = load_settings({**IMAP, "SUPPORTBOT_OUTBOX_MAILDIR": "out"}, cwd=tmp_path)
    assert s.outbox_maildir_path == tmp_path / "out"
    assert s.maildir_path is None and not s.embedded_default
    assert s.imap is not None and s.imap.port == 993 and s.imap.tls == "ssl"


def test_helpscout_only_needs_no_smtp(tmp_path: Path) -> None:
    s = load_settings({"SUPPORTBOT_HELPSCOUT_APP_ID": "a", "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": "7",
                       "SUPPORTBOT_HELPSCOUT_APP_SECRET": "sekrit"}, cwd=tmp_path)
    assert s.helpscout is not None and s.helpscout.mailbox_id == 7
    assert s.outbox_maildir_path is None and s.smtp is None and s.maildir_path is None


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    s = load_settings({**IMAP, "SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_USER": "u",
                       "SUPPORTBOT_SMTP_PASSWORD": "smtp-secret"}, cwd=tmp_path)
    assert "p4ss" not in repr(s) and "smtp-secret" not in repr(s)
    assert set(secret_values(s)) == {"p4ss", "smtp-secret"}


def test_cli_reports_config_error_in_one_line(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main

    monkeypatch.setenv("SUPPORTBOT_POLL_SECONDS", "often")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SUPPORTBOT_POLL_SECONDS" in err[0]


def test_smtp_sessions_per_batch_default_to_two_and_can_be_set(tmp_path: Path) -> None:
    s = load_settings({"SUPPORTBOT_SMTP_HOST": "s"}, cwd=tmp_path)
    assert s.smtp is not None and s.smtp.connections == 2
    s = load_settings({"SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_SMTP_CONNECTIONS": "1"},
                      cwd=tmp_path)
    assert s.smtp is not None and s.smtp.connections == 1
    # with a Sent folder the default is one session: one message in doubt after a crash
    sent = {**IMAP, "SUPPORTBOT_SMTP_HOST": "s", "SUPPORTBOT_IMAP_SENT_FOLDER": "Sent"}
    s = load_settings(sent, cwd=tmp_path)
    assert s.smtp is not None and s.smtp.connections == 1
    s = load_settings({**sent, "SUPPORTBOT_SMTP_CONNECTIONS": "3"}, cwd=tmp_path)
    assert s.smtp is not None and s.smtp.connections == 3


def test_the_state_is_a_path_or_a_postgres_url(tmp_path: Path) -> None:
    url = "postgresql://bot:s3cret-pw@db.example:5432/support"
    assert load_settings({}, cwd=tmp_path).state == tmp_path / "var/supportbot.db"
    assert load_settings({"SUPPORTBOT_STATE": "s.db"}, cwd=tmp_path).state == tmp_path / "s.db"
    s = load_settings({"SUPPORTBOT_STATE": url}, cwd=tmp_path)
    assert s.state == url and s.state_url == url
    assert "s3cret-pw" in secret_values(s) and "s3cret-pw" not in repr(s)
    # the platforms' convention, used only when SUPPORTBOT_STATE is unset
    assert load_settings({"DATABASE_URL": url}, cwd=tmp_path).state == url
    both = {"DATABASE_URL": url, "SUPPORTBOT_STATE": "local.db"}
    assert load_settings(both, cwd=tmp_path).state == tmp_path / "local.db"
    assert load_settings({"SUPPORTBOT_LEASE_SECONDS": "5"}, cwd=tmp_path).lease_seconds == 5


@pytest.mark.parametrize("env, names", [
    ({"SUPPORTBOT_STATE": "mysql://x@h/db"}, "SUPPORTBOT_STATE"),
    ({"DATABASE_URL": "mysql://x@h/db"}, "DATABASE_URL"),
    ({"SUPPORTBOT_LEASE_SECONDS": "0"}, "SUPPORTBOT_LEASE_SECONDS"),
])
def test_a_state_that_is_no_postgres_url_is_refused(env: dict[str, str], names: str,
                                                     tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(env, cwd=tmp_path)
