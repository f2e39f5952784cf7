"""Client-side pacing for Help Scout's per-minute request budget.

Help Scout counts every request against an account-wide budget per window (a minute);
writes (POST/PUT/PATCH/DELETE) cost two. Responses carry `X-RateLimit-Limit-Minute`
and `X-RateLimit-Remaining-Minute`; a 429 adds `X-RateLimit-Retry-After` (seconds).

A token bucket sized from the advertised limit keeps our own traffic under it in *any*
window of that length (burst + rate x window <= limit - 2), so neither a fixed nor a
sliding server window ever answers 429 to us alone; it runs at ~94% of the limit. The
server's remaining count is authoritative when others share the account: below the
cost of the next request we wait for the window to reset (when the server said so,
otherwise one whole window after the answer that showed it, which is never early).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bot.clock import Clock

LIMIT = "X-RateLimit-Limit-Minute"
REMAINING = "X-RateLimit-Remaining-Minute"
RETRY_AFTER = "X-RateLimit-Retry-After"


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RateLimiter:
    def __init__(self, clock: Clock, window: float = 60.0, burst_fraction: float = 0.05) -> None:
        self.clock = clock
        self.window = window
        self.burst_fraction = burst_fraction
        self.limit: int | None = None
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self.seen_at: float | None = None
        self.capacity = 0.0
        self.rate = 0.0
        self.tokens = 0.0
        self.updated = 0.0
        self.waited = 0.0  # seconds spent pacing, for benchmarks
        self._lock = asyncio.Lock()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def acquire(self, cost: int) -> None:
        """Wait until a request of ``cost`` units fits the budget, then spend them."""
        async with self._lock:
            while (delay := self._delay(cost, self._now())) > 0:
                delay = max(delay, 0.001)  # clocks tick in microseconds: never sleep "zero"
                self.waited += delay
                await self.clock.sleep(delay)
            self.tokens -= cost
            if self.remaining is not None:
                self.remaining -= cost

    def _delay(self, cost: int, now: float) -> float:
        if self.remaining is not None and self.remaining < cost:
            reset = self.reset_at or (self.seen_at or now) + self.window
            if now < reset:
                return reset - now
            self.remaining = None  # a new window: unknown until the next answer says
            self.reset_at = None
        if self.limit is None:
            return 0.0  # the first answer teaches the limit
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= cost - 1e-9 else (cost - self.tokens) / self.rate

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the limit, the remaining budget and the reset time from an answer."""
        now = self._now()
        limit = header_number(headers, LIMIT)
        if limit is not None and limit > 0 and int(limit) != self.limit:
            self._size(int(limit), now)
        remaining = header_number(headers, REMAINING)
        if remaining is not None:
            self.remaining = remaining
            self.seen_at = now
        retry_after = header_number(headers, RETRY_AFTER)
        if retry_after is not None:
            self.reset_at = now + max(retry_after, 0.0)
            self.seen_at = now

    def _size(self, limit: int, now: float) -> None:
        first = self.limit is None
        self.limit = limit
        self.capacity = max(2.0, float(int(limit * self.burst_fraction)))
        self.rate = max(limit - self.capacity - 2.0, limit / 2) / self.window
        if first:
            self.tokens = self.capacity
            self.updated = now
        self.tokens = min(self.tokens, self.capacity)
