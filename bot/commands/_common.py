"""Helpers shared by the subcommands: settings + logging set-up, opening the store."""

from __future__ import annotations

import argparse
from typing import Any

from bot import log
from bot.config import Settings, load_settings, secret_values
from bot.store import Store


def setup(args: argparse.Namespace, *, check_runtime: bool = True, **overrides: Any) -> Settings:
    settings = load_settings(check_runtime=check_runtime)
    if overrides:
        settings = settings.with_(**overrides)
    log.configure(settings.log_format, "debug" if getattr(args, "verbose", False)
                  else settings.log_level, secret_values(settings))
    return settings


def open_store(settings: Settings) -> Store:
    return Store(settings.state_path)
