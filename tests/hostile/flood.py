"""A webhook flood against a real worker process: idle connections by the hundred, then a
new conversation. Shared by tests/hostile/test_webhook_flood.py and bench/reliability.py."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bot.demo.fake_helpscout import FakeHelpScout
from bot.helpscout.webhook import sign
from tests.reliability import process
from tests.servers.dovecot import free_port

SECRET = "flood-test-secret"


@dataclass
class FloodReport:
    connections: int
    fd_limit: int
    answered: bool
    seconds_to_answer: float | None
    alive: bool
    webhook_status: int | None

    def problems(self) -> list[str]:
        out = [] if self.answered else ["the conversation added during the flood was not answered"]
        if not self.alive:
            out.append("the worker exited during the flood")
        return out

    def rows(self) -> list[tuple[str, object]]:
        return [("idle connections opened", self.connections),
                ("worker's file-descriptor limit", self.fd_limit),
                ("signed webhook during the flood", self.webhook_status or "refused"),
                ("conversation answered", f"yes, after {self.seconds_to_answer:.1f} s"
                 if self.answered and self.seconds_to_answer is not None else "NO"),
                ("worker alive afterwards", "yes" if self.alive else "NO")]


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _post(port: int, body: bytes) -> int | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=body, method="POST",
        headers={"X-HelpScout-Signature": sign(SECRET, body),
                 "X-HelpScout-Event": "convo.created", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except OSError:
        return None


def run_flood(workdir: Path, *, connections: int = 400, fd_limit: int = 128,
              wait_seconds: float = 30.0) -> FloodReport:
    fake = FakeHelpScout()
    port = free_port()
    with fake.serve() as url:
        env = process.worker_env(
            workdir, SUPPORTBOT_HELPSCOUT_APP_ID=fake.app_id,
            SUPPORTBOT_HELPSCOUT_APP_SECRET=fake.app_secret,
            SUPPORTBOT_HELPSCOUT_MAILBOX_ID=str(fake.mailbox_id),
            SUPPORTBOT_HELPSCOUT_BASE_URL=url, SUPPORTBOT_HELPSCOUT_WEBHOOK_SECRET=SECRET,
            SUPPORTBOT_HELPSCOUT_WEBHOOK_PORT=str(port), SUPPORTBOT_POLL_SECONDS="2")
        log = (workdir / "worker.log").open("ab")
        worker = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=workdir,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  preexec_fn=lambda: _limit_fds(fd_limit))
        socks: list[socket.socket] = []
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the receiver is up once a connect works
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", port), timeout=1):
                    break
                time.sleep(0.1)
            for _ in range(connections):
                with contextlib.suppress(OSError):
                    s = socket.create_connection(("127.0.0.1", port), timeout=2)
                    s.sendall(b"P")
                    socks.append(s)
            conv = fake.add_conversation("Exporting contacts", "olivia@grant.example",
                                         "How do I export my contacts to a CSV file?",
                                         customer_name="Olivia Grant")
            started = time.monotonic()
            status = _post(port, json.dumps({"id": conv}).encode())
            answered_after: float | None = None
            while time.monotonic() - started < wait_seconds and worker.poll() is None:
                if any(t["type"] == "message" for t in fake.threads(conv)):
                    answered_after = time.monotonic() - started
                    break
                time.sleep(0.2)
            return FloodReport(connections=len(socks), fd_limit=fd_limit,
                               answered=answered_after is not None,
                               seconds_to_answer=answered_after,
                               alive=worker.poll() is None, webhook_status=status)
        finally:
            for s in socks:
                s.close()
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()
