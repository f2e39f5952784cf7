"""The messages the bot sends, from `templates/`: Jinja2, sandboxed, strict.

A template ``name`` is ``name.txt`` (required) plus an optional ``name.html`` alternative;
files starting with ``_`` are partials for ``{% include %}``. The folder is read once into
memory, so a `Templates` object is an immutable snapshot: a half-edited file on disk can
never reach a requester, and hot reload swaps whole snapshots after `check()` passes.

Sandboxed because ops people edit templates, and bounded (`bot.template_budget`: numbers,
repetition, output size, a render deadline) so that a mistake costs a failed `check`;
``StrictUndefined`` because a typo in a variable must fail `supportbot check`, not send
"Hi ," to a customer. Autoescape only for
``.html``. The context variables are listed in `sample_context()` and in docs/rules.md.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError
from jinja2.environment import Environment

from bot.errors import RulesError
from bot.template_budget import RENDER_SECONDS, BoundedSandbox, bounded_output, deadline
from bot.vocab import MessageKind, Priority

SUFFIXES = (".txt", ".html")


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str | None = None


class _SnapshotLoader(BaseLoader):
    """Serves the in-memory copy, naming the real file so errors point at it."""

    def __init__(self, directory: Path, sources: Mapping[str, str]) -> None:
        self.directory = directory
        self.sources = sources

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise TemplateNotFound(template)
        return self.sources[template], str(self.directory / template), lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def sample_context(**extra: Any) -> dict[str, Any]:
    """Every variable a template may use, with realistic values: `check` renders with it."""
    ctx: dict[str, Any] = {
        "name": "Dana",  # the requester's first name, or "there"
        "requester": "dana@whitfieldhomes.example",
        "requester_name": "Dana Whitfield",
        "ticket_id": 42,
        "ticket_ref": "[#42]",
        "subject": "My emails aren't sending!!",
        "owner": "deliverability@example.com",  # where the ticket was forwarded, or ""
        "owner_name": "our deliverability team",
        "topic": "deliverability",
        "priority": Priority.CRITICAL,
        "rule": "deliverability",
        "team_name": "Acme Support",
        "signature": "The Acme Support team",
        "original_text": "Since about 8am none of my emails to clients are going out.",
        "check_in_after": "1 day",
        "close_after": "1 day",
        "kind": MessageKind.ACKNOWLEDGE,
        # what is still missing from a problem report (bot.rules.details), for ask_again
        "missing": ["your browser or device", "since when it happens, and whether every time"],
        # who wrote the message a relay passes on, and their own words (quotes removed)
        "sender": "dana@whitfieldhomes.example",
        "sender_name": "Dana Whitfield",
        "words": "It happens on every send since this morning.",
        "report": {
            "days": 7, "tickets": 12,
            "by_topic": {"deliverability": 4, "billing": 3, "other": 5},
            "by_priority": {"critical": 4, "normal": 8},
            "by_state": {"closed": 7, "waiting": 5},
            "spikes": [{"topic": "deliverability", "count": 4,
                        "message": "4 deliverability tickets in 2 hours - systemic?"}],
        },
    }
    ctx.update(extra)
    return ctx


# Variables set only for some sends; templates test them with `is defined`.
OPTIONAL_SAMPLES: tuple[dict[str, Any], ...] = (
    {"reopened": True},
    {"is_reply": True},
    {"undeliverable": "dana@whitfieldhomes.example"},
)


def _template_line(exc: BaseException, filename: str) -> int:
    """The template line of a render error, from Jinja's rewritten traceback."""
    line = getattr(exc, "lineno", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename and frame.lineno:
            line = frame.lineno
    return int(line or 1)


class Templates:
    """A validated-on-demand snapshot of a templates folder."""

    def __init__(self, directory: Path, *, render_seconds: float = RENDER_SECONDS) -> None:
        self.directory = Path(directory)
        self.render_seconds = render_seconds
        if not self.directory.is_dir():
            raise RulesError([f"{self.directory}: templates folder not found"])
        self._problems: list[str] = []
        sources: dict[str, str] = {}
        for path in sorted(self.directory.iterdir()):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            try:
                sources[path.name] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                self._problems.append(f"{path}:1: not UTF-8 text ({exc.reason})")
        self._sources = sources
        self._checked: list[str] | None = None
        self.env = BoundedSandbox(
            loader=_SnapshotLoader(self.directory, sources),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name) and str(name).endswith(".html"),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        digest = hashlib.sha256()
        for name in sorted(sources):
            digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
        self.digest = digest.hexdigest()

    def names(self) -> list[str]:
        """Template names (``acknowledge``, ``answer-password-reset``...), partials excluded."""
        return sorted(n[:-4] for n in self._sources if n.endswith(".txt") and not n.startswith("_"))

    def has(self, name: str) -> bool:
        return f"{name}.txt" in self._sources

    def has_html(self, name: str) -> bool:
        return f"{name}.html" in self._sources

    def render(self, name: str, context: Mapping[str, object]) -> Rendered:
        """Render ``name.txt`` (and ``name.html`` if present); RulesError names file and line."""
        if not self.has(name):
            raise RulesError([f"{self.directory / (name + '.txt')}:1: template '{name}' not found"])
        text = self._render_file(f"{name}.txt", context)
        html = self._render_file(f"{name}.html", context) if self.has_html(name) else None
        return Rendered(text=text, html=html)

    def _render_file(self, filename: str, context: Mapping[str, object]) -> str:
        path = str(self.directory / filename)
        try:
            template = self.env.get_template(filename)
            with deadline(self.render_seconds):
                return bounded_output(template.generate(dict(context)))
        except TemplateSyntaxError as exc:
            raise RulesError([f"{path}:{exc.lineno}: {exc.message}"]) from None
        # Any failure of an ops-edited template is a template error.
        except Exception as exc:  # noqa: BLE001
            raise RulesError([f"{path}:{_template_line(exc, path)}: {type(exc).__name__}: "
                              f"{exc}"]) from None

    def check(self) -> list[str]:
        """Compile and render every template with sample data; `file:line: message` errors.

        Computed once: the snapshot never changes."""
        if self._checked is None:
            self._checked = self._check()
        return list(self._checked)

    def _check(self) -> list[str]:
        errors = list(self._problems)
        for filename in sorted(self._sources):
            path = self.directory / filename
            stem = filename.rsplit(".", 1)[0]
            if filename.endswith(".html") and not stem.startswith("_") and not self.has(stem):
                errors.append(f"{path}:1: HTML alternative without a plain-text {stem}.txt")
            if filename.startswith("_"):
                continue
            for extra in ({}, *OPTIONAL_SAMPLES):
                try:
                    text = self._render_file(filename, sample_context(**extra))
                except RulesError as exc:
                    errors.extend(e for e in exc.errors if e not in errors)
                    break
                if not text.strip():
                    errors.append(f"{path}:1: renders to an empty message")
                    break
        return errors
