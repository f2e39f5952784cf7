"""The Help Scout webhook receiver under a flood: bounded connections, replays, config."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.helpscout.webhook import WebhookReceiver, sign
from tests.hostile.flood import run_flood


async def _post(port: int, body: bytes, secret: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                 b"X-HelpScout-Signature: %s\r\n\r\n" % (len(body), sign(secret, body).encode())
                 + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_idle_connections_are_bounded_and_a_real_request_still_gets_in() -> None:
    async def go() -> tuple[int, int, list[int], bytes]:
        wakes: list[int] = []
        receiver = WebhookReceiver("s3cret", lambda: wakes.append(1), host="127.0.0.1",
                                   max_connections=16, read_timeout=30)
        await receiver.start()
        flood = [await asyncio.open_connection("127.0.0.1", receiver.port) for _ in range(300)]
        for _, writer in flood:
            writer.write(b"P")
        await asyncio.sleep(0.3)
        held = len(receiver._active)
        answer = await _post(receiver.port, b'{"id": 1}', "s3cret")
        for _, writer in flood:
            writer.close()
        await receiver.aclose()
        return held, receiver.evicted, wakes, answer
    held, evicted, wakes, answer = asyncio.run(go())
    assert held <= 16
    assert evicted >= 300 - 16
    assert answer.startswith(b"HTTP/1.1 200")
    assert wakes == [1]


def test_a_replayed_request_wakes_the_poller_once() -> None:
    async def go() -> tuple[list[int], list[bytes], int]:
        wakes: list[int] = []
        receiver = WebhookReceiver("s3cret", lambda: wakes.append(1), host="127.0.0.1")
        await receiver.start()
        answers = [await _post(receiver.port, b'{"id": 7}', "s3cret") for _ in range(20)]
        answers.append(await _post(receiver.port, b'{"id": 8}', "s3cret"))
        await receiver.aclose()
        return wakes, answers, receiver.replayed
    wakes, answers, replayed = asyncio.run(go())
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)  # Help Scout must not retry
    assert wakes == [1, 1]  # the first of the twenty, and the new body
    assert replayed == 19


def test_a_webhook_port_without_its_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {"SUPPORTBOT_STATE": str(tmp_path / "s.db"), "SUPPORTBOT_HELPSCOUT_APP_ID": "a",
           "SUPPORTBOT_HELPSCOUT_APP_SECRET": "b", "SUPPORTBOT_HELPSCOUT_MAILBOX_ID": "1",
           "SUPPORTBOT_HELPSCOUT_WEBHOOK_PORT": "8080"}
    with pytest.raises(ConfigError, match="SUPPORTBOT_HELPSCOUT_WEBHOOK_SECRET"):
        load_settings(env, cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs setrlimit and /proc")
def test_a_worker_with_few_descriptors_survives_a_flood_and_answers(tmp_path: Path) -> None:
    """400 idle one-byte connections against a worker allowed 128 descriptors: it stays up
    and answers the conversation added meanwhile (the probe's 1,100 killed it)."""
    report = run_flood(tmp_path, connections=400, fd_limit=128)
    assert report.problems() == [], (tmp_path / "worker.log").read_text()[-3000:]
    assert report.webhook_status == 200
