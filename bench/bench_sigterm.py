"""How long `supportbot run` takes to exit after SIGTERM, idle on each kind of source.

Usage: python bench/bench_sigterm.py [--trials 5]
Starts the real worker (`python -m bot run`) on the embedded Maildir, then on a private
Dovecot (IMAP IDLE) with aiosmtpd for mail out, lets it settle into its wait, sends SIGTERM
and times the exit. Target (issue 17): well under a second.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers.dovecot import Mailbox, shared_server
from tests.servers.smtp import SmtpServer

REPO = Path(__file__).resolve().parent.parent


def exit_seconds(env: dict[str, str], workdir: Path) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)  # started, first cycle done, waiting (IDLE or poll)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return time.monotonic() - started


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update({"SUPPORTBOT_STATE": str(workdir / "state.db"),
                "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
                "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
                "SUPPORTBOT_LOG_FORMAT": "json", "PYTHONPATH": str(REPO)})
    return env


def report(name: str, seconds: list[float]) -> None:
    print(f"{name:<28} median {statistics.median(seconds):.3f} s   max {max(seconds):.3f} s   "
          f"({len(seconds)} trials)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        times = []
        for n in range(args.trials):
            env = base_env(work) | {"SUPPORTBOT_STATE": str(work / f"maildir{n}.db"),
                                    "SUPPORTBOT_MAILDIR": str(work / "inbox"),
                                    "SUPPORTBOT_OUTBOX_MAILDIR": str(work / "outbox")}
            times.append(exit_seconds(env, work))
        report("Maildir (poll)", times)
        with shared_server() as server, SmtpServer() as smtp:
            box = Mailbox(server, server.add_user())
            imap = box.settings()
            times = []
            for n in range(args.trials):
                env = base_env(work) | {
                    "SUPPORTBOT_STATE": str(work / f"imap{n}.db"),
                    "SUPPORTBOT_IMAP_HOST": imap.host, "SUPPORTBOT_IMAP_PORT": str(imap.port),
                    "SUPPORTBOT_IMAP_USER": imap.user, "SUPPORTBOT_IMAP_PASSWORD": imap.password,
                    "SUPPORTBOT_IMAP_TLS": "none", "SUPPORTBOT_SMTP_HOST": smtp.host,
                    "SUPPORTBOT_SMTP_PORT": str(smtp.port), "SUPPORTBOT_SMTP_TLS": "none"}
                times.append(exit_seconds(env, work))
            report("IMAP (IDLE) + SMTP", times)


if __name__ == "__main__":
    main()
