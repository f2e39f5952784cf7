"""Driving an in-process worker through many cycles, the way a supervisor would.

An exception that escapes `Worker.cycle()` is a defect (the worker must catch and log
what a network or an API does to it): it is recorded, never swallowed silently. A cycle
that does not finish in time is cancelled, recorded as hung, and the worker restarted
(rows it left `sending` are recovered by the new worker, as after a crash).
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import structlog

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.worker import Worker


@contextmanager
def logs_to(path: Path, level: str = "info") -> Iterator[Path]:
    """Send the worker's structlog events (JSON lines) to ``path`` for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    levels = {"debug": 10, "info": 20, "warning": 30, "error": 40}
    with path.open("a") as out:
        structlog.configure(
            processors=[structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.format_exc_info,
                        structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(levels[level]),
            logger_factory=structlog.PrintLoggerFactory(file=out),
            cache_logger_on_first_use=False)
        try:
            yield path
        finally:
            structlog.reset_defaults()


@contextmanager
def quiet_logs(level: int = 50) -> Iterator[None]:
    """Only events at ``level`` and above, to stderr, for the duration; defaults after.

    Starts from structlog's defaults: a command run earlier (in tests, `main([...])`)
    may have bound it to a stream that is closed by now."""
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    try:
        yield
    finally:
        structlog.reset_defaults()


def errors_in(path: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    with path.open(errors="replace") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("level") in {"error", "critical"}:
                found[str(event.get("event"))] += 1
    return found


@dataclass
class DriveStats:
    cycles: int = 0
    raised: list[str] = field(default_factory=list)  # exceptions that escaped cycle()
    hung: int = 0
    restarts: int = 0

    def problems(self) -> list[str]:
        out = [f"cycle raised {e}" for e in self.raised]
        if self.hung:
            out.append(f"{self.hung} cycle(s) hung")
        return out


class Driver:
    """Owns one worker at a time; ``cycle()`` runs one guarded cycle."""

    def __init__(self, settings: Settings, clock: FakeClock, *, cycle_timeout: float) -> None:
        self.settings = settings
        self.clock = clock
        self.cycle_timeout = cycle_timeout
        self.stats = DriveStats()
        self._stack: AsyncExitStack | None = None
        self.worker: Worker | None = None

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _open(self) -> None:
        self._stack = AsyncExitStack()
        self.worker = await self._stack.enter_async_context(
            open_worker(self.settings, clock=self.clock))

    async def _close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self.worker = self._stack, None, None
            try:
                await stack.aclose()
            except Exception as exc:  # noqa: BLE001 - recorded as a defect, not hidden
                self.stats.raised.append(f"closing the worker: {_describe(exc)}")

    async def cycle(self, advance: timedelta) -> Any:
        self.clock.advance(advance)
        self.stats.cycles += 1
        assert self.worker is not None
        try:
            return await asyncio.wait_for(self.worker.cycle(), self.cycle_timeout)
        except TimeoutError:
            self.stats.hung += 1
        except Exception as exc:  # noqa: BLE001 - an escaped exception is the defect we count
            self.stats.raised.append(_describe(exc))
        await self._close()  # what a supervisor does with a worker that failed: restart it
        await self._open()
        self.stats.restarts += 1
        return None

    async def until(self, done: Callable[[], Awaitable[bool] | bool], *, advance: timedelta,
                    max_cycles: int, min_cycles: int = 1) -> int:
        """Clean cycles until ``done()`` holds (at least ``min_cycles``); returns how many."""
        for n in range(1, max_cycles + 1):
            await self.cycle(advance)
            result = done()
            if not isinstance(result, bool):
                result = await result
            if n >= min_cycles and result:
                return n
        return max_cycles


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" at {where[0].filename.rsplit('/', 2)[-1]}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"
