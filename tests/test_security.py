"""Security suite: what hostile input, hostile templates and broken networks cannot do.

- Header injection: CR/LF (also as RFC 2047 encoded words, NEL and U+2028) in an inbound
  subject or display name never adds a header or a recipient to what the SMTP server gets.
- Template sandbox: escapes written into a template are refused by `supportbot check`,
  and neither checking nor the worker ever runs them.
- Secrets: distinctive passwords and app secrets never reach logs, `status --json`,
  or error messages, while connections fail in every way we can provoke.
- TLS verification is on by default for the worker's IMAPS and SMTPS connections.
- The SQLite state file is owner-only, whatever the umask.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from bot.cli import main
from bot.clock import FakeClock
from bot.demo.fake_helpscout import FakeHelpScout
from bot.errors import RulesError
from bot.runtime import open_worker
from bot.store import Store
from bot.templates import Templates, sample_context
from tests.helpers import REPO, make_mail
from tests.reliability import process
from tests.reliability.maildir import deliver_bytes
from tests.servers.dovecot import DovecotServer, free_port
from tests.servers.smtp import Received, SmtpServer, TlsCert, make_self_signed_cert

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # for workers on a FakeClock


def just_now() -> datetime:
    """An arrival time for workers on the real clock: a fixed date would age past
    SUPPORTBOT_BACKFILL_HOURS and turn the mail into backfill that is never answered."""
    return datetime.now(UTC) - timedelta(minutes=5)
OWN_HEADERS = {"from", "to", "subject", "date", "message-id", "in-reply-to", "references",
               "auto-submitted", "x-auto-response-suppress", "x-supportbot-kind",
               "x-supportbot-ticket", "mime-version", "content-type", "reply-to",
               "content-transfer-encoding"}


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Commands configure structlog for the streams of the moment; leave no trace."""
    yield
    structlog.reset_defaults()


def run_once(settings_env: dict[str, str], cwd: Path, *args: str,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=settings_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


# -- header injection ---------------------------------------------------------------------
def header_names(raw: bytes) -> list[str]:
    """Names of the top-level header fields, as a receiving server parses them."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    return [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\n")
            if line and line[:1] not in (b" ", b"\t")]


SUBJECT_INJECTIONS = {
    "subject-encoded-crlf": (
        b"From: Ann Example <ann@customer.example>\r\n"
        b"Subject: =?utf-8?q?Question_about_exporting_contacts=0D=0ABcc:_victim@evil.example"
        b"=0D=0AX-Evil:_1?=\r\n"),
    "subject-encoded-lf-nel-ls": (
        b"From: Ann Example <ann@customer.example>\r\n"
        b"Subject: =?utf-8?q?Question=0ABcc:_victim@evil.example=C2=85To:_v2@evil.example"
        b"=E2=80=A8Cc:_v3@evil.example?=\r\n"),
    "name-with-address-inside-quotes": (
        b"From: \"Ann, Bcc: <victim@evil.example>\" <ann@customer.example>\r\n"
        b"Subject: Question about exporting contacts\r\n"),
    "forward-subject-encoded-crlf": (
        b"From: Ann Example <ann@customer.example>\r\n"
        b"Subject: =?utf-8?q?Charged_twice_this_month=0D=0ABcc:_victim@evil.example?=\r\n"),
}
NAME_INJECTIONS = {
    "name-encoded-address": (
        b"From: =?utf-8?q?victim@evil.example?= <ann@customer.example>\r\n"
        b"Subject: Question about exporting contacts\r\n"),
    "name-encoded-crlf": (
        b"From: =?utf-8?q?Ann=0D=0ABcc:_victim@evil.example=0D=0A?= <ann@customer.example>\r\n"
        b"Subject: Question about exporting contacts\r\n"),
    "forward-name-encoded-crlf": (
        b"From: =?utf-8?b?QW5uDQpUbzogdmljdGltQGV2aWwuZXhhbXBsZQ==?= <ann@customer.example>\r\n"
        b"Subject: Charged twice this month\r\n"),
}
INJECTIONS = {**SUBJECT_INJECTIONS, **NAME_INJECTIONS}
CASES = list(INJECTIONS)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_no_inbound_header_reaches_the_smtp_server_as_a_header_or_recipient(
        tmp_path: Path, case: str) -> None:
    body = (b"I was charged twice for my subscription, please refund one of the charges.\r\n"
            if case.startswith("forward") else b"How do I export my contacts to a CSV file?\r\n")
    raw = (INJECTIONS[case] + b"To: Acme Support <support@example.com>\r\n"
           b"Message-ID: <inject@customer.example>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body)
    deliver_bytes(tmp_path / "inbox", raw, just_now())
    with SmtpServer() as smtp:
        env = process.worker_env(
            tmp_path, SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"), SUPPORTBOT_SMTP_HOST=smtp.host,
            SUPPORTBOT_SMTP_PORT=str(smtp.port), SUPPORTBOT_SMTP_TLS="none")
        done = run_once(env, tmp_path, "run", "--once")
        assert done.returncode == 0, done.stderr[-2000:]
        received: list[Received] = list(smtp.messages)
    assert received, done.stderr[-2000:]
    team = {"billing@example.com", "oncall@example.com"}
    for r in received:
        kind = str(r.message["X-Supportbot-Kind"])
        expected = ["ann@customer.example"] if kind in {"acknowledge", "forwarded"} else None
        if expected is not None:
            assert r.rcpt_tos == expected
            assert [a.addr_spec for a in r.message["To"].addresses] == expected
        else:
            assert set(r.rcpt_tos) <= team, (kind, r.rcpt_tos)
        names = header_names(r.raw)
        assert set(names) <= OWN_HEADERS, (kind, names)
        assert len(names) == len(set(names)), (kind, names)
        head = r.raw.split(b"\r\n\r\n", 1)[0].lower()
        assert b"evil" not in b"".join(line for line in head.split(b"\r\n")
                                      if not line.startswith(b"subject:")
                                      and not line.startswith(b" ")), kind
        for name in ("To", "Cc", "Bcc"):
            assert "evil" not in str(r.message.get(name, "")).lower()
        assert "\n" not in str(r.message["Subject"]) and "\r" not in str(r.message["Subject"])
    kinds = sorted(str(r.message["X-Supportbot-Kind"]) for r in received)
    assert kinds == (["forward", "forwarded"] if case.startswith("forward") else ["acknowledge"])


# -- template sandbox ---------------------------------------------------------------------
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ joiner.__init__.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ lipsum.__globals__['os'].system('touch {marker}') }}",
    "{{ namespace.__init__.__globals__ }}",
    ("{{ self._TemplateReference__context.cycler.__init__.__globals__.os"
    ".system('touch {marker}') }}"),
    ("{% for c in [].__class__.__base__.__subclasses__() %}{{ c('touch {marker}', shell=True) }}"
    "{% endfor %}"),
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ name.__class__.__init__.__globals__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(name) }}",
    "{{ config.__class__.__init__.__globals__['os'].system('touch {marker}') }}",
    ("{{ request.application.__globals__.__builtins__.__import__('os')"
    ".system('touch {marker}') }}"),
]


def hostile_templates(tmp_path: Path, escape: str) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    marker = tmp_path / "pwned"
    with (templates / "acknowledge.txt").open("a") as f:
        f.write("\n" + escape.replace("{marker}", str(marker)) + "\n")
    return templates, marker


@pytest.mark.parametrize("escape", ESCAPES)
def test_template_escapes_are_refused_by_check_and_never_run(
        tmp_path: Path, escape: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    templates, marker = hostile_templates(tmp_path, escape)
    monkeypatch.setenv("SUPPORTBOT_RULES", str(REPO / "rules.yaml"))
    monkeypatch.setenv("SUPPORTBOT_TEMPLATES", str(templates))
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert f"{templates / 'acknowledge.txt'}:" in out
    with pytest.raises(RulesError):
        Templates(templates).render("acknowledge", sample_context())
    assert not marker.exists()


def test_the_worker_refuses_to_start_with_a_hostile_template(tmp_path: Path) -> None:
    escape = "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}"
    templates, marker = hostile_templates(tmp_path, escape)
    deliver_bytes(tmp_path / "inbox", make_mail(subject="Question about exporting contacts"),
                  just_now())
    env = process.worker_env(tmp_path, SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"),
                             SUPPORTBOT_OUTBOX_MAILDIR=str(tmp_path / "outbox"),
                             SUPPORTBOT_TEMPLATES=str(templates))
    done = run_once(env, tmp_path, "run", "--once")
    assert done.returncode != 0
    assert "acknowledge.txt" in done.stderr + done.stdout
    assert not marker.exists()
    assert not list((tmp_path / "outbox").glob("*/*"))


# -- secrets ------------------------------------------------------------------------------
IMAP_SECRET = "Imap-Pw-7f3kQz9"
SMTP_SECRET = "Smtp-Pw-Xq82vLm"
HS_SECRET = "Hs-Secret-Rt5wYp1"
WEBHOOK_TOKEN = "Hook-Token-Gq47Ns"
SECRETS = (IMAP_SECRET, SMTP_SECRET, HS_SECRET, WEBHOOK_TOKEN)


def assert_no_secret(text: str) -> None:
    forms = [s for secret in SECRETS for s in (
        secret, base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0bot\0{secret}".encode()).decode())]
    leaked = [s for s in forms if s in text]
    assert not leaked, f"secret(s) {leaked} in output"


@pytest.mark.slow
def test_secrets_never_appear_while_every_connection_fails(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    user = dovecot.add_user()  # its real password is not ours: IMAP login is refused
    fake = FakeHelpScout(clock=FakeClock(T0))  # nor is our app secret
    with SmtpServer(auth=("bot", "the-right-one")) as smtp, fake.serve() as hs_url:
        env = process.worker_env(
            tmp_path, SUPPORTBOT_LOG_LEVEL="debug",
            SUPPORTBOT_IMAP_HOST=dovecot.host, SUPPORTBOT_IMAP_PORT=str(dovecot.imap_port),
            SUPPORTBOT_IMAP_USER=user.name, SUPPORTBOT_IMAP_PASSWORD=IMAP_SECRET,
            SUPPORTBOT_IMAP_TLS="none",
            SUPPORTBOT_SMTP_HOST=smtp.host, SUPPORTBOT_SMTP_PORT=str(smtp.port),
            SUPPORTBOT_SMTP_TLS="none", SUPPORTBOT_SMTP_USER="bot",
            SUPPORTBOT_SMTP_PASSWORD=SMTP_SECRET,
            SUPPORTBOT_HELPSCOUT_APP_ID=fake.app_id, SUPPORTBOT_HELPSCOUT_APP_SECRET=HS_SECRET,
            SUPPORTBOT_HELPSCOUT_MAILBOX_ID=str(fake.mailbox_id),
            SUPPORTBOT_HELPSCOUT_BASE_URL=hs_url,
            SUPPORTBOT_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hook/{WEBHOOK_TOKEN}")
        failed = run_once(env, tmp_path, "run", "--once")
        status = run_once(env, tmp_path, "status", "--json")
        text_status = run_once(env, tmp_path, "status")
        assert smtp.auth_failures == 0  # nothing to send: the sources could not be read
    assert failed.returncode == 1
    assert "imap" in failed.stderr and "helpscout" in failed.stderr
    assert "refused" in failed.stderr.lower() or "401" in failed.stderr
    assert status.returncode == 0 and json.loads(status.stdout)
    for output in (failed, status, text_status):
        assert_no_secret(output.stdout + output.stderr)


@pytest.mark.slow
def test_secrets_never_appear_when_smtp_refuses_them(tmp_path: Path) -> None:
    deliver_bytes(tmp_path / "inbox", make_mail(subject="Question about exporting contacts"),
                  datetime.now(UTC))
    with SmtpServer(auth=("bot", "the-right-one")) as smtp:
        env = process.worker_env(
            tmp_path, SUPPORTBOT_LOG_LEVEL="debug", SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"),
            SUPPORTBOT_SMTP_HOST=smtp.host, SUPPORTBOT_SMTP_PORT=str(smtp.port),
            SUPPORTBOT_SMTP_TLS="none", SUPPORTBOT_SMTP_USER="bot",
            SUPPORTBOT_SMTP_PASSWORD=SMTP_SECRET)
        sent = run_once(env, tmp_path, "run", "--once")
        closed = dict(env, SUPPORTBOT_SMTP_PORT=str(free_port()))
        unreachable = run_once(closed, tmp_path, "run", "--once")
        status = run_once(env, tmp_path, "status", "--json")
        assert smtp.auth_failures >= 1 and smtp.messages == []
    assert sent.returncode == 1, sent.stderr[-2000:]  # recorded, and run --once says so
    assert "authentication" in sent.stderr.lower()
    for output in (sent, unreachable, status):
        assert_no_secret(output.stdout + output.stderr)


def test_a_bad_secret_value_is_not_echoed_in_the_configuration_error(tmp_path: Path) -> None:
    env = process.worker_env(tmp_path, SUPPORTBOT_ALERT_WEBHOOK_URL=f"hooks/{WEBHOOK_TOKEN}")
    done = run_once(env, tmp_path, "run", "--once")
    assert done.returncode == 2
    assert "SUPPORTBOT_ALERT_WEBHOOK_URL" in done.stderr
    assert_no_secret(done.stdout + done.stderr)


# -- TLS ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_worker_refuses_a_self_signed_imaps_server_unless_told(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    user = dovecot.add_user()
    with SmtpServer() as smtp:
        env = process.imap_smtp_env(
            tmp_path, imap_host=dovecot.host, imap_port=dovecot.imaps_port, user=user.name,
            password=user.password, smtp_host=smtp.host, smtp_port=smtp.port,
            SUPPORTBOT_IMAP_TLS="ssl")
        refused = run_once(env, tmp_path, "run", "--once")
        with_ca = run_once(dict(env, SUPPORTBOT_CA_FILE=str(dovecot.cert_file)), tmp_path,
                           "run", "--once")
        insecure = run_once(dict(env, SUPPORTBOT_TLS_INSECURE="1"), tmp_path, "run", "--once")
    assert refused.returncode == 1
    assert "not trusted" in refused.stderr
    assert with_ca.returncode == 0, with_ca.stderr[-2000:]
    assert insecure.returncode == 0, insecure.stderr[-2000:]
    assert "verification is OFF" in insecure.stderr


@pytest.mark.slow
def test_the_worker_refuses_a_self_signed_smtps_server_unless_told(tmp_path: Path) -> None:
    cert: TlsCert = make_self_signed_cert(tmp_path / "tls")
    deliver_bytes(tmp_path / "inbox", make_mail(subject="Question about exporting contacts"),
                  datetime.now(UTC))
    with SmtpServer(tls="ssl", cert=cert) as smtp:
        env = process.worker_env(
            tmp_path, SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"), SUPPORTBOT_SMTP_HOST=smtp.host,
            SUPPORTBOT_SMTP_PORT=str(smtp.port), SUPPORTBOT_SMTP_TLS="ssl")
        refused = run_once(env, tmp_path, "run", "--once")
        assert smtp.messages == []
        store = Store(tmp_path / "state.db")
        row = store.outbox_row(1)
        store.db.run("UPDATE outbox SET next_attempt_at = created_at")  # due again now
        store.close()
        with_ca = run_once(dict(env, SUPPORTBOT_CA_FILE=str(cert.cert)), tmp_path,
                           "run", "--once")
        assert len(smtp.messages) == 1 and smtp.messages[0].tls
    assert refused.returncode == 1 and "not trusted" in refused.stderr  # nothing could be sent
    assert row is not None and row.status == "pending" and "not trusted" in (row.last_error or "")
    assert with_ca.returncode == 0, with_ca.stderr[-2000:]


# -- the state file -----------------------------------------------------------------------
def owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_the_state_file_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    deliver_bytes(tmp_path / "inbox", make_mail(), just_now())
    env = process.worker_env(tmp_path, SUPPORTBOT_MAILDIR=str(tmp_path / "inbox"),
                             SUPPORTBOT_OUTBOX_MAILDIR=str(tmp_path / "outbox"))
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--once"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, umask=0,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert owner_only(tmp_path / "state.db")

    old = os.umask(0)
    try:  # while a worker has it open, the WAL and shared-memory files exist too
        path = tmp_path / "second.db"
        store = Store(path)

        async def go() -> None:
            from tests.helpers import embedded_settings

            settings = embedded_settings(tmp_path, SUPPORTBOT_STATE=str(path))
            async with open_worker(settings, clock=FakeClock(T0)) as worker:
                await worker.cycle()
                for suffix in ("", "-wal", "-shm"):
                    assert owner_only(Path(f"{path}{suffix}")), suffix
        asyncio.run(go())
        store.close()
    finally:
        os.umask(old)
