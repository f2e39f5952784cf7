"""Optional Prometheus metrics (SUPPORTBOT_METRICS_PORT): what a supervisor graphs and alerts on."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

# Per source or channel: (when it last worked, as a Unix time or None; is it failing now).
PartState = tuple[float | None, bool]

REGISTRY = CollectorRegistry()
MESSAGES = Counter("supportbot_messages_total", "Inbound messages by outcome",
                   ["outcome"], registry=REGISTRY)
SENDS = Counter("supportbot_sends_total", "Outbox sends by result", ["result"],
                registry=REGISTRY)
TIMERS = Counter("supportbot_timers_fired_total", "Timers fired by kind", ["kind"],
                 registry=REGISTRY)
RELOAD_OK = Gauge("supportbot_rules_last_reload_ok",
                  "1 when the last rules reload succeeded, 0 when it was rejected",
                  registry=REGISTRY)
SOURCE_LAG = Gauge("supportbot_source_last_read_age_seconds",
                   "Seconds since each source was last read successfully", ["source"],
                   registry=REGISTRY)
SOURCE_SUCCESS = Gauge("supportbot_source_last_success_timestamp_seconds",
                       "When each source was last read or polled successfully (new mail or "
                       "not)", ["source"], registry=REGISTRY)
SOURCE_FAILING = Gauge("supportbot_source_failing", "1 while a source's reads fail",
                       ["source"], registry=REGISTRY)
CHANNEL_SUCCESS = Gauge("supportbot_channel_last_success_timestamp_seconds",
                        "When each channel last delivered a message", ["channel"],
                        registry=REGISTRY)
CHANNEL_FAILING = Gauge("supportbot_channel_failing",
                        "1 while a channel cannot deliver (sends wait for a retry)", ["channel"],
                        registry=REGISTRY)
RELOAD_FAILURES = Gauge("supportbot_rules_reloads_rejected",
                        "Rules reloads rejected since the worker started", registry=REGISTRY)
HEARTBEAT = Gauge("supportbot_heartbeat_timestamp_seconds",
                  "Time of the last cycle that did everything it set out to do",
                  registry=REGISTRY)


def serve(port: int) -> None:
    start_http_server(port, addr="127.0.0.1", registry=REGISTRY)


def observe_cycle(report: object, now: datetime, sources: dict[str, PartState],
                  channels: dict[str, PartState], reload_ok: bool, reload_failures: int,
                  cycle_ok: bool) -> None:
    for status, count in getattr(report, "counts", {}).items():
        if status != "known":
            MESSAGES.labels(status).inc(count)
    for result in ("sent", "failed", "retry"):
        value = getattr(report, result, 0)
        if value:
            SENDS.labels(result).inc(value)
    for kind, _ in getattr(report, "timers", []):
        TIMERS.labels(kind).inc()
    RELOAD_OK.set(1 if reload_ok else 0)
    RELOAD_FAILURES.set(reload_failures)
    for name, (at, failing) in sources.items():
        if at is not None:
            SOURCE_SUCCESS.labels(name).set(at)
            SOURCE_LAG.labels(name).set(max(now.timestamp() - at, 0))
        SOURCE_FAILING.labels(name).set(1 if failing else 0)
    for name, (at, failing) in channels.items():
        if at is not None:
            CHANNEL_SUCCESS.labels(name).set(at)
        CHANNEL_FAILING.labels(name).set(1 if failing else 0)
    if cycle_ok:
        HEARTBEAT.set(now.timestamp())
