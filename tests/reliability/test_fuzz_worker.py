"""Random and mangled bytes through the whole worker never raise and are never skipped.

(Parser + decide over raw bytes and rules.yaml text are fuzzed in tests/rules; this is
the same idea one level up: Maildir -> store -> rules -> outbox.)"""

from __future__ import annotations

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.fuzz import RAW_MAIL, pipeline_once


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RAW_MAIL, min_size=1, max_size=6))
def test_no_input_makes_the_worker_raise_or_skip_a_message(raws: list[bytes]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        pipeline_once(raws)
    finally:
        structlog.reset_defaults()
