"""Optional Prometheus metrics (SUPPORTBOT_METRICS_PORT): what a supervisor graphs and alerts on."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

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
HEARTBEAT = Gauge("supportbot_heartbeat_timestamp_seconds", "Time of the last completed cycle",
                  registry=REGISTRY)


def serve(port: int) -> None:
    start_http_server(port, addr="127.0.0.1", registry=REGISTRY)


def observe_cycle(report: object, now: datetime, last_reads: dict[str, str],
                  reload_ok: bool) -> None:
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
    for source, at in last_reads.items():
        SOURCE_LAG.labels(source).set(max((now - datetime.fromisoformat(at)).total_seconds(), 0))
    HEARTBEAT.set(now.timestamp())
