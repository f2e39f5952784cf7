"""Small rules files and messages for the rules tests."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bot.model import Attachment, Headers, Message
from bot.rules.load import load_ruleset
from bot.rules.ruleset import RuleSet

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)

SETTINGS = """\
settings:
  oncall: oncall@example.com
  owners: {billing: billing@example.com, deliverability: 4711}
"""


def write_rules(tmp: Path, body: str, *, settings: str = SETTINGS) -> Path:
    path = tmp / "rules.yaml"
    path.write_text(settings + textwrap.dedent(body))
    return path


def ruleset(tmp: Path, body: str, *, settings: str = SETTINGS) -> RuleSet:
    return load_ruleset(write_rules(tmp, body, settings=settings), TEMPLATES)


def message(subject: str = "", text: str = "", **kw: object) -> Message:
    base = Message(source="email", message_id="<m1@customer.example>",
                   from_addr="ann@customer.example", from_name="Ann Example", subject=subject,
                   text=text, to=("support@example.com",))
    headers = kw.pop("headers", None)
    if isinstance(headers, dict):
        kw["headers"] = Headers(tuple(headers.items()))
    attachments = kw.pop("attachments", None)
    if attachments is not None:
        kw["attachments"] = tuple(
            Attachment(n, t, 10) for n, t in attachments)  # type: ignore[attr-defined]
    return replace(base, **kw)  # type: ignore[arg-type]
