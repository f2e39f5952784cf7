"""The pacer keeps the bot under Help Scout's budget in any window, at most a few % below it."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.clock import FakeClock
from bot.helpscout.ratelimit import RateLimiter
from tests.helpscout.conftest import run


@pytest.mark.parametrize("phase", [0.0, 7.3, 29.9, 59.99])
@pytest.mark.parametrize("limit", [200, 400])
def test_a_fixed_window_server_never_sees_more_than_its_limit(clock: FakeClock, phase: float,
                                                               limit: int) -> None:
    window = 60.0
    limiter = RateLimiter(clock, window)
    used: Counter[int] = Counter()
    start = clock.now().timestamp()

    async def go() -> None:
        for n in range(3 * limit):
            cost = 2 if n % 3 == 0 else 1  # a mix of reads and writes
            await limiter.acquire(cost)
            now = clock.now().timestamp()
            slot = int((now - start + phase) // window)
            used[slot] += cost
            assert used[slot] <= limit, f"window {slot} got {used[slot]} units"
            limiter.observe({"X-RateLimit-Limit-Minute": str(limit),
                             "X-RateLimit-Remaining-Minute": str(limit - used[slot])})

    run(go())
    full = [units for slot, units in used.items() if 0 < slot < max(used)]
    assert full and min(full) >= 0.9 * limit  # and it uses most of what it may


def test_someone_elses_traffic_makes_it_wait_for_the_reset(clock: FakeClock) -> None:
    limiter = RateLimiter(clock, 60.0)
    start = clock.now()

    async def go() -> None:
        await limiter.acquire(1)
        limiter.observe({"X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "0",
                         "X-RateLimit-Retry-After": "12"})
        await limiter.acquire(1)

    run(go())
    assert (clock.now() - start).total_seconds() >= 12
