"""Random and mangled bytes through the whole worker never raise and are never skipped;
the shipped rules.yaml, mangled, loads or fails with `file:line` errors.

(Parser + decide over raw bytes and random rules.yaml text are fuzzed in tests/mail and
tests/rules; this is the same idea one level up: Maildir -> store -> rules -> outbox.)"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.templates import Templates
from tests.helpers import REPO
from tests.reliability.fuzz import RAW_MAIL, RULES_TEXT, pipeline_once, rules_once
from tests.reliability.inprocess import quiet_logs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RAW_MAIL, min_size=1, max_size=6))
def test_no_input_makes_the_worker_raise_or_skip_a_message(raws: list[bytes]) -> None:
    with quiet_logs():
        pipeline_once(raws)


TEMPLATES = Templates(REPO / "templates")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RULES_TEXT)
def test_a_mutated_rules_yaml_loads_or_fails_with_file_and_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rules_once(text, Path(tmp), TEMPLATES)
