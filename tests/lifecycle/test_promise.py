"""The one-hour promise: when nothing reached the requester within an hour, people hear of it.

SMTP is down (a closed port), so the alert must also reach the webhook, the log and status.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import structlog

from bot.clock import FakeClock
from bot.commands.status import collect
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings, make_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_missed_first_hour_alerts_webhook_log_and_status(tmp_path: Path) -> None:
    posts: list[dict] = []  # type: ignore[type-arg]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = embedded_settings(
            tmp_path, SUPPORTBOT_SMTP_HOST="127.0.0.1", SUPPORTBOT_SMTP_PORT=str(_closed_port()),
            SUPPORTBOT_SMTP_TLS="none",
            SUPPORTBOT_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{server.server_address[1]}/hook")
        deliver(tmp_path / "inbox", make_mail(subject="Where is the export button?"), T0)
        clock = FakeClock(T0)

        async def go() -> None:
            async with open_worker(settings, clock=clock) as worker:
                await worker.cycle()
                assert posts == []  # not yet: the hour has not passed
                clock.advance(timedelta(minutes=61))
                await worker.cycle()
        with structlog.testing.capture_logs() as logs:
            asyncio.run(go())
    finally:
        server.shutdown()
    assert len(posts) == 1 and "[#1]" in posts[0]["text"]
    assert any(e["event"] == "one-hour promise missed" and e["log_level"] == "error"
               for e in logs)
    store = Store(settings.state_path)
    assert collect(store)["promise_missed"] == 1
    assert store.outbox_counts().get("pending", 0) >= 1  # the acknowledgement still waits
