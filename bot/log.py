"""structlog set-up: JSON lines for machines, readable lines on a terminal, always stderr.

Stdout belongs to commands' own output (`--json`). Configured secrets are redacted from
every event, wherever they appear, so a password in an error message never reaches a log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class Redactor:
    """A processor replacing each known secret with '***' in every string value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, "***")
            return value
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, BaseException):
            return self._clean(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        if not self.secrets:
            return event
        return {k: self._clean(v) for k, v in event.items()}


class _Stderr:
    """Whatever sys.stderr is at write time (tests swap it; a bound stream may be closed)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "auto", level: str = "info", secrets: Iterable[str] = ()) -> None:
    """Set up structlog once per process; safe to call again (tests, reconfiguration)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
        Redactor(secrets),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


@contextmanager
def to_file(path: Path, level: str = "info") -> Iterator[None]:
    """JSON lines to ``path`` for a while, then the previous set-up again (the demo's story
    owns the terminal; its worker's log, on the real clock, is kept beside it)."""
    saved = structlog.get_config()
    with path.open("a", encoding="utf-8") as stream:
        structlog.configure(
            processors=[*saved["processors"][:-1], structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
            logger_factory=structlog.PrintLoggerFactory(file=stream))
        try:
            yield
        finally:
            structlog.configure(**saved)
