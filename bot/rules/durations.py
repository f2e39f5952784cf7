"""Durations and clock times as ops people write them in rules.yaml: `24h`, `1d 12h`, `"09:00"`."""

from __future__ import annotations

import re
from datetime import time, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_duration(value: object) -> timedelta:
    """`30m`, `24h`, `2d`, `1d 12h`, `1w`; a bare number is refused (which unit?)."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or not _WHOLE.match(text):
        raise ValueError(f"{value!r} is not a duration: write a number and a unit, "
                         "e.g. 30m, 24h, 2d or 1d 12h (s, m, h, d, w)")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_time(value: object) -> time:
    """`"09:00"` -> time(9, 0)."""
    match = _TIME.match(str(value).strip())
    if isinstance(value, bool) or match is None:
        raise ValueError(f"{value!r} is not a time of day: write it in quotes as \"HH:MM\", "
                         'e.g. "09:00"')
    return time(int(match.group(1)), int(match.group(2)))


def humanise(delta: timedelta) -> str:
    """`1 day`, `2 days`, `36 hours`, `90 minutes`: what a template tells the requester."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    if seconds >= 60:
        return f"{round(seconds / 60)} minutes"
    return "1 second" if seconds == 1 else f"{seconds} seconds"
