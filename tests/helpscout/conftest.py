"""Shared pieces for the Help Scout tests: documented payloads, settings, a fake clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.clock import FakeClock
from bot.config import HelpScoutSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "helpscout"
BASE = "https://api.helpscout.net"
T = TypeVar("T")


def payload(name: str) -> dict[str, Any]:
    """A documented response shape from tests/fixtures/helpscout (copied from ../shared)."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


def hs_settings(base_url: str = BASE, **changes: Any) -> HelpScoutSettings:
    values: dict[str, Any] = {"app_id": "fake-app-id", "app_secret": "fake-app-secret",
                              "mailbox_id": 42, "base_url": base_url}
    values.update(changes)
    return HelpScoutSettings(**values)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class MemoryCursors(dict[str, str]):
    def get_cursor(self, key: str) -> str | None:
        return self.get(key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
