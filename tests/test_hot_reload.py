"""Hot reload in the worker: a valid edit takes effect at the next cycle; a broken one never
does."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.runtime import open_worker
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_edits_to_rules_apply_live_and_broken_edits_are_rejected(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    original = (REPO / "rules.yaml").read_text()
    rules.write_text(original)
    settings = embedded_settings(tmp_path, SUPPORTBOT_RULES=str(rules))
    clock = FakeClock(T0)
    question = dict(subject="Do you offer onboarding sessions?",
                    body="We would love a short onboarding session for new agents in December.")

    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            deliver(tmp_path / "inbox", make_mail(message_id="<a@x>", **question), clock.now())
            await worker.cycle()
            # a broken edit: the old rules stay in force
            rules.write_text(original + "\n  - name: broken\n    when: {subject: {matches: '('}}\n")
            _bump(rules)
            clock.advance(timedelta(minutes=1))
            deliver(tmp_path / "inbox", make_mail(message_id="<b@x>", **question), clock.now())
            await worker.cycle()
            assert worker.rules.last_reload_ok is False
            # a valid edit: everything about onboarding is now forwarded to a trainer
            rules.write_text(original.replace("rules:\n", "rules:\n  - name: onboarding\n"
                             "    when: {subject: {contains: onboarding}}\n"
                             "    action: forward\n    to: trainer@example.com\n", 1))
            _bump(rules)
            clock.advance(timedelta(minutes=1))
            deliver(tmp_path / "inbox", make_mail(message_id="<c@x>", **question), clock.now())
            await worker.cycle()
            assert worker.rules.last_reload_ok is True
    asyncio.run(go())
    sent = outbox_mail(tmp_path / "outbox")
    assert [m.kind for m in sent if m.ticket in ("1", "2")] == ["acknowledge", "acknowledge"]
    assert sorted(m.kind for m in sent if m.ticket == "3") == ["forward", "forwarded"]
    assert any(m.to == "trainer@example.com" for m in sent if m.ticket == "3")


def _bump(path: Path) -> None:
    """File systems with coarse mtimes: make sure the change is visible."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
