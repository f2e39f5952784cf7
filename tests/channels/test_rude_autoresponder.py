"""The rude autoresponder test helper answers everything, Auto-Submitted or not."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from tests.channels.outbox_items import item
from tests.servers.smtp import RudeAutoresponder, SmtpServer

pytestmark = pytest.mark.slow


def test_answers_every_message_even_automatic_ones(smtp_server: SmtpServer) -> None:
    ours = [item(n, auto_submitted=a)
            for n, a in enumerate(["auto-replied", "auto-generated", None])]
    with RudeAutoresponder(relay=(smtp_server.host, smtp_server.port)) as rude:
        async def deliver() -> None:
            for it in ours:
                await aiosmtplib.send(it.payload, sender=it.envelope_from,
                                      recipients=[rude.address], hostname=rude.host,
                                      port=rude.port, start_tls=False)
        asyncio.run(deliver())
        replies = smtp_server.wait_for(3)
    assert rude.errors == []
    assert sorted(str(r.message["In-Reply-To"]) for r in replies) == sorted(
        i.message_id for i in ours)
    for reply in replies:
        msg = reply.message
        assert reply.mail_from == rude.address  # a real envelope sender, not <>
        assert reply.rcpt_tos == ["support@example.com"]
        assert msg["Subject"] == "Re: Re: Export broken [#7]"
        assert msg["Auto-Submitted"] is None and msg["Precedence"] is None
        assert str(msg["References"]).split()[-1] == msg["In-Reply-To"]


def test_stops_at_its_safety_limit(smtp_server: SmtpServer) -> None:
    with RudeAutoresponder(relay=(smtp_server.host, smtp_server.port), max_replies=1) as rude:
        async def deliver() -> None:
            for n in range(3):
                await aiosmtplib.send(item(n).payload, sender="support@example.com",
                                      recipients=[rude.address], hostname=rude.host,
                                      port=rude.port, start_tls=False)
        asyncio.run(deliver())
        rude.server.wait_for(3)
        smtp_server.wait_for(1)
    assert len(rude.replies) == 1
