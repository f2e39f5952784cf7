"""The bot is not a relay: caps per mailbox and per domain, and only plain, short echoes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.config import Settings
from bot.mail.addresses import cap_key
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import embedded_settings, make_mail, outbox_mail
from tests.reliability.maildir import deliver_bytes

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ASK = "How do I export my contacts to a CSV file from the settings page?"


def cycle(settings: Settings) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=FakeClock(T0 + timedelta(minutes=5))) as w:
            await w.cycle()
    asyncio.run(go())


def test_cap_key_folds_the_variants_of_one_mailbox() -> None:
    assert cap_key("V.ictim+7@GoogleMail.com") == "victim@gmail.com"
    assert cap_key("victim+a+b@corp.example") == "victim@corp.example"
    assert cap_key("V.ictim@corp.example") == "v.ictim@corp.example"  # dots matter there


def test_twelve_variants_of_one_address_share_one_cap(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    variants = [f"victim+{n}@gmail.com" for n in range(6)] + \
        [f"vic.tim+{n}@googlemail.com" for n in range(6)]
    for n, address in enumerate(variants):
        deliver_bytes(tmp_path / "inbox", make_mail(
            sender=f"Someone <{address}>", subject=f"Question {n}", body=ASK,
            message_id=f"<v{n}@x.example>"), T0 + timedelta(seconds=n))
    cycle(settings)
    assert len(outbox_mail(tmp_path / "outbox")) == 5  # settings.limits.per_recipient_per_day
    assert Store(settings.state).outbox_counts().get("suppressed") == 7


def test_one_company_gets_at_most_thirty_automatic_messages_an_hour(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    for n in range(35):
        deliver_bytes(tmp_path / "inbox", make_mail(
            sender=f"Person {n} <p{n}@bigcorp.example>", subject=f"Question {n}", body=ASK,
            message_id=f"<b{n}@x.example>"), T0 + timedelta(seconds=n))
    cycle(settings)
    assert len(outbox_mail(tmp_path / "outbox")) == 30
    store = Store(settings.state)
    assert any("per hour to one domain" in e.detail for e in store.activity()
               if e.action == "suppressed")


def test_a_stranger_s_name_and_subject_are_not_echoed(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    deliver_bytes(tmp_path / "inbox", make_mail(
        sender="Visit cheap-pills.example now <victim@corp.example>",
        subject="WIN NOW http://cheap-pills.example/buy " + "x" * 210, body=ASK), T0)
    cycle(settings)
    [sent] = outbox_mail(tmp_path / "outbox")
    body = sent.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Visit" not in body and "Hi there" in body
    assert "http" not in sent.subject and "cheap-pills" not in body
    assert len(sent.subject) <= len("Re:  [#1]") + 80
