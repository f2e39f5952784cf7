"""The Help Scout fault suite, short: 429 storms, 5xx, cuts before and after writes, slow
answers and expiring tokens leave every conversation with exactly one reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.hsfault import run_helpscout_suite

pytestmark = pytest.mark.slow


def test_help_scout_faults_lose_no_reply_and_double_none(tmp_path: Path) -> None:
    report = run_helpscout_suite(conversations=30, fault_cycles=12, seed=5, workdir=tmp_path,
                                 faults_per_cycle=3)
    assert sum(report.injected.values()) > 10 and report.expirations > 0
    assert report.problems() == []
    assert report.count.answered == 30
