"""Building blocks for end-to-end tests: a worker on the embedded Maildir set-up."""

from __future__ import annotations

import mailbox
import os
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.demo.fake_helpscout import FakeHelpScout

REPO = Path(__file__).resolve().parent.parent


def make_mail(*, sender: str = "Ann Example <ann@customer.example>", subject: str = "Hello",
              body: str = "Hi there, I have a question about my account settings page.",
              message_id: str | None = "<m1@customer.example>", date: datetime | None = None,
              headers: dict[str, str] | None = None, in_reply_to: str | None = None,
              to: str = "Support <support@example.com>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if date is not None:
        msg["Date"] = format_datetime(date)
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()


def deliver(inbox: Path, raw: bytes, when: datetime) -> str:
    inbox.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(str(inbox), create=True)
    key = box.add(mailbox.MaildirMessage(raw))
    ts = when.timestamp()
    os.utime(inbox / "new" / key, (ts, ts))
    return key


def embedded_settings(tmp: Path, **env: str) -> Settings:
    base = {
        "SUPPORTBOT_STATE": str(tmp / "state.db"),
        "SUPPORTBOT_MAILDIR": str(tmp / "inbox"),
        "SUPPORTBOT_OUTBOX_MAILDIR": str(tmp / "outbox"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_FROM": "Acme Support <support@example.com>",
    }
    base.update(env)
    return load_settings(base, cwd=tmp)


def helpscout_settings(tmp: Path, url: str, fake: FakeHelpScout, *,
                       state: Path | str | None = None, rules: Path | None = None,
                       **env: str) -> Settings:
    """A worker reading ``fake``'s mailbox over HTTP at ``url`` (no mail channel)."""
    base = {
        "SUPPORTBOT_STATE": str(state or tmp / "state.db"),
        "SUPPORTBOT_RULES": str(rules or REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_HELPSCOUT_APP_ID": fake.app_id,
        "SUPPORTBOT_HELPSCOUT_APP_SECRET": fake.app_secret,
        "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": str(fake.mailbox_id),
        "SUPPORTBOT_HELPSCOUT_BASE_URL": url,
        "SUPPORTBOT_POLL_SECONDS": "1",
    }
    base.update(env)
    return load_settings(base, cwd=tmp)


@dataclass
class Sent:
    to: str
    subject: str
    kind: str
    ticket: str
    message: EmailMessage


def outbox_mail(path: Path) -> list[Sent]:
    """Everything the bot wrote to the outbox Maildir, oldest first."""
    if not (path / "new").is_dir():
        return []
    files = sorted((path / "new").iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
    out = []
    for f in files:
        msg = message_from_bytes(f.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(Sent(to=str(msg["To"]), subject=str(msg["Subject"]),
                        kind=str(msg["X-Supportbot-Kind"]), ticket=str(msg["X-Supportbot-Ticket"]),
                        message=msg))
    return out


def clock_at(when: datetime) -> FakeClock:
    return FakeClock(when)


def unflow(text: str) -> str:
    """RFC 3676 reading of a ``format=flowed`` body: soft breaks re-joined, stuffing removed."""
    out: list[str] = []
    joining = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]
        if joining:
            out[-1] += line
        else:
            out.append(line)
        joining = line.endswith(" ") and line != "-- "
    return "\n".join(out)


def plain_text(message: EmailMessage) -> str:
    """The text/plain body as the person reads it (flowed lines re-joined)."""
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    text = str(body.get_content())
    if body.get_param("format") == "flowed":
        return unflow(text)
    return text.replace("\r\n", "\n")
