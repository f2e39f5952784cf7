"""The hostile mailbox in CI: each poison between two normal tickets, one cycle each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.mailbox import POISONS, run_mailbox

NOT_MAIL = {"not mail: NUL bytes", "not mail: empty"}


@pytest.mark.slow
def test_every_poison_is_handled_alone_and_every_normal_ticket_answered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_mailbox(tmp_path)
    with capsys.disabled():
        print()
        for key, value in report.rows():
            print(f"  {key:<44} {value}")
    assert report.problems() == []
    assert report.uptime_cycles == len(POISONS) + 1
    by_name = {o.name: o for o in report.outcomes}
    for name in NOT_MAIL:
        assert by_name[name].status == "quarantined" and by_name[name].reason
    # a forged In-Reply-To opens the sender's own ticket; it never joins Nora's
    assert by_name["hijack: forged In-Reply-To"].status == "ticket"
    # hostile ids, markup and headers cost nobody an answer: the poison is a ticket too
    for name, outcome in by_name.items():
        if name.startswith(("html:", "from:", "message-id:", "references:", "headers:",
                            "mime:", "bytes:")):
            assert outcome.status == "ticket", (name, outcome)
