"""Can the bot do its job? The one judgement `health`, `status` and the metrics all share.

A live process is not enough: with a wrong IMAP password or SMTP refusing, the worker loops
happily and answers nobody. So the worker records, as it works, each source's and channel's
last success and failure (one meta row ``health:<part>:<name>``, written in the transaction
of the work itself), and `assess` reads them, with the last rules reload, the timers that
should have fired and the heartbeat, into per-part findings and one verdict.

``status`` calls a part *degraded* as soon as it fails; ``health`` exits 1 once a source or
channel has been failing longer than ``SUPPORTBOT_HEALTH_FAILING_SECONDS`` (a blip is not
an outage), timers are overdue by that long, or at once when a rules reload was rejected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from bot.clock import to_iso
from bot.store import Store
from bot.vocab import HealthPart

_PREFIX = "health:"
RULES_OK, RULES_ERRORS = "rules:last_reload_ok", "rules:last_errors"
RULES_AT = "rules:last_reload_at"
HEARTBEAT = "heartbeat"  # the last cycle that did everything it set out to do
LAST_CYCLE = "last_cycle"  # the last cycle completed at all: a worker is alive
CONFIGURED = "health:configured"  # the sources and channels the last worker ran with


# -- what the worker records ----------------------------------------------------------------
@dataclass(frozen=True)
class PartRecord:
    """The track record of one source or channel."""

    last_success: str | None = None  # ISO times, as everything stored
    last_failure: str | None = None
    failing_since: str | None = None  # set while its latest attempt failed
    error: str | None = None  # the latest failure's reason (kept after recovery, for status)


def _key(part: HealthPart, name: str) -> str:
    return f"{_PREFIX}{part}:{name}"


def read(store: Store, part: HealthPart, name: str) -> PartRecord:
    raw = store.get_meta(_key(part, name))
    return PartRecord(**json.loads(raw)) if raw else PartRecord()


def _write(store: Store, part: HealthPart, name: str, record: PartRecord) -> None:
    with store.transaction():
        store.set_meta(_key(part, name), json.dumps(asdict(record)))


def succeeded(store: Store, part: HealthPart, name: str, now: datetime) -> None:
    """It worked: a read or poll completed, a message was accepted."""
    record = read(store, part, name)
    if record.failing_since is None and record.last_success == now.isoformat():
        return  # a batch of sends in one flush need not rewrite the same row
    _write(store, part, name, replace(record, last_success=now.isoformat(), failing_since=None))


def failed(store: Store, part: HealthPart, name: str, now: datetime, error: str, *,
           failing: bool = True) -> None:
    """It did not work. ``failing=False``: the part answered, one item was refused (a 5xx for
    one recipient): a failure worth showing, not an outage."""
    record = read(store, part, name)
    since = (record.failing_since or now.isoformat()) if failing else record.failing_since
    _write(store, part, name, replace(record, last_failure=now.isoformat(), error=error,
                                      failing_since=since))


def records(store: Store, part: HealthPart) -> dict[str, PartRecord]:
    prefix = f"{_PREFIX}{part}:"
    return {key[len(prefix):]: PartRecord(**json.loads(value))
            for key, value in sorted(store.meta_items(prefix).items())}


def metric_states(store: Store, part: HealthPart) -> dict[str, tuple[float | None, bool]]:
    """(last success as a Unix time, failing now) per name, as bot.metrics takes them."""
    return {name: (datetime.fromisoformat(r.last_success).timestamp() if r.last_success
                   else None, r.failing_since is not None)
            for name, r in records(store, part).items()}


def rules_reloaded(store: Store, ok: bool, errors: list[str], now: datetime) -> None:
    """The outcome of the last reload; a rejected one stays until a reload succeeds."""
    with store.transaction():
        if store.get_meta(RULES_OK) != ("1" if ok else "0"):
            store.set_meta(RULES_AT, now.isoformat())
        store.set_meta(RULES_OK, "1" if ok else "0")
        store.set_meta(RULES_ERRORS, json.dumps(errors))


# -- the judgement ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One part's state in words: ``line`` is what `health` prints and `status` leads with."""

    part: HealthPart
    name: str
    ok: bool  # not failing at all
    unhealthy: bool  # failing long enough (or badly enough) for `health` to exit 1
    line: str
    since: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    findings: list[Finding]

    @property
    def healthy(self) -> bool:
        return not any(f.unhealthy for f in self.findings)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def first_cause(self, *, unhealthy_only: bool) -> Finding | None:
        for finding in self.findings:
            if finding.unhealthy or (not unhealthy_only and not finding.ok):
                return finding
        return None


def _clock(iso: str | None, now: datetime) -> str:
    """A stored time as an operator reads it: ``10:02`` today, ``Mon 30 Nov 10:02`` before."""
    if iso is None:
        return "never"
    at = datetime.fromisoformat(iso)
    return f"{at:%H:%M}" if at.date() == now.date() else f"{at:%a %d %b %H:%M}"


# The cause in a few plain words for the headline; status shows the whole error beneath it.
_PLAIN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("connection refused", ("connection refused", "errno 111", "connect call failed")),
    ("authentication failed", ("login refused", "authentication", "credentials")),
    ("timed out", ("timed out", "timeout")),
    ("TLS failed", ("certificate", "tls", "ssl")),
    ("cannot resolve the host name", ("name or service not known", "nodename nor servname")),
)


def plain_cause(error: str | None) -> str:
    """``connection refused`` rather than a page of socket error: what the headline says."""
    text = " ".join((error or "unknown error").split())
    lowered = text.lower()
    for words, needles in _PLAIN:
        if any(n in lowered for n in needles):
            return words
    return text if len(text) <= 80 else text[:77] + "..."


def _part(part: HealthPart, name: str, record: PartRecord, now: datetime,
          window: timedelta) -> Finding:
    detail: dict[str, object] = asdict(record)
    if record.failing_since is None:
        return Finding(part, name, True, False,
                       f"{name} ok (last success {_clock(record.last_success, now)})",
                       detail=detail)
    since = datetime.fromisoformat(record.failing_since)
    return Finding(part, name, False, now - since > window,
                   f"{name} failing since {_clock(record.failing_since, now)} "
                   f"({plain_cause(record.error)})", since=record.failing_since, detail=detail)


def configured(store: Store, sources: list[str], channels: list[str]) -> None:
    """What the worker runs with: a part dropped from the configuration is no longer judged."""
    with store.transaction():
        store.set_meta(CONFIGURED, json.dumps({HealthPart.SOURCE: sorted(sources),
                                               HealthPart.CHANNEL: sorted(channels)}))


def assess(store: Store, now: datetime, *, failing_seconds: float,
           heartbeat_max_age: float) -> Assessment:
    """Every part's finding, the failing ones first (the first is the headline)."""
    window = timedelta(seconds=failing_seconds)
    running: dict[str, list[str]] = json.loads(store.get_meta(CONFIGURED) or "{}")
    findings: list[Finding] = []
    for part in (HealthPart.SOURCE, HealthPart.CHANNEL):
        for name, record in records(store, part).items():
            if part in running and name not in running[part]:
                continue  # e.g. the Maildir of a first try, before IMAP was configured
            findings.append(_part(part, name, record, now, window))
    findings.append(_rules(store, now))
    findings.append(_timers(store, now, window))
    findings.append(_heartbeat(store, now, heartbeat_max_age))
    return Assessment(sorted(findings, key=lambda f: (not f.unhealthy, f.ok)))


def _rules(store: Store, now: datetime) -> Finding:
    errors: list[str] = json.loads(store.get_meta(RULES_ERRORS) or "[]")
    at = store.get_meta(RULES_AT)
    if store.get_meta(RULES_OK) != "0":
        return Finding(HealthPart.RULES, "rules", True, False, "rules ok", detail={"at": at})
    first = errors[0] if errors else "invalid"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return Finding(HealthPart.RULES, "rules", False, True,
                   f"rules reload rejected at {_clock(at, now)}: {first}{more}; the previous "
                   "rules stay in force, but a restart would fail", since=at,
                   detail={"at": at, "errors": errors})


def _timers(store: Store, now: datetime, window: timedelta) -> Finding:
    overdue = store.due_timers(now - window, limit=1000)
    if not overdue:
        return Finding(HealthPart.TIMERS, "timers", True, False, "timers ok")
    oldest = overdue[0]
    count = f"{len(overdue)}{'+' if len(overdue) == 1000 else ''}"
    return Finding(HealthPart.TIMERS, "timers", False, True,
                   f"{count} timer(s) overdue since {_clock(to_iso(oldest.due_at), now)} "
                   f"(oldest: {oldest.kind} for ticket #{oldest.ticket_id})",
                   since=to_iso(oldest.due_at), detail={"overdue": len(overdue)})


def _heartbeat(store: Store, now: datetime, max_age: float) -> Finding:
    """Is a worker alive? Any completed cycle says so; the parts above say whether it works."""
    last = store.get_meta(LAST_CYCLE)
    beat = store.get_meta(HEARTBEAT)
    detail: dict[str, object] = {"last_cycle": last, "heartbeat": beat}
    if last is None:
        return Finding(HealthPart.WORKER, "worker", False, True,
                       "the worker has not completed a cycle yet", detail=detail)
    age = (now - datetime.fromisoformat(last)).total_seconds()
    detail["age_seconds"] = round(age)
    if age > max_age:
        return Finding(HealthPart.WORKER, "worker", False, True,
                       f"no worker cycle for {age:.0f}s (last {_clock(last, now)})",
                       since=last, detail=detail)
    return Finding(HealthPart.WORKER, "worker", True, False,
                   f"last cycle {age:.0f}s ago, last fully successful "
                   f"{_clock(beat, now)}", detail=detail)
