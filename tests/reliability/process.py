"""A worker as a real process (`python -m bot ...`) and the reading of its JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def worker_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The parent's environment without any SUPPORTBOT_* leaking in, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update({
        "SUPPORTBOT_STATE": str(workdir / "state.db"),
        "SUPPORTBOT_RULES": str(REPO / "rules.yaml"),
        "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
        "SUPPORTBOT_FROM": "Acme Support <support@example.com>",
        "SUPPORTBOT_LOG_FORMAT": "json",
        **settings})
    return env


def imap_smtp_env(workdir: Path, *, imap_host: str, imap_port: int, user: str, password: str,
                  smtp_host: str, smtp_port: int, **extra: str) -> dict[str, str]:
    settings = {
        "SUPPORTBOT_IMAP_HOST": imap_host, "SUPPORTBOT_IMAP_PORT": str(imap_port),
        "SUPPORTBOT_IMAP_USER": user, "SUPPORTBOT_IMAP_PASSWORD": password,
        "SUPPORTBOT_IMAP_TLS": "none",
        "SUPPORTBOT_SMTP_HOST": smtp_host, "SUPPORTBOT_SMTP_PORT": str(smtp_port),
        "SUPPORTBOT_SMTP_TLS": "none", **extra}
    return worker_env(workdir, **settings)


def start(args: Iterable[str], env: Mapping[str, str], cwd: Path,
          log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m bot ARGS` with stderr (the logs) and stdout appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", *args], env=dict(env), cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def run(args: Iterable[str], env: Mapping[str, str], cwd: Path, log_path: Path,
        timeout: float = 180.0) -> int:
    proc = start(args, env, cwd, log_path)
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def error_events(paths: Iterable[Path]) -> Counter[str]:
    """Error-level events (and anything that is not a JSON log line, e.g. a traceback)."""
    found: Counter[str] = Counter()
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                if line.startswith("Traceback") or "Error" in line.split(":")[0]:
                    found[f"not a log line: {line[:120]}"] += 1
                continue
            if isinstance(event, dict) and event.get("level") in {"error", "critical"}:
                found[str(event.get("event"))] += 1
    return found
