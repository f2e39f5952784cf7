"""Paths to the hand-written mail fixtures and a loader that parses them."""

from __future__ import annotations

from pathlib import Path

from bot.mail.parse import parse_message
from bot.model import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
OWN = frozenset({"support@example.com"})
OWN_DOMAIN = "example.com"


def fixture(name: str) -> Message:
    """Parse ``tests/fixtures/mail/<name>``."""
    return parse_message((FIXTURES / name).read_bytes())


def fixture_names(folder: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / folder).glob("*.eml"))
