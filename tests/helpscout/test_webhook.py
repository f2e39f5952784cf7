"""The webhook receiver on a real loopback socket: signed calls wake the poller, others don't."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket

import pytest

from bot.clock import FakeClock
from bot.helpscout.client import HelpScoutClient
from bot.helpscout.webhook import WebhookReceiver, sign, verify
from bot.sources.helpscout import HelpScoutSource
from tests.helpscout.conftest import MemoryCursors, hs_settings, run

SECRET = "whsec-test-0123"
BODY = b'{"id": 7001, "number": 1201, "status": "active"}'


def test_the_signature_is_base64_hmac_sha1_of_the_raw_body() -> None:
    expected = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha1).digest()).decode()
    assert sign(SECRET, BODY) == expected
    assert verify(SECRET, BODY, expected) and verify(SECRET, BODY, f" {expected}\t")
    assert not verify(SECRET, BODY + b" ", expected)
    assert not verify(SECRET, BODY, None) and not verify(SECRET, BODY, "é")


async def _call(port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


def _post(body: bytes, signature: str | None, extra: str = "") -> bytes:
    head = (f"POST /helpscout HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            f"X-HelpScout-Event: convo.customer.reply.created\r\nContent-Length: {len(body)}\r\n")
    if signature is not None:
        head += f"X-HelpScout-Signature: {signature}\r\n"
    return (head + extra + "\r\n").encode() + body


@pytest.mark.parametrize(("raw", "status", "woken"), [
    (_post(BODY, sign(SECRET, BODY)), 200, 1),
    (_post(BODY, sign("another-secret", BODY)), 401, 0),
    (_post(BODY, None), 401, 0),
    (_post(BODY + b"tampered", sign(SECRET, BODY)), 401, 0),
    (b"GET /helpscout HTTP/1.1\r\nHost: bot\r\n\r\n", 405, 0),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, 0),
    (_post(b"x" * 2048, sign(SECRET, b"x" * 2048)), 413, 0),
    (b"nonsense\r\n\r\n", 400, 0),
])
def test_the_receiver_answers(raw: bytes, status: int, woken: int) -> None:
    calls: list[int] = []

    async def go() -> int:
        receiver = WebhookReceiver(SECRET, lambda: calls.append(1), host="127.0.0.1",
                                   max_body=1024)
        await receiver.start()
        try:
            return await _call(receiver.port, raw)
        finally:
            await receiver.aclose()

    assert run(go()) == status
    assert len(calls) == woken


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_signed_webhook_wakes_the_source_before_its_poll_interval(clock: FakeClock) -> None:
    settings = hs_settings(webhook_secret=SECRET, webhook_port=_free_port())

    async def go() -> None:
        client = HelpScoutClient(settings, clock=clock)
        source = HelpScoutSource(client, settings, MemoryCursors(), poll_seconds=3600,
                                 clock=clock, own_user_id=99, webhook_host="127.0.0.1")
        await source._start_webhook()
        assert source.receiver is not None
        try:
            waiting = asyncio.create_task(source.wait(3600))
            assert await _call(source.receiver.port, _post(BODY, sign(SECRET, BODY))) == 200
            await asyncio.wait_for(waiting, 5)
        finally:
            await source.aclose()
            await client.aclose()

    run(go())
