"""The run loop: read sources -> decide -> plan (one transaction) -> send -> fire due timers.

Push where possible (IMAP IDLE, Help Scout webhook), polling otherwise; between cycles it
sleeps until the earliest of: new mail, the next due timer, the next outbox retry, the
poll interval. SIGTERM/SIGINT stop taking new work, let the step in hand finish (each
step is a transaction, so stopping mid-step rolls it back) and return within seconds.
SIGHUP reloads rules.yaml and templates.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot import health, metrics
from bot.channels.base import Channel
from bot.clock import Clock
from bot.config import Settings
from bot.errors import AuthError, SourceError, StoreConflict
from bot.leases import Leases
from bot.lifecycle.followup import Lifecycle
from bot.lifecycle.report_schedule import maybe_send_report
from bot.model import Headers
from bot.outbox import Outbox, SentFolder
from bot.pipeline import Outcome, Pipeline
from bot.plan import Planner
from bot.rebuild.run import Rebuild
from bot.retention import maybe_prune
from bot.rules.team import Team
from bot.sources.base import Batch, Inbound, Rereads, Source
from bot.store import Store
from bot.store.database import Dialect
from bot.vocab import FOLLOWUP_TIMERS, ChannelName, HealthPart

log = structlog.get_logger(__name__)

AUTH_RETRY = timedelta(minutes=10)
# A cycle that raised (the file system or the network: EMFILE, a full disk) is retried
# after 1, 2, 4 ... seconds, at most this many; the worker never exits for it.
CYCLE_RETRY_MAX = 60.0
REBUILD_LEASE = "rebuild"  # one worker rebuilds an empty shared store; the others wait


OUTCOMES_KEPT = 1000  # per cycle report; `counts` covers every item


@dataclass
class CycleReport:
    """What one cycle did. A backlog of any size must not grow the worker's memory, so only
    the first ``OUTCOMES_KEPT`` outcomes are kept, without bodies or rule traces (a dry run,
    which prints them all, keeps every one whole); ``counts`` has every item by status."""

    outcomes: list[Outcome] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    outcomes_dropped: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    timers: list[tuple[str, int]] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Everything this cycle set out to do was done (`run --once` exits 0)."""
        return not self.source_errors and not self.retry and not self.failed

    def add(self, outcomes: list[Outcome], *, whole: bool = False) -> None:
        self.counts.update(o.status for o in outcomes)
        if whole:
            self.outcomes += outcomes
            return
        room = max(0, OUTCOMES_KEPT - len(self.outcomes))
        self.outcomes += [_slim(o) for o in outcomes[:room]]
        self.outcomes_dropped += max(0, len(outcomes) - room)


def mail_channel_name(channels: dict[str, Channel]) -> str | None:
    return next((c for c in (ChannelName.SMTP, ChannelName.MAILDIR) if c in channels), None)


def _slim(outcome: Outcome) -> Outcome:
    """The outcome without the message's bodies and the rule trace: who and what, not the
    mail."""
    message, decision = outcome.message, outcome.decision
    if message is not None:
        message = replace(message, raw=None, html=None, text="", headers=Headers())
    if decision is not None and decision.trace:
        decision = replace(decision, trace=())
    return replace(outcome, message=message, decision=decision)


class Worker:
    def __init__(self, settings: Settings, store: Store, clock: Clock, rules: Any,
                 sources: list[Source], channels: dict[str, Channel], *,
                 sent_folder: SentFolder | None = None, rebuild: Rebuild | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.rules = rules
        self.sources = sources
        self.channels = channels
        self.planner = Planner(settings, store, mail_channel=mail_channel_name(channels),
                               helpscout=ChannelName.HELPSCOUT in channels,
                               alert_webhook=ChannelName.WEBHOOK in channels)
        self.lifecycle = Lifecycle(store, self.planner)
        self.pipeline = Pipeline(settings, store, self.planner, self.lifecycle, rules)
        self.leases = Leases(store, clock, settings.lease_seconds)
        self.outbox = Outbox(store, channels, on_sent=self.lifecycle.message_sent,
                             sent_folder=sent_folder, holder=self.leases.holder)
        self._lease_keeper: asyncio.Task[None] | None = None
        self._announced = False  # the parts this worker runs with are recorded for `health`
        self.rebuild = rebuild
        self.stop_event = asyncio.Event()
        self._reload_requested = False
        self.cycle_retry_base = 1.0  # seconds before the first retry of a failed cycle
        self._paused_until: dict[str, datetime] = {}
        self._apply_rules()

    # -- rules --------------------------------------------------------------------------
    def _apply_rules(self) -> None:
        """Loop-safety settings follow the rules in force (they can change on reload)."""
        ruleset, _ = self.rules.current
        s = ruleset.settings
        self.planner.team = Team.of(s, self.settings.from_addr)
        self.planner.cap = s.per_recipient_per_day

    def request_reload(self) -> None:
        self._reload_requested = True
        self.stop_waiting()

    def _maybe_reload(self) -> None:
        forced, self._reload_requested = self._reload_requested, False
        if self.rules.maybe_reload(force=forced):
            self._apply_rules()

    # -- one cycle ----------------------------------------------------------------------
    async def cycle(self) -> CycleReport:
        """One complete pass: drain every source, fire due timers, send everything due."""
        report = CycleReport()
        self._keep_leases()
        if not self._announced:
            health.configured(self.store, [s.name for s in self.sources], list(self.channels))
            self._announced = True
        waiting = await self._rebuild_if_empty()
        # every cycle: another worker on the same database may have died with rows in flight
        await self.outbox.recover(self.clock.now())
        self._maybe_reload()
        self._retry_quarantined(report)
        for source in self.sources:
            if self.stop_event.is_set():
                break
            if source.name in waiting:
                report.source_errors[source.name] = waiting[source.name]
                health.failed(self.store, HealthPart.SOURCE, source.name, self.clock.now(),
                              waiting[source.name])
                continue
            await self._drain(source, report)
        if not self.stop_event.is_set():
            ruleset, templates = self.rules.current
            await self._reread_before_timers(report)
            try:
                report.timers = self.lifecycle.fire_due(self.clock.now(), ruleset, templates)
            except StoreConflict as exc:  # that timer's transaction rolled back; next cycle
                log.warning("timer step met another worker's; retried next cycle", error=str(exc))
            if maybe_send_report(self.store, self.planner, self.clock.now(), ruleset, templates):
                report.timers.append(("report", 0))
            await self._flush(report)
            maybe_prune(self.store, self.clock.now(), self.settings.retention_days)
        now = self.clock.now()
        health.rules_reloaded(self.store, self.rules.last_reload_ok, self.rules.last_errors, now)
        with self.store.transaction():
            self.store.set_meta(health.LAST_CYCLE, now.isoformat())
            if report.ok:  # the heartbeat says "a cycle did its job", not "the process is alive"
                self.store.set_meta(health.HEARTBEAT, now.isoformat())
        metrics.observe_cycle(report, now, health.metric_states(self.store, HealthPart.SOURCE),
                              health.metric_states(self.store, HealthPart.CHANNEL),
                              self.rules.last_reload_ok, self.rules.reloads_failed, report.ok)
        return report

    async def send_waiting(self) -> CycleReport:
        """`supportbot outbox retry`: what waits for a retry goes out now; nothing is read."""
        report = CycleReport()
        self._keep_leases()
        self.store.retry_pending_now(self.clock.now())
        await self._flush(report)
        return report

    def _keep_leases(self) -> None:
        """The first cycle announces this worker; a task then renews its leases meanwhile
        (a long backlog or a long wait must not let them run out)."""
        if self._lease_keeper is not None:
            return
        self.leases.start(sole_worker=self.store.dialect == Dialect.SQLITE)
        self._lease_keeper = asyncio.create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.leases.renew_every)
            try:
                self.leases.renew()
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried; the lease outlives it
                log.warning("lease renewal failed", error=str(exc))

    @staticmethod
    def _lease_name(source: Source) -> str:
        return f"source:{source.cursor_key}"

    async def _rebuild_if_empty(self) -> dict[str, str]:
        """An empty store first learns what the mailbox remembers: the sources (by name)
        whose history could not be read yet, which this cycle must not read."""
        if self.rebuild is None:
            return {}
        return await self.rebuild.gate(self.store, self.clock.now(), self.rules.current[0],
                                       lambda: self.leases.hold(REBUILD_LEASE))

    async def _drain(self, source: Source, report: CycleReport) -> None:
        if not self.leases.hold(self._lease_name(source)):
            return  # another worker reads this source now
        paused = self._paused_until.get(source.name)
        if paused and self.clock.now() < paused:
            report.source_errors[source.name] = "paused after an authentication failure"
            return
        try:
            async for batch in source.batches():
                report.add(self.pipeline.ingest_batch(source.cursor_key, batch, self.clock.now()),
                           whole=self.settings.dry_run)
                await self._flush(report)  # answer the first batch before reading the next
                if self.stop_event.is_set():
                    break
            health.succeeded(self.store, HealthPart.SOURCE, source.name, self.clock.now())
        except AuthError as exc:
            self._paused_until[source.name] = self.clock.now() + AUTH_RETRY
            report.source_errors[source.name] = str(exc)
            health.failed(self.store, HealthPart.SOURCE, source.name, self.clock.now(), str(exc))
            log.error("source authentication failed; retrying in 10 minutes",
                      source=source.name, error=str(exc))
        except SourceError as exc:
            report.source_errors[source.name] = str(exc)
            health.failed(self.store, HealthPart.SOURCE, source.name, self.clock.now(), str(exc))
            log.error("source unreachable", source=source.name, error=str(exc))
        except StoreConflict as exc:
            # another worker recorded these items first (its lease and ours overlapped): the
            # batch rolled back whole, and the unique keys kept every ticket answered once
            log.warning("batch met another worker's; read again next cycle",
                        source=source.name, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one source's failure must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            report.source_errors[source.name] = error
            health.failed(self.store, HealthPart.SOURCE, source.name, self.clock.now(), error)
            log.error("source failed; next cycle tries again", source=source.name, error=error)

    async def _reread_before_timers(self, report: CycleReport) -> None:
        """Help Scout: before a check-in or closure, its conversation is read once more, so
        an agent's reply, close, spam mark or assignment since the last poll cancels it."""
        conversations: set[int] = set()
        for timer in self.store.due_timers(self.clock.now()):
            ticket = self.store.get_ticket(timer.ticket_id) \
                if timer.kind in FOLLOWUP_TIMERS else None
            if ticket is not None and ticket.conversation_id is not None:
                conversations.add(ticket.conversation_id)
        for source in self.sources:
            if not conversations or not isinstance(source, Rereads) \
                    or self._lease_name(source) not in self.leases.held:
                continue
            try:
                async for batch in source.reread(sorted(conversations)):
                    report.add(self.pipeline.ingest_batch(source.cursor_key, batch,
                                                          self.clock.now()),
                               whole=self.settings.dry_run)
            except (AuthError, SourceError, StoreConflict) as exc:  # the channel still looks
                log.warning("could not read conversations again before their timers",
                            source=source.name, error=str(exc))

    def _retry_quarantined(self, report: CycleReport) -> None:
        """Messages an operator handed back (`supportbot quarantine retry ID`)."""
        for row in self.store.quarantined("retry"):
            with self.store.transaction():
                self.store.forget_ref(row.ref)
                self.store.set_quarantine_status(row.id, "released")
            item = Inbound(source=row.source, ref=row.ref, raw=row.raw,
                           received_at=self.clock.now())
            report.add(self.pipeline.ingest_batch(
                "quarantine", Batch(items=[item]), self.clock.now()), whole=self.settings.dry_run)

    async def _flush(self, report: CycleReport) -> None:
        result = await self.outbox.flush(self.clock.now(), stop=self.stop_event)
        report.sent += result.sent
        report.failed += result.failed
        report.retry += result.retry

    # -- the loop -----------------------------------------------------------------------
    async def run_forever(self) -> None:
        self._install_signals()
        log.info("worker started", sources=[s.name for s in self.sources],
                 channels=sorted(self.channels), dry_run=self.settings.dry_run)
        failures = 0
        try:
            while not self.stop_event.is_set():
                try:
                    report = await self.cycle()
                except Exception as exc:  # noqa: BLE001 - only a signal stops the worker
                    failures += 1
                    delay = min(CYCLE_RETRY_MAX, self.cycle_retry_base * 2.0 ** (failures - 1))
                    log.error("cycle failed; retrying", error=f"{type(exc).__name__}: {exc}",
                              failures=failures, retry_in=delay)
                    await self._pause(delay)
                    continue
                failures = 0
                if self.stop_event.is_set():
                    break
                await self._wait(self._next_wake_seconds(report))
        finally:
            log.info("worker stopped")

    async def _pause(self, seconds: float) -> None:
        """Back off after a failed cycle; a stop request ends the pause at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), seconds)

    def _next_wake_seconds(self, report: CycleReport) -> float:
        now = self.clock.now()
        wake = self.settings.poll_seconds
        if any(self._lease_name(s) not in self.leases.held for s in self.sources):
            wake = min(wake, self.leases.check_every)
        for due in (self.store.next_timer_due(), self.store.next_outbox_attempt()):
            if due is not None:
                wake = min(wake, max((due - now).total_seconds(), 0.0))
        return max(wake, 0.05)

    async def _wait(self, timeout: float) -> None:
        self._wait_tasks = [asyncio.create_task(s.wait(timeout)) for s in self.sources
                            if self._lease_name(s) in self.leases.held]
        stopper = asyncio.create_task(self.stop_event.wait())
        sleeper = asyncio.create_task(asyncio.sleep(timeout))
        tasks = [*self._wait_tasks, stopper, sleeper]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop_waiting(self) -> None:
        for task in getattr(self, "_wait_tasks", []):
            task.cancel()

    def stop(self) -> None:
        if not self.stop_event.is_set():
            log.info("stopping: finishing the step in hand")
        self.stop_event.set()
        self.stop_waiting()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    async def aclose(self) -> None:
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            await asyncio.gather(self._lease_keeper, return_exceptions=True)
            self._lease_keeper = None
            try:
                self.leases.release()
            except Exception as exc:  # noqa: BLE001 - they run out by themselves anyway
                log.warning("could not release leases", error=str(exc))
        for source in self.sources:
            try:
                await source.aclose()
            except Exception as exc:  # noqa: BLE001 - one failed close must not skip the others
                log.warning("source close failed", source=source.name, error=str(exc))
        for channel in self.channels.values():
            try:
                await channel.aclose()
            except Exception as exc:  # noqa: BLE001 - one failed close must not skip the others
                log.warning("channel close failed", channel=channel.name, error=str(exc))
