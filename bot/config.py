"""Settings from `SUPPORTBOT_*` environment variables (12-factor), validated at start-up.

A bad value stops the bot with one line naming the variable: `ConfigError(str)`.
The variable names are a public contract (deployments and acceptance tests use them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Literal, TypeVar, overload
from urllib.parse import urlsplit

from bot.errors import ConfigError

TlsMode = Literal["ssl", "starttls", "none"]
LogFormat = Literal["json", "console", "auto"]
PREFIX = "SUPPORTBOT_"
SECRET_VARS = frozenset(
    {
        "SUPPORTBOT_IMAP_PASSWORD",
        "SUPPORTBOT_SMTP_PASSWORD",
        "SUPPORTBOT_HELPSCOUT_APP_SECRET",
        "SUPPORTBOT_HELPSCOUT_WEBHOOK_SECRET",
        "SUPPORTBOT_ALERT_WEBHOOK_URL",
    }
)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    tls: TlsMode = "ssl"
    sent_folder: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    tls: TlsMode = "starttls"
    connections: int = 2  # sessions one batch may use at once


@dataclass(frozen=True)
class HelpScoutSettings:
    app_id: str
    app_secret: str = field(repr=False)
    mailbox_id: int
    base_url: str = "https://api.helpscout.net"
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_port: int | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the worker needs to start. Paths are absolute (resolved against cwd)."""

    state_path: Path
    rules_path: Path
    templates_path: Path
    from_addr: str
    from_name: str
    dry_run: bool = False
    log_format: LogFormat = "auto"
    log_level: str = "info"
    poll_seconds: float = 30.0
    maildir_path: Path | None = None
    outbox_maildir_path: Path | None = None
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    helpscout: HelpScoutSettings | None = None
    ca_file: Path | None = None
    tls_insecure: bool = False
    backfill_hours: float = 24.0
    retention_days: float = 90.0  # raw mail older than this is pruned; 0 keeps it for ever
    alert_webhook_url: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    health_max_age_seconds: float = 300.0
    # a postgresql:// URL (SUPPORTBOT_STATE, else DATABASE_URL); None: the SQLite state_path
    state_url: str | None = field(default=None, repr=False)
    lease_seconds: float = 30.0

    @property
    def state(self) -> Path | str:
        """Where the store lives: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.state_url or self.state_path
    health_failing_seconds: float = 300.0  # a part failing this long makes `health` exit 1

    @property
    def from_header(self) -> str:
        return f"{self.from_name} <{self.from_addr}>" if self.from_name else self.from_addr

    @property
    def from_domain(self) -> str:
        return self.from_addr.rpartition("@")[2] or "localhost"

    @property
    def embedded_default(self) -> bool:
        """True when no real source is configured: the local Maildir demo setup."""
        return self.imap is None and self.helpscout is None

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_Choice = TypeVar("_Choice", bound=str)


class _Env:
    """Reads typed values and names the variable in every error."""

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def raw(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    @overload
    def text(self, name: str, default: str) -> str: ...
    @overload
    def text(self, name: str, default: None = None) -> str | None: ...
    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    @overload
    def path(self, name: str, default: str) -> Path: ...
    @overload
    def path(self, name: str, default: None) -> Path | None: ...
    def path(self, name: str, default: str | None) -> Path | None:
        value = self.text(name, default)
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.cwd / p)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name}={value!r} is not a boolean: use 0 or 1")

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}={value!r} is not a number") from None
        if number != number or number < minimum or number == float("inf"):
            raise ConfigError(f"{PREFIX}{name}={value!r} must be a number >= {minimum:g}")
        return number

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not value.isdigit() or not minimum <= int(value) <= maximum:
            raise ConfigError(f"{PREFIX}{name}={value!r} must be a whole number from {minimum} "
                              f"to {maximum}")
        return int(value)

    def port(self, name: str, default: int | None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ConfigError(f"{PREFIX}{name}={value!r} is not a TCP port (1-65535)")
        return int(value)

    def choice(self, name: str, default: _Choice, choices: tuple[_Choice, ...]) -> _Choice:
        value = (self.text(name, default) or default).lower()
        if value not in choices:
            raise ConfigError(f"{PREFIX}{name}={value!r} must be one of: {', '.join(choices)}")
        return choices[choices.index(value)]

    def required(self, name: str, because: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{PREFIX}{name} is required when {because}")
        return value


def _tls_port(tls: str, *, ssl_port: int, starttls_port: int, plain_port: int) -> int:
    return {"ssl": ssl_port, "starttls": starttls_port}.get(tls, plain_port)


def load_settings(
    env: Mapping[str, str] | None = None, *, cwd: Path | None = None, check_runtime: bool = True
) -> Settings:
    """Build and validate `Settings`; raise `ConfigError` with one clear line.

    ``check_runtime=False`` skips the cross-checks that only matter to a running worker
    (e.g. IMAP without anywhere to send), so `check`/`explain` work on any machine.
    """
    e = _Env(os.environ if env is None else env, cwd or Path.cwd())

    from_raw = e.text("FROM", "Support <support@example.com>") or ""
    from_name, from_addr = parseaddr(from_raw)
    if "@" not in from_addr or any(c in from_raw for c in "\r\n"):
        raise ConfigError(
            f"{PREFIX}FROM={from_raw!r} is not an email address"
            " (e.g. 'Support <support@example.com>')")

    imap: ImapSettings | None = None
    if e.raw("IMAP_HOST"):
        tls: TlsMode = e.choice("IMAP_TLS", "ssl", ("ssl", "starttls", "none"))
        default_port = _tls_port(tls, ssl_port=993, starttls_port=143, plain_port=143)
        imap = ImapSettings(
            host=e.required("IMAP_HOST", "IMAP is used"),
            port=e.port("IMAP_PORT", default_port) or default_port,
            user=e.required("IMAP_USER", "SUPPORTBOT_IMAP_HOST is set"),
            password=e.required("IMAP_PASSWORD", "SUPPORTBOT_IMAP_HOST is set"),
            folder=e.text("IMAP_FOLDER", "INBOX") or "INBOX",
            tls=tls,
            sent_folder=e.text("IMAP_SENT_FOLDER"),
        )

    smtp: SmtpSettings | None = None
    if e.raw("SMTP_HOST"):
        tls = e.choice("SMTP_TLS", "starttls", ("ssl", "starttls", "none"))
        default_port = _tls_port(tls, ssl_port=465, starttls_port=587, plain_port=25)
        user = e.text("SMTP_USER")
        password = e.text("SMTP_PASSWORD")
        if user and not password:
            raise ConfigError(f"{PREFIX}SMTP_PASSWORD is required when {PREFIX}SMTP_USER is set")
        smtp = SmtpSettings(
            host=e.required("SMTP_HOST", "SMTP is used"),
            port=e.port("SMTP_PORT", default_port) or default_port,
            user=user,
            password=password,
            tls=tls,
            # A Sent folder is asked for to shrink the duplicate window after a crash: one
            # session keeps it at one message (each session has one in flight).
            connections=e.integer("SMTP_CONNECTIONS",
                                  1 if imap is not None and imap.sent_folder else 2,
                                  minimum=1, maximum=10),
        )

    helpscout: HelpScoutSettings | None = None
    if e.raw("HELPSCOUT_APP_ID"):
        mailbox = e.required("HELPSCOUT_MAILBOX_ID", "SUPPORTBOT_HELPSCOUT_APP_ID is set")
        if not mailbox.isdigit():
            raise ConfigError(f"{PREFIX}HELPSCOUT_MAILBOX_ID={mailbox!r} must be a number")
        base_url = (e.text("HELPSCOUT_BASE_URL", "https://api.helpscout.net") or "").rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"{PREFIX}HELPSCOUT_BASE_URL={base_url!r} must be an http(s) URL")
        helpscout = HelpScoutSettings(
            app_id=e.required("HELPSCOUT_APP_ID", "Help Scout is used"),
            app_secret=e.required("HELPSCOUT_APP_SECRET", "SUPPORTBOT_HELPSCOUT_APP_ID is set"),
            mailbox_id=int(mailbox),
            base_url=base_url,
            webhook_secret=e.text("HELPSCOUT_WEBHOOK_SECRET"),
            webhook_port=e.port("HELPSCOUT_WEBHOOK_PORT", None),
        )
        if helpscout.webhook_port and not helpscout.webhook_secret:
            # the receiver refuses unsigned wake-ups, so this would silently start nothing
            raise ConfigError(
                f"{PREFIX}HELPSCOUT_WEBHOOK_PORT is set but {PREFIX}HELPSCOUT_WEBHOOK_SECRET is "
                "not: set the secret of the Help Scout webhook (or unset the port to poll only)")

    embedded = imap is None and helpscout is None
    explicit_outbox = e.raw("OUTBOX_MAILDIR") is not None
    outbox = e.path("OUTBOX_MAILDIR", "var/outbox") if (embedded or explicit_outbox) else None
    if check_runtime and imap is not None and smtp is None and outbox is None:
        raise ConfigError(
            f"{PREFIX}IMAP_HOST is set but {PREFIX}SMTP_HOST is not: the bot would read tickets "
            f"and answer nobody. Set {PREFIX}SMTP_HOST (or {PREFIX}OUTBOX_MAILDIR to write replies "
            "to a local Maildir)"
        )

    ca_file = e.path("CA_FILE", None)
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{PREFIX}CA_FILE={str(ca_file)!r} does not exist")

    webhook = e.text("ALERT_WEBHOOK_URL")
    if webhook is not None and not webhook.startswith(("https://", "http://")):
        raise ConfigError(f"{PREFIX}ALERT_WEBHOOK_URL must be an http(s) URL")

    log_format: LogFormat = e.choice("LOG_FORMAT", "auto", ("json", "console", "auto"))
    log_level = e.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
    poll = e.number("POLL_SECONDS", 30.0, minimum=0.05)

    state_url = _state_url(e)
    return Settings(
        state_path=e.path("STATE", "var/supportbot.db") if state_url is None
        else e.cwd / "var/supportbot.db",
        state_url=state_url,
        lease_seconds=e.number("LEASE_SECONDS", 30.0, minimum=1.0),
        rules_path=e.path("RULES", "rules.yaml"),
        templates_path=e.path("TEMPLATES", "templates"),
        from_addr=from_addr.lower(),
        from_name=from_name,
        dry_run=e.flag("DRY_RUN"),
        log_format=log_format,
        log_level=log_level,
        poll_seconds=poll,
        maildir_path=e.path("MAILDIR", "var/inbox") if embedded else None,
        outbox_maildir_path=outbox,
        imap=imap,
        smtp=smtp,
        helpscout=helpscout,
        ca_file=ca_file,
        tls_insecure=e.flag("TLS_INSECURE"),
        backfill_hours=e.number("BACKFILL_HOURS", 24.0),
        retention_days=e.number("RETENTION_DAYS", 90.0),
        alert_webhook_url=webhook,
        metrics_port=e.port("METRICS_PORT", None),
        health_max_age_seconds=e.number("HEALTH_MAX_AGE_SECONDS", 300.0, minimum=1.0),
        health_failing_seconds=e.number("HEALTH_FAILING_SECONDS", 300.0),
    )


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _state_url(e: _Env) -> str | None:
    """SUPPORTBOT_STATE as a PostgreSQL URL, or the platform's DATABASE_URL when it is unset."""
    state = e.raw("STATE")
    if state is None:
        name, value = "DATABASE_URL", (e.env.get("DATABASE_URL") or "").strip()
        if not value:
            return None
    elif "://" not in state:
        return None  # a path
    else:
        name, value = f"{PREFIX}STATE", state
    if not value.startswith(POSTGRES_SCHEMES):
        scheme = value.partition("://")[0]
        raise ConfigError(f"{name} must be a SQLite file path or a postgresql:// URL, "
                          f"not a {scheme}:// URL")
    return value


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets, so the log processor can redact them wherever they appear."""
    values = [
        settings.imap.password if settings.imap else None,
        settings.smtp.password if settings.smtp else None,
        settings.helpscout.app_secret if settings.helpscout else None,
        settings.helpscout.webhook_secret if settings.helpscout else None,
        settings.alert_webhook_url,
        _url_password(settings.state_url),
    ]
    return [v for v in values if v and len(v) >= 4]


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None
