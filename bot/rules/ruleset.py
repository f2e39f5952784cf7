"""A loaded, validated rules.yaml: compiled rules plus typed settings for the lifecycle.

These are what the rest of the bot reads (`RuleSet.settings.check_in_after`, ...); the
pydantic models in `schema.py` stay an input format only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

from bot.mail.automated import NO_SETUP, MailSetup
from bot.model import Priority
from bot.rules.calendar import BusinessCalendar
from bot.rules.match import Matcher
from bot.rules.schema import RuleAction


@dataclass(frozen=True)
class ReportSchedule:
    """Mail the pattern report every ``every``, at ``at`` local time when given."""

    every: timedelta
    at: time | None
    to: tuple[str, ...]
    timezone: str


@dataclass(frozen=True)
class RuleSettings:
    team_name: str = "Support"
    signature: str = "The Support team"
    oncall: str | None = None
    owners: Mapping[str, str] = field(default_factory=dict)  # name -> address or HS user id
    check_in_after: timedelta = timedelta(hours=24)
    close_after: timedelta = timedelta(hours=24)
    calendar: BusinessCalendar | None = None
    per_recipient_per_day: int | None = 5
    first_response_after: timedelta = timedelta(hours=1)
    assigned_reminder_after: timedelta | None = timedelta(hours=48)
    report: ReportSchedule | None = None
    team_addresses: frozenset[str] = frozenset()  # never capped, never a requester
    mail: MailSetup = NO_SETUP  # settings.mail: set-ups whose signals are not evidence
    team_domains: frozenset[str] = frozenset()  # everyone there is the team
    max_asks: int = 2  # requests for details before a person is asked to look
    ack_quiet: timedelta = timedelta(minutes=10)  # one message per ticket per window

    @property
    def triage(self) -> str | None:
        """Who looks at a ticket the bot could not place: owners.triage, else on-call."""
        return self.owners.get("triage") or self.oncall

    def owner_name(self, target: str) -> str:
        """'our billing team' for a target in the owners table, else the target itself."""
        for name, value in self.owners.items():
            if target.lower() in (value.lower(), name.lower()):
                return f"our {name.replace('_', ' ').replace('-', ' ')} team"
        return target


@dataclass(frozen=True)
class Rule:
    name: str
    line: int
    matcher: Matcher
    priority: Priority | None = None
    topic: str | None = None
    tags: tuple[str, ...] = ()
    action: RuleAction | None = None
    to: tuple[str, ...] = ()  # resolved: addresses or Help Scout user ids
    template: str | None = None
    notice_template: str | None = None
    alert_template: str | None = None
    continue_: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Defaults:
    priority: Priority = Priority.NORMAL
    topic: str | None = None
    action: RuleAction | None = None
    template: str | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    settings: RuleSettings
    defaults: Defaults
    digest: str  # rules file + templates, for logs: which rules decided this?
    path: Path
