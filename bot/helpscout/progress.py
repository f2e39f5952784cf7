"""Where the Help Scout source is in its reading, stored as the source's cursor (JSON).

- ``watermark``: every change up to this server time has been read (a complete pass).
- ``floor``: the first start's horizon (now - SUPPORTBOT_BACKFILL_HOURS then). Threads
  created before it belong to the time before the bot: recorded when seen, never answered.
- ``pass_since`` / ``pass_page`` / ``pass_started``: a pass under way (the listing of
  everything modified since ``pass_since``), saved after every page so a crash or the
  per-cycle budget resumes it where it stopped instead of from zero.
- ``head``: while a pass spans cycles, the server time from which each cycle first reads
  what changed lately, so a new conversation never waits behind the backlog.

A cursor stored by an earlier version is a bare timestamp: that is the watermark.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from bot.helpscout.client import iso_z, parse_time


@dataclass(frozen=True)
class Progress:
    watermark: datetime | None = None
    floor: datetime | None = None
    pass_since: datetime | None = None
    pass_page: int = 1
    pass_started: datetime | None = None
    head: datetime | None = None

    @property
    def in_pass(self) -> bool:
        return self.pass_since is not None

    def at_page(self, page: int, started: datetime | None) -> Progress:
        return replace(self, pass_page=page, pass_started=self.pass_started or started)

    def completed(self, *, advance: bool) -> Progress:
        """The pass is over; ``advance``: nothing may have been skipped, move the watermark."""
        mark = self.watermark
        if advance and self.pass_started is not None:
            mark = max(self.pass_started, mark) if mark is not None else self.pass_started
        return Progress(watermark=mark, floor=self.floor)

    def encode(self) -> str:
        fields = {k: (iso_z(v) if isinstance(v, datetime) else v)
                  for k, v in asdict(self).items() if v is not None}
        if not self.in_pass:
            fields.pop("pass_page")
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def decode(cls, stored: str | None) -> Progress:
        if not stored:
            return cls()
        if not stored.lstrip().startswith("{"):
            return cls(watermark=parse_time(stored.strip()))
        try:
            data = json.loads(stored)
        except json.JSONDecodeError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        page = data.get("pass_page")
        return cls(watermark=parse_time(data.get("watermark")),
                   floor=parse_time(data.get("floor")),
                   pass_since=parse_time(data.get("pass_since")),
                   pass_page=page if isinstance(page, int) and page > 0 else 1,
                   pass_started=parse_time(data.get("pass_started")),
                   head=parse_time(data.get("head")))
