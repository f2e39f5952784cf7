"""Building blocks for the conversation stories (issue 13): people who answer as mail clients do.

A reply is composed the way Thunderbird, Apple Mail or Gmail compose one: `To` from the
`Reply-To` of the message answered (else its `From`); Reply All adds its other `To`/`Cc`
addresses (never the sender's own) on `Cc`; `Subject` "Re: ..."; `In-Reply-To` its
Message-ID and `References` its References plus that Message-ID; the body is the new text
above an attribution line and the message answered, quoted with "> ".

`Story` drives one worker on the IMAP path (real Dovecot in, real aiosmtpd out) on a fake
clock, and after every cycle asserts the invariant of issue 13: no open ticket is left with
no owner and nothing pending.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Any

import yaml

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.runtime import open_worker
from bot.store import Store
from bot.tickets import stranded
from tests.helpers import REPO
from tests.imap_helpers import crlf, imap_env
from tests.servers.dovecot import Mailbox
from tests.servers.smtp import Received, SmtpServer

TEAM_DOMAIN = "example.com"
SUPPORT = f"support@{TEAM_DOMAIN}"
REQUESTER = "ann@customer.example"
ANN = f"Ann Example <{REQUESTER}>"

Step = tuple[timedelta, bytes | None]


def rules_file(tmp: Path, settings: dict[str, Any] | None = None) -> Path:
    """The shipped rules.yaml with ``settings`` merged into its settings (one level deep
    per section: ``{"team": {"domains": [...]}}`` keeps the team's name and signature)."""
    rules = yaml.safe_load((REPO / "rules.yaml").read_text())
    for section, values in (settings or {}).items():
        if isinstance(values, dict) and isinstance(rules["settings"].get(section), dict):
            rules["settings"][section].update(values)
        else:
            rules["settings"][section] = values
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True))
    return path


def addresses(msg: EmailMessage, *headers: str) -> list[str]:
    """The bare addresses of ``headers``, lower-cased, in order."""
    values = [str(v) for h in headers for v in (msg.get_all(h) or [])]
    return [a.lower() for _, a in getaddresses(values) if a]


def text_of(msg: EmailMessage) -> str:
    """The text/plain content a person reads (format=flowed lines joined as a reader does)."""
    part = msg.get_body(("plain",))
    assert part is not None, f"no text/plain part in {msg['Subject']!r}"
    assert isinstance(part, EmailMessage)
    text = str(part.get_content())
    if part.get_param("format") == "flowed":
        text = text.replace(" \n", " ")
    return text


def message_ids(value: object) -> list[str]:
    """The Message-IDs of a References or In-Reply-To value, in order."""
    return re.findall(r"<[^<>\s]+>", str(value or ""))


def compose_reply(answered: EmailMessage, *, sender: str, body: str, message_id: str,
                  when: datetime, reply_all: bool = False,
                  extra_cc: Sequence[str] = ()) -> bytes:
    """``sender`` presses Reply (or Reply All) on ``answered`` and writes ``body`` above it."""
    own = parseaddr(sender)[1].lower()
    to = [str(v) for v in (answered.get_all("Reply-To") or answered.get_all("From") or [])]
    to_bare = {a.lower() for _, a in getaddresses(to)}
    cc: list[str] = []
    if reply_all:
        for name, addr in getaddresses([str(v) for h in ("From", "To", "Cc")
                                        for v in (answered.get_all(h) or [])]):
            bare = addr.lower()
            if bare and bare != own and bare not in to_bare:
                to_bare.add(bare)
                cc.append(f"{name} <{addr}>" if name else addr)
    cc += list(extra_cc)
    subject = str(answered["Subject"] or "")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    answered_id = str(answered["Message-ID"])
    msg["In-Reply-To"] = answered_id
    msg["References"] = " ".join([*message_ids(answered.get("References")), answered_id])
    quoted = "\n".join(f"> {line}".rstrip() for line in text_of(answered).splitlines())
    attribution = f"On {format_datetime(when)}, {answered['From']} wrote:"
    msg.set_content(f"{body}\n\n{attribution}\n{quoted}\n")
    return crlf(msg.as_bytes())


def compose_new(*, sender: str, to: str, subject: str, body: str, message_id: str,
                when: datetime, cc: str | None = None, in_reply_to: str | None = None,
                references: Sequence[str] = ()) -> bytes:
    """A message written from scratch (an agent writing to the requester, a first ticket)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*references, in_reply_to])
    msg.set_content(body)
    return crlf(msg.as_bytes())


def bounce_of(sent: EmailMessage, recipient: str, status: str = "5.1.1") -> bytes:
    """The receiving side's permanent-failure DSN (RFC 3464) for ``sent``."""
    return crlf(f"""Return-Path: <>
From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
To: {SUPPORT}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn.{status}@mx.customer.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"

--dsn
Content-Type: text/plain

<{recipient}>: 550 {status} No such user

--dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; {recipient}
Action: failed
Status: {status}

--dsn
Content-Type: text/rfc822-headers

From: {sent['From']}
To: {sent['To']}
Subject: {sent['Subject']}
Message-ID: {sent['Message-ID']}

--dsn--
""".encode())


class Story:
    """One ticket's conversation on the real mail path, step by step, on a fake clock."""

    def __init__(self, tmp: Path, mailbox: Mailbox, smtp: SmtpServer, start: datetime, *,
                 settings: dict[str, Any] | None = None,
                 **env: str) -> None:
        self.mailbox = mailbox
        self.smtp = smtp
        self.clock = FakeClock(start)
        self.rules_path = rules_file(tmp, settings)
        self.tmp = tmp
        self.env = imap_env(mailbox.settings(), smtp, tmp / "state.db",
                            SUPPORTBOT_RULES=str(self.rules_path), **env)
        self.settings: Settings = load_settings(self.env, cwd=tmp)
        # (who, Message-ID) of every message in and out, in order: who is "requester" or
        # "team" for people's mail, "bot>requester" or "bot>team" for the bot's
        self.timeline: list[tuple[str, str]] = []
        self._seen = 0  # SMTP messages already on the timeline
        self.checks = 0  # how many times the invariant was checked

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def deliver(self, raw: bytes, *, team: bool = False) -> None:
        """The message arrives in the support mailbox now (INTERNALDATE on the fake clock);
        ``team``: written by the team, not on the requester's side."""
        self.mailbox.append("INBOX", raw, internaldate=self.now)
        mid = message_from_bytes(raw, policy=policy.default)["Message-ID"]
        self.timeline.append(("team" if team else "requester", str(mid)))

    def run(self, *steps: Step) -> None:
        """One worker for all ``steps``: move the clock, maybe deliver, run a cycle, and check
        that no ticket is stranded. A step's mail is the requester's side's unless it is
        From a team address (``team``)."""
        async def go() -> None:
            async with open_worker(self.settings, clock=self.clock) as worker:
                for delta, raw in steps:
                    self.clock.advance(delta)
                    if raw is not None:
                        await asyncio.to_thread(self.deliver, raw, team=self.is_team(raw))
                    await worker.cycle()
                    self.note_sent()
                    self.assert_nobody_stranded(worker.store)
        asyncio.run(go())

    @staticmethod
    def is_team(raw: bytes) -> bool:
        """In these stories the team is example.com and requesters are elsewhere."""
        sender = parseaddr(str(message_from_bytes(raw, policy=policy.default)["From"]))[1]
        return sender.lower().endswith("@" + TEAM_DOMAIN)

    def note_sent(self) -> None:
        for received in self.smtp.messages[self._seen:]:
            who = "bot>requester" if REQUESTER in received.rcpt_tos else "bot>team"
            self.timeline.append((who, str(received.message["Message-ID"])))
        self._seen = len(self.smtp.messages)

    def wait(self, total: timedelta, every: timedelta = timedelta(hours=6)) -> None:
        """Let time pass, one cycle every ``every`` (the invariant checked after each)."""
        steps: list[Step] = []
        left = total
        while left > timedelta(0):
            step = min(every, left)
            steps.append((step, None))
            left -= step
        self.run(*steps)

    def assert_nobody_stranded(self, store: Store) -> None:
        assert stranded(store) == [], (
            f"stranded at {self.now.isoformat()}: "
            + "; ".join(f"#{t}: {store.activity(t)[-3:]}"
                        for t in stranded(store)))
        self.checks += 1

    # -- what went out ---------------------------------------------------------------------
    def sent(self, kind: str | None = None) -> list[EmailMessage]:
        return [r.message for r in self.smtp.messages
                if kind is None or r.message["X-Supportbot-Kind"] == kind]

    def last(self, kind: str) -> EmailMessage:
        found = self.sent(kind)
        assert found, f"no {kind} was sent; sent: {self.kinds()}"
        return found[-1]

    def kinds(self) -> list[str]:
        return [str(m["X-Supportbot-Kind"]) for m in self.sent()]

    def to_requester(self) -> list[Received]:
        return [r for r in self.smtp.messages if REQUESTER in r.rcpt_tos]

    def assert_threads_well(self) -> None:
        """Every bot message to the requester has References holding, in order, every
        earlier message of the requester's side and every earlier bot message to them."""
        chain: list[str] = []
        by_id = {str(r.message["Message-ID"]): r.message for r in self.smtp.messages}
        for who, mid in self.timeline:
            if who == "bot>requester":
                refs = message_ids(by_id[mid]["References"])
                kept = [m for m in refs if m in chain]
                assert kept == chain, (f"{by_id[mid]['X-Supportbot-Kind']} {mid}: References "
                                       f"{refs} should hold {chain} in this order")
            if who in ("requester", "bot>requester"):
                chain.append(mid)

    def assert_reads_well(self) -> None:
        """Every bot message's plain text is format=flowed with no line longer than 78
        characters (RFC 5322 2.1.1, RFC 3676): it wraps in any reader, and reflows."""
        for msg in self.sent():
            part = msg.get_body(("plain",))
            assert isinstance(part, EmailMessage)
            assert part.get_param("format") == "flowed", msg["X-Supportbot-Kind"]
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            long = [line for line in payload.decode().splitlines() if len(line) > 78]
            assert not long, f"{msg['X-Supportbot-Kind']}: {long[:2]}"

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store(self.settings.state)
        try:
            yield store
        finally:
            store.close()
