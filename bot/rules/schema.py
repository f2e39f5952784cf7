"""The shape of rules.yaml, validated strictly: every model forbids unknown keys.

This layer checks what one value can check on its own (types, durations, regexes,
addresses, "exactly one operator"). Cross-references (owners, templates, duplicate names,
the catch-all) are checked by `load.py`, which also maps errors back to YAML lines.
The language is documented for ops people in docs/rules.md; keep the two in step.
"""

from __future__ import annotations

import re
import warnings
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.rules.calendar import DAY_NAMES
from bot.rules.durations import parse_duration, parse_time
from bot.rules.patterns import backtracking_risk

Priority = Literal["critical", "high", "normal", "low"]
RuleAction = Literal["acknowledge", "ask_info", "answer", "forward"]
SourceName = Literal["email", "imap", "maildir", "helpscout"]
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")


def _strings(value: Any) -> Any:
    """One value or a list of values, as a list of strings (YAML may give numbers)."""
    if value is None:
        return value
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, (dict, list, bool)) for v in items):
        return value  # let pydantic report the wrong type
    return [str(v) for v in items]


def _email(value: Any) -> str:
    text = str(value).strip()
    if not _EMAIL.match(text):
        raise ValueError(f"{value!r} is not an email address (write a bare address, "
                         "e.g. oncall@example.com)")
    return text.lower()


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Berlin, America/New_York, "
                         "UTC)") from None
    return value


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


def _optional_duration(value: Any) -> timedelta | None:
    if value is None or str(value).strip().lower() in {"off", "never", "none"}:
        return None
    return parse_duration(value)


Strings = Annotated[list[str], BeforeValidator(_strings)]
Email = Annotated[str, BeforeValidator(_email)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- conditions -----------------------------------------------------------------------------


class Test(Strict):
    """The operators shared by text and value conditions; exactly one must be given."""

    contains: Strings | None = None
    equals: str | None = None
    matches: Strings | None = None
    one_of: Strings | None = None
    case_sensitive: bool = False

    @field_validator("equals", mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else value

    @field_validator("matches")
    @classmethod
    def _regexes(cls, patterns: list[str] | None) -> list[str] | None:
        for pattern in patterns or []:
            try:
                with warnings.catch_warnings():
                    # "possible nested set" and the like: Python may read it differently
                    # one day, so ops hear of it now, with the fix
                    warnings.simplefilter("error", FutureWarning)
                    re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
            except FutureWarning as exc:
                raise ValueError(f"ambiguous regular expression {pattern[:80]!r}: {exc}; "
                                 "write a literal '[' as '\\['") from None
            risk = backtracking_risk(pattern)
            if risk:
                raise ValueError(f"regular expression {pattern[:80]!r} refused: {risk}")
        return patterns

    def operators(self) -> list[str]:
        return [op for op in ("contains", "equals", "matches", "one_of")
                if getattr(self, op) is not None]

    @model_validator(mode="after")
    def _one_operator(self) -> Test:
        ops = self.operators()
        if len(ops) != 1 and not self._may_omit_operator():
            given = ", ".join(ops) if ops else "none"
            raise ValueError("give exactly one of contains, equals, matches, one_of "
                             f"(given: {given})")
        for op in ("contains", "matches", "one_of"):
            if getattr(self, op) == []:
                raise ValueError(f"'{op}' needs at least one value")
        return self

    def _may_omit_operator(self) -> bool:
        return False


class TextTest(Test):
    """Free text (subject, body, text): a plain value is short for ``contains``."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"contains": value} if isinstance(value, (str, list, int, float)) else value


class ValueTest(Test):
    """Identities (addresses, domains, source, mailbox, tags): a plain value is ``one_of``."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"one_of": value} if isinstance(value, (str, list, int, float)) else value


class HeaderTest(Test):
    """``header: {name: X-Mailer, contains: ...}``; with no operator, the header must exist."""

    name: str
    exists: bool | None = None

    def _may_omit_operator(self) -> bool:
        return not self.operators()

    @model_validator(mode="after")
    def _exists_alone(self) -> HeaderTest:
        if self.exists is not None and self.operators():
            raise ValueError("'exists' cannot be combined with contains/equals/matches/one_of")
        return self


class CountTest(Strict):
    """Words the requester wrote in the body (or ``in: subject`` / ``in: text``)."""

    less_than: int | None = Field(default=None, ge=0)
    more_than: int | None = Field(default=None, ge=0)
    in_: Literal["body", "subject", "text"] = Field(default="body", alias="in")

    @model_validator(mode="after")
    def _some(self) -> CountTest:
        if self.less_than is None and self.more_than is None:
            raise ValueError("give less_than and/or more_than")
        return self


class AttachmentTest(Strict):
    has: bool | None = None
    filename: TextTest | None = None
    content_type: TextTest | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"has": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _some(self) -> AttachmentTest:
        if self.has is None and self.filename is None and self.content_type is None:
            raise ValueError("give has, filename or content_type")
        return self


CONDITION_FIELDS = ("from", "from_domain", "to", "cc", "recipients", "subject", "body", "text",
                    "header", "source", "mailbox", "tags", "attachments", "words")


class Condition(Strict):
    """One mapping; several keys in it must all hold. ``all``/``any``/``not`` combine."""

    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")
    from_: ValueTest | None = Field(default=None, alias="from")
    from_domain: ValueTest | None = None
    to: ValueTest | None = None
    cc: ValueTest | None = None
    recipients: ValueTest | None = None
    subject: TextTest | None = None
    body: TextTest | None = None
    text: TextTest | None = None
    header: HeaderTest | None = None
    source: ValueTest | None = None
    mailbox: ValueTest | None = None
    tags: ValueTest | None = None
    attachments: AttachmentTest | None = None
    words: CountTest | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        if not given:
            raise ValueError("empty condition: name a field (" + ", ".join(CONDITION_FIELDS)
                             + ") or all/any/not")
        for name, value in given.items():
            if value is None:
                alias = type(self).model_fields[name].alias or name
                raise ValueError(f"'{alias}' has no value")
        for key in ("all_", "any_"):
            if getattr(self, key) == []:
                raise ValueError(f"'{key[:-1]}' needs at least one condition")
        if self.source is not None:
            allowed = set(SourceName.__args__)  # type: ignore[attr-defined]
            for value in [self.source.equals, *(self.source.one_of or [])]:
                if value is not None and value.lower() not in allowed:
                    raise ValueError(f"unknown source {value!r} (expected one of: "
                                     + ", ".join(sorted(allowed)) + ")")
        return self


# -- rules ----------------------------------------------------------------------------------


class Rule(Strict):
    name: str
    description: str | None = None
    when: Condition | None = None
    priority: Priority | None = None
    topic: str | None = None
    tags: Strings = []
    action: RuleAction | None = None
    to: Strings | None = None
    template: str | None = None
    notice_template: str | None = None
    alert_template: str | None = None
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"rule name {value!r} must start with a letter or digit and use "
                             "letters, digits, spaces, '-', '_' or '.'")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        if self.action == "forward" and not self.to:
            raise ValueError("action 'forward' needs 'to' (an owner name, an address or a "
                             "Help Scout user id)")
        if self.to and self.action != "forward":
            raise ValueError("'to' is only used with action: forward")
        if self.notice_template and self.action != "forward":
            raise ValueError("'notice_template' is only used with action: forward")
        if self.template and self.action is None:
            raise ValueError("'template' needs an action")
        if self.action == "answer" and not self.template:
            raise ValueError("action 'answer' needs 'template': the known answer to send")
        if self.action is None and not self.continue_:
            raise ValueError("a rule needs an action (acknowledge, ask_info, answer, forward) "
                             "unless it has continue: true")
        return self


class Defaults(Strict):
    """What a ticket gets when no rule sets it; ``action`` is the catch-all."""

    priority: Priority = "normal"
    topic: str | None = None
    action: RuleAction | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Defaults:
        if self.action == "forward":
            raise ValueError("the default action cannot be 'forward': use a last rule instead")
        if self.action == "answer" and not self.template:
            raise ValueError("a default 'answer' needs 'template'")
        return self


# -- settings -------------------------------------------------------------------------------


class Team(Strict):
    name: str = "Support"
    signature: str = "The Support team"
    addresses: Annotated[list[Email], BeforeValidator(_strings)] = []
    # everyone at these domains is the team: their mail on a ticket is never the requester's
    domains: Annotated[list[str], BeforeValidator(_strings)] = []

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            d = domain.strip().lower().lstrip("@")
            if not d or "@" in d or "." not in d or " " in d:
                raise ValueError(f"'{domain}' is not a domain (write it as example.com)")
            out.append(d)
        return out


class Followup(Strict):
    check_in_after: Duration = timedelta(hours=24)
    close_after: Duration = timedelta(hours=24)
    # requests for details in all, before a person is asked to look (owners.triage, on-call)
    max_asks: int = Field(default=2, ge=1, le=10)
    # at most one message to the requester per ticket in this window after their replies
    ack_quiet: Duration = timedelta(minutes=10)


class BusinessHours(Strict):
    timezone: str
    days: Annotated[list[str], BeforeValidator(_strings)] = list(DAY_NAMES[:5])
    hours: str = "09:00-17:00"
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _time_zone(value)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        bad = [v for v, d in zip(value, days, strict=True) if d not in DAY_NAMES]
        if bad or not days:
            raise ValueError(f"days must be weekday names ({', '.join(DAY_NAMES)}); "
                             f"got {bad or value}")
        return days

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, sep, end = value.partition("-")
        opening, closing = parse_time(start), parse_time(end) if sep else None
        if closing is None or not opening < closing:
            raise ValueError(f"hours {value!r} must look like \"09:00-17:00\" (opening before "
                             "closing, same day)")
        return value


class Limits(Strict):
    per_recipient_per_day: int | None = Field(default=5, ge=1)


class FirstResponse(Strict):
    alert_after: Duration = timedelta(hours=1)


class Report(Strict):
    every: Duration = timedelta(days=1)
    at: str | None = None
    to: Annotated[list[Email], BeforeValidator(_strings)]
    timezone: str | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _time_zone(value) if value is not None else None


class MailSettings(Strict):
    """How mail reaches the support address, when that makes people look like robots."""

    list_ids: Annotated[list[str], BeforeValidator(_strings)] = []
    form_senders: Annotated[list[Email], BeforeValidator(_strings)] = []
    relay_auto_forwarded: bool = False

    @field_validator("list_ids")
    @classmethod
    def _list_ids(cls, value: list[str]) -> list[str]:
        ids = [v.strip().strip("<>").strip().lower() for v in value]
        bad = [v for v in ids if not v or any(c.isspace() for c in v)]
        if bad:
            raise ValueError("a list id is the part of List-Id inside <...>, e.g. "
                             f"support.example.com (got {bad!r})")
        return ids


class Settings(Strict):
    team: Team = Team()
    oncall: Email | None = None
    owners: dict[str, str] = {}
    followup: Followup = Followup()
    business_hours: BusinessHours | None = None
    limits: Limits = Limits()
    first_response: FirstResponse = FirstResponse()
    assigned_reminder_after: OptionalDuration = timedelta(hours=48)
    report: Report | None = None
    mail: MailSettings = MailSettings()

    @field_validator("owners", mode="before")
    @classmethod
    def _owner_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                    for k, v in value.items()}
        return value

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: dict[str, str]) -> dict[str, str]:
        owners = {}
        for name, target in value.items():
            if not _NAME.match(name) or "@" in name:
                raise ValueError(f"owner name {name!r} must be a plain word like 'billing'")
            target = target.strip()
            if not target.isdigit():
                try:
                    target = _email(target)
                except ValueError:
                    raise ValueError(f"owner {name!r}: {target!r} is neither an email address "
                                     "nor a Help Scout user id") from None
            owners[name] = target
        return owners


class RulesFile(Strict):
    settings: Settings = Settings()
    defaults: Defaults = Defaults()
    rules: list[Rule] = []
