"""One item fails alone: a bad message, timer or file is recorded against itself, the rest go on."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock
from bot.commands.status import collect
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from bot.worker import CycleReport
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def cycle(settings: Settings, clock: FakeClock) -> CycleReport:
    async def go() -> CycleReport:
        async with open_worker(settings, clock=clock) as worker:
            return await worker.cycle()
    return asyncio.run(go())


def test_quarantine_retry_does_not_break_later_cycles(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    clock = FakeClock(T0)
    deliver(tmp_path / "inbox", b"\x00\x01\x02 not an email at all", T0)
    cycle(settings, clock)
    store = Store(settings.state)
    [held] = store.quarantined()
    with store.transaction():
        store.set_quarantine_status(held.id, "retry")
    store.close()
    deliver(tmp_path / "inbox", make_mail(subject="Exporting contacts", body="How do I export "
                                          "my contacts to a CSV file from the settings page?"), T0)
    clock.advance(60)
    report = cycle(settings, clock)
    assert sorted(o.status for o in report.outcomes) == ["quarantined", "ticket"]
    clock.advance(60)
    cycle(settings, clock)  # and the cycle after it is fine too
    assert [s.kind for s in outbox_mail(tmp_path / "outbox")] == ["acknowledge"]


def test_a_check_in_template_failing_for_one_name_fails_that_timer_alone(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    check_in = templates / "check_in.txt"
    check_in.write_text("{% if name == 'Zed' %}{{ 1 // 0 }}{% endif %}" + check_in.read_text())
    settings = embedded_settings(tmp_path, SUPPORTBOT_TEMPLATES=str(templates))
    clock = FakeClock(T0)
    for n, sender in enumerate(["Zed Zulu <zed@one.example>", "Ann Able <ann@two.example>"]):
        deliver(tmp_path / "inbox", make_mail(sender=sender, subject="help", body="help please",
                                              message_id=f"<h{n}@x.example>"), T0)
    cycle(settings, clock)
    clock.advance(25 * 3600)
    report = cycle(settings, clock)  # must not raise
    assert ("check_in", 2) in report.timers
    kinds = [(s.to, s.kind) for s in outbox_mail(tmp_path / "outbox")]
    assert ("ann@two.example", "check_in") in kinds
    assert ("zed@one.example", "check_in") not in kinds
    store = Store(settings.state)
    failed = collect(store)["timers_failed"]
    assert [(f["ticket"], f["kind"]) for f in failed] == [(1, "check_in")]
    assert "ZeroDivisionError" in failed[0]["reason"]
    clock.advance(25 * 3600)
    cycle(settings, clock)  # Ann's closure still happens
    assert ("ann@two.example", "closure") in [(s.to, s.kind)
                                              for s in outbox_mail(tmp_path / "outbox")]


def test_an_unreadable_maildir_file_is_quarantined_and_the_rest_answered(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    deliver(tmp_path / "inbox", make_mail(message_id="<fine@x.example>", subject="Export",
                                          body="How do I export my contacts to a CSV file?"), T0)
    # a regular file that no one, root included, can read: every read() is an I/O error
    (tmp_path / "inbox" / "new" / "1700000000.unreadable.host").symlink_to("/proc/self/mem")
    report = cycle(settings, FakeClock(T0))
    assert sorted(o.status for o in report.outcomes) == ["quarantined", "ticket"]
    [held] = Store(settings.state).quarantined()
    assert held.ref == "maildir:1700000000.unreadable.host"
    assert "unreadable" in held.error
    assert [s.kind for s in outbox_mail(tmp_path / "outbox")] == ["acknowledge"]
    report = cycle(settings, FakeClock(T0 + timedelta(minutes=1)))
    assert report.outcomes == []  # recorded once, not retried on every cycle


def test_a_cycle_that_raises_is_retried_and_the_worker_stays_up(tmp_path: Path) -> None:
    """EMFILE or a full disk in the middle of a cycle: logged, backed off, tried again."""
    settings = embedded_settings(tmp_path, SUPPORTBOT_POLL_SECONDS="0.05")
    deliver(tmp_path / "inbox", make_mail(subject="Export", body="How do I export my "
                                          "contacts to a CSV file from the settings?"), T0)

    async def go() -> int:
        async with open_worker(settings, clock=FakeClock(T0)) as worker:
            real = worker.lifecycle.fire_due
            calls = 0

            def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                if calls <= 2:
                    raise OSError(24, "Too many open files")
                worker.stop()
                return real(*args, **kwargs)

            worker.lifecycle.fire_due = flaky  # type: ignore[method-assign]
            worker.cycle_retry_base = 0.01
            await worker.run_forever()
            return calls
    assert asyncio.run(go()) == 3
    assert [s.kind for s in outbox_mail(tmp_path / "outbox")] == ["acknowledge"]
