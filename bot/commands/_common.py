"""Helpers shared by the subcommands: settings + logging set-up, opening the store."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from bot import log
from bot.config import Settings, load_settings, secret_values
from bot.errors import ConfigError
from bot.store import Store


def setup(args: argparse.Namespace, *, check_runtime: bool = True, **overrides: Any) -> Settings:
    settings = load_settings(check_runtime=check_runtime)
    if overrides:
        settings = settings.with_(**overrides)
    log.configure(settings.log_format, "debug" if getattr(args, "verbose", False)
                  else settings.log_level, secret_values(settings))
    return settings


def positive_days(text: str) -> float:
    """``--days N``: a number of days greater than 0 (``-3`` or ``abc`` is a usage error)."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of days") from None
    if not 0 < days <= 3650:
        raise argparse.ArgumentTypeError(f"{text} days: give a number above 0 (at most 3650)")
    return days


def require_state(settings: Settings) -> None:
    """Commands that read the state never create one: a mistyped SUPPORTBOT_STATE would
    otherwise show an empty, healthy-looking desk."""
    if settings.state_url is None and not settings.state_path.exists():
        raise ConfigError(f"no state at {settings.state_path}: check SUPPORTBOT_STATE (the worker "
                          "creates it on its first run)")


def open_store(settings: Settings) -> Store:
    """The existing state (`require_state`); only the worker creates one."""
    require_state(settings)
    return Store(settings.state)


def invoked_as() -> str:
    """How the user called us, to quote in hints: ``supportbot`` only when it is on PATH.

    Right after ``make demo`` the command lives in ``.venv/bin`` and the venv is not
    active, so a bare ``supportbot`` in a hint would be "command not found".
    """
    argv0 = Path(sys.argv[0])
    if argv0.name == "supportbot":
        found = shutil.which("supportbot")
        if found is not None and Path(found).resolve() == argv0.resolve():
            return "supportbot"
        return _relative(argv0)
    return f"{_relative(Path(sys.executable))} -m bot"


def _relative(path: Path) -> str:
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))  # keep venv links
    except ValueError:
        return str(path)


_ID = re.compile(r"#?[0-9]{1,18}")


def record_id(text: str) -> int:
    """An argparse type: a ticket or quarantine number (``42`` or ``#42``), with a clear
    error for anything else (a 40-digit number used to end in an OverflowError)."""
    value = text.strip()
    if not _ID.fullmatch(value) or int(value.lstrip("#")) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of 1 to 18 digits")
    return int(value.lstrip("#"))
