"""The network-fault suite, short: resets, stalls, cuts and blips between the worker and
IMAP, SMTP and Help Scout lose nothing and double nothing (long: bench/reliability.py)."""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ImapSettings
from bot.errors import AuthError, SourceError
from bot.sources.imap import ImapSource
from tests.reliability.netfault import run_network_suite
from tests.servers.dovecot import DovecotServer

pytestmark = pytest.mark.slow


def test_network_faults_lose_nothing_and_double_nothing(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    report = run_network_suite(imap_tickets=24, hs_conversations=12, fault_cycles=12, seed=3,
                               workdir=tmp_path, dovecot=dovecot, stall_seconds=1.0, pause=0.3)
    assert report.drops > 0 and sum(s.connections for s in report.proxies.values()) > 3
    assert report.problems() == []
    assert report.mail.answered == 24 and report.hs.answered == 12


class _DropsAtLogin(socketserver.StreamRequestHandler):
    """An IMAP server whose connection breaks while the client logs in (a network blip)."""

    def handle(self) -> None:
        self.wfile.write(b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
        for line in self.rfile:
            tag, _, command = line.decode(errors="replace").partition(" ")
            if command.upper().startswith("CAPABILITY"):
                self.wfile.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n"
                                 + tag.encode() + b" OK done\r\n")
            elif command.upper().startswith("LOGIN"):
                return  # the connection closes before any answer


@pytest.fixture
def drops_at_login() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _DropsAtLogin)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _Cursors:
    def get_cursor(self, key: str) -> str | None:
        return None


def test_a_connection_lost_during_login_is_not_an_authentication_failure(
        drops_at_login: int) -> None:
    settings = ImapSettings(host="127.0.0.1", port=drops_at_login, user="support@example.test",
                            password="pw", tls="none")
    source = ImapSource(settings, _Cursors(), poll_seconds=1, retry_attempts=2,
                        retry_wait=0.01, retry_wait_max=0.02, timeout=5)

    async def drain() -> None:
        try:
            async for _ in source.batches():
                pass
        finally:
            await source.aclose()

    with pytest.raises(SourceError) as raised:
        asyncio.run(drain())
    assert not isinstance(raised.value, AuthError), str(raised.value)
