"""rules.yaml -> `RuleSet`, or `RulesError` with one `file:line: message` per problem.

Validation runs in layers, like Alertmanager's: YAML syntax; the schema (unknown keys,
types, regexes, durations); then cross-references (owners, templates, duplicate names,
the catch-all, on-call for critical rules) and every template rendered with sample data.
All problems are collected, so one `supportbot check` run shows them all.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.errors import RulesError
from bot.mail.automated import MailSetup
from bot.rules import schema
from bot.rules.calendar import DAY_NAMES, BusinessCalendar
from bot.rules.durations import parse_time
from bot.rules.match import compile_condition
from bot.rules.ruleset import Defaults, ReportSchedule, Rule, RuleSet, RuleSettings
from bot.rules.yamlfile import YamlDocument, YamlSyntaxError, read_text
from bot.templates import Templates
from bot.vocab import CONVERSATION_TEMPLATES, ActionKind, MessageKind, Priority, spec


def _template_of(kind: MessageKind) -> str:
    """The default template of a kind, from its row in ``bot.vocab.KINDS``."""
    template = spec(kind).template
    assert template is not None, kind
    return template


# The bot sends these on its own (follow-ups, alerts, notices), whatever the rules say.
REQUIRED_TEMPLATES = tuple(_template_of(k) for k in (
    MessageKind.ACKNOWLEDGE, MessageKind.ASK_INFO, MessageKind.FORWARD, MessageKind.FORWARDED,
    MessageKind.ALERT, MessageKind.CHECK_IN, MessageKind.CLOSURE, MessageKind.ASSIGNED_REMINDER,
    MessageKind.FIRST_RESPONSE_OVERDUE, MessageKind.OWNER_REPLY, MessageKind.UPDATE_RELAYED,
)) + CONVERSATION_TEMPLATES
DEFAULT_TEMPLATE = {str(a): _template_of(MessageKind(a))
                    for a in (ActionKind.ACKNOWLEDGE, ActionKind.ASK_INFO, ActionKind.FORWARD)}
DEFAULT_NOTICE = _template_of(MessageKind.FORWARDED)
DEFAULT_ALERT = _template_of(MessageKind.ALERT)

Loc = tuple[str | int, ...]


def _known_keys() -> list[str]:
    models: list[type[BaseModel]] = [
        schema.RulesFile, schema.Settings, schema.Team, schema.Followup, schema.BusinessHours,
        schema.Limits, schema.FirstResponse, schema.Report, schema.Defaults, schema.Rule,
        schema.Condition, schema.TextTest, schema.HeaderTest, schema.CountTest,
        schema.AttachmentTest]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


KNOWN_KEYS = _known_keys()


class _Problems:
    """Collects `file:line: message` lines, naming the rule each one belongs to."""

    def __init__(self, path: Path, doc: YamlDocument | None) -> None:
        self.path = path
        self.doc = doc
        self.items: list[tuple[int, str]] = []

    def add(self, loc: Loc, message: str, *, key: bool = False, named: bool = True) -> None:
        """``named``: the message already names the last part of ``loc`` (a key)."""
        line = self.doc.line(loc, key=key) if self.doc else 1
        text = f"{self.path}:{line}: {self.where(loc if not named else loc[:-1])}{message}"
        if (line, text) not in self.items:
            self.items.append((line, text))

    def where(self, loc: Loc) -> str:
        """'rule 'x' (when.any[0]): ' or 'settings.followup: ' before a message."""
        if not loc:
            return ""
        if loc[0] == "rules" and len(loc) > 1 and isinstance(loc[1], int):
            rules = self.doc.data.get("rules") if self.doc and isinstance(self.doc.data, dict) \
                else None
            item = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
            name = item.get("name") if isinstance(item, dict) else None
            label = f"rule '{name}'" if isinstance(name, str) else f"rule #{loc[1] + 1}"
            inner = _dotted(loc[2:])
            return f"{label}{f' ({inner})' if inner else ''}: "
        return f"{_dotted(loc)}: "

    def lines(self) -> list[str]:
        return [text for _, text in sorted(self.items, key=lambda item: item[0])]


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> tuple[str, bool, bool]:
    """A pydantic error in words an ops person can act on, whether it blames the key
    rather than the value, and whether it names the field itself."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    field = str(loc[-1]) if loc else "value"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, KNOWN_KEYS, n=1, cutoff=0.7)
        hint = f" (did you mean '{close[0]}'?)" if close and close[0] != field else ""
        return f"unknown key '{field}'{hint}", True, True
    if kind == "missing":
        return f"'{field}' is required", False, True
    if kind == "literal_error":
        return f"unknown {field} {value!r} (expected {error['ctx']['expected']})", False, True
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, "), False, False
    return f"{error['msg']} (got {value!r})", False, False


def load_ruleset(path: Path, templates: Templates | Path) -> RuleSet:
    """Load and validate rules.yaml against a templates folder; raise `RulesError`."""
    path = Path(path)
    if not isinstance(templates, Templates):
        templates = Templates(Path(templates))
    try:
        text = read_text(path)
        doc = YamlDocument.parse(text)
    except YamlSyntaxError as exc:
        raise RulesError([f"{path}:{exc.line}: {exc.message}"]) from None
    problems = _Problems(path, doc)
    try:
        ruleset = _build(path, text, doc, templates, problems)
    except RecursionError:
        problems.add((), "conditions are nested too deeply")
        ruleset = None
    errors = problems.lines() + templates.check()
    if errors or ruleset is None:
        raise RulesError(errors)
    return ruleset


def _build(path: Path, text: str, doc: YamlDocument, templates: Templates,
           problems: _Problems) -> RuleSet | None:
    for loc, key, _line in doc.duplicate_keys():
        problems.items.append((_line, f"{path}:{_line}: {problems.where(loc)}key '{key}' is "
                                      "written twice (only the last one would count)"))
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        problems.add((), "the file must be a mapping with 'settings:', 'defaults:' and 'rules:'")
        return None
    try:
        parsed = schema.RulesFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            message, blames_key, named = _message(error)
            problems.add(tuple(error["loc"]), message, key=blames_key, named=named)
        return None
    settings = _settings(parsed.settings)
    rules = _rules(parsed, settings, templates, problems)
    _check_templates(parsed, templates, problems)
    _check_catch_all(parsed, problems)
    if problems.items:
        return None
    d = parsed.defaults
    digest = hashlib.sha256(text.encode() + b"\0" + templates.digest.encode()).hexdigest()
    return RuleSet(rules=tuple(rules), settings=settings,
                   defaults=Defaults(priority=Priority(d.priority), topic=d.topic, action=d.action,
                                     template=d.template or _default_template(d.action)),
                   digest=digest[:16], path=path)


def _default_template(action: str | None) -> str | None:
    return DEFAULT_TEMPLATE.get(action) if action else None


def _settings(s: schema.Settings) -> RuleSettings:
    calendar = None
    if s.business_hours is not None:
        bh = s.business_hours
        start, _, end = bh.hours.partition("-")
        calendar = BusinessCalendar(bh.timezone, frozenset(DAY_NAMES.index(d) for d in bh.days),
                                    parse_time(start), parse_time(end), frozenset(bh.holidays))
    report = None
    if s.report is not None:
        zone = s.report.timezone or (s.business_hours.timezone if s.business_hours else "UTC")
        report = ReportSchedule(every=s.report.every,
                                at=parse_time(s.report.at) if s.report.at else None,
                                to=tuple(s.report.to), timezone=zone)
    team = set(s.team.addresses)
    team.update(v for v in s.owners.values() if "@" in v)
    if s.oncall:
        team.add(s.oncall)
    if s.report:
        team.update(s.report.to)
    return RuleSettings(
        team_name=s.team.name, signature=s.team.signature.strip(), oncall=s.oncall,
        owners=dict(s.owners), check_in_after=s.followup.check_in_after,
        close_after=s.followup.close_after, calendar=calendar,
        per_recipient_per_day=s.limits.per_recipient_per_day,
        first_response_after=s.first_response.alert_after,
        assigned_reminder_after=s.assigned_reminder_after, report=report,
        team_addresses=frozenset(team), team_domains=frozenset(s.team.domains),
        max_asks=s.followup.max_asks, ack_quiet=s.followup.ack_quiet,
        mail=MailSetup(list_ids=frozenset(s.mail.list_ids),
                       form_senders=frozenset(s.mail.form_senders),
                       relay_auto_forwarded=s.mail.relay_auto_forwarded))


def _target(value: str, settings: RuleSettings) -> str | None:
    """An owner name, 'oncall', an address or a Help Scout user id -> address or id."""
    value = value.strip()
    if value.isdigit():
        return value
    if "@" in value:
        try:
            return schema._email(value)
        except ValueError:
            return None
    if value == "oncall":
        return settings.oncall
    return settings.owners.get(value)


def _rules(parsed: schema.RulesFile, settings: RuleSettings, templates: Templates,
           problems: _Problems) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(parsed.rules):
        loc: Loc = ("rules", i)
        if r.name in seen:
            problems.add((*loc, "name"), f"duplicate rule name (also rule #{seen[r.name] + 1})")
        seen.setdefault(r.name, i)
        targets: list[str] = []
        for j, value in enumerate(r.to or []):
            target = _target(value, settings)
            at: Loc = (*loc, "to", j) if len(r.to or []) > 1 else (*loc, "to")
            if target is None:
                problems.add(at, _unknown_target(value, settings))
            elif target not in targets:
                targets.append(target)
        if r.priority == "critical" and settings.oncall is None:
            problems.add((*loc, "priority"), "priority critical alerts on-call, but "
                         "settings.oncall is not set")
        rules.append(Rule(
            name=r.name, line=problems.doc.line(loc) if problems.doc else 1,
            matcher=compile_condition(r.when),
            priority=Priority(r.priority) if r.priority else None, topic=r.topic,
            tags=tuple(r.tags), action=r.action, to=tuple(targets),
            template=r.template or _default_template(r.action),
            notice_template=(r.notice_template or DEFAULT_NOTICE) if r.action == "forward"
            else None,
            alert_template=r.alert_template or DEFAULT_ALERT, continue_=r.continue_,
            description=r.description))
    if parsed.defaults.priority == "critical" and settings.oncall is None:
        problems.add(("defaults", "priority"), "priority critical alerts on-call, but "
                     "settings.oncall is not set")
    return rules


def _unknown_target(value: str, settings: RuleSettings) -> str:
    if "@" in value:
        return f"{value!r} is not a valid email address"
    if value == "oncall":
        return "'oncall' is used but settings.oncall is not set"
    names = ", ".join(sorted(settings.owners)) or "none defined"
    close = difflib.get_close_matches(value, list(settings.owners), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"unknown owner '{value}'{hint}: use a name from settings.owners ({names}), "
            "an email address or a Help Scout user id")


def _check_templates(parsed: schema.RulesFile, templates: Templates,
                     problems: _Problems) -> None:
    have = templates.names()

    def need(name: str | None, loc: Loc) -> None:
        if name and not templates.has(name):
            close = difflib.get_close_matches(name, have, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.add(loc, f"template '{name}' not found: no {name}.txt in "
                         f"{templates.directory}{hint}")

    for name in REQUIRED_TEMPLATES:
        if not templates.has(name):
            problems.add((), f"template '{name}' not found: the bot sends it on its own, so "
                         f"{templates.directory / (name + '.txt')} must exist")
    if parsed.settings.report is not None:
        need("report", ("settings", "report"))
    need(parsed.defaults.template, ("defaults", "template"))
    for i, r in enumerate(parsed.rules):
        for key in ("template", "notice_template", "alert_template"):
            need(getattr(r, key), ("rules", i, key))


def _check_catch_all(parsed: schema.RulesFile, problems: _Problems) -> None:
    """No ticket may be left without an action: a last rule for everything, or a default."""
    rules = parsed.rules
    for i, r in enumerate(rules[:-1]):
        if r.when is None and not r.continue_:
            later = ", ".join(x.name for x in rules[i + 1:i + 4])
            problems.add(("rules", i, "name"), "this rule has no 'when', so it matches every "
                         f"ticket and the rules after it ({later}...) can never match")
    catch_all = any(r.when is None and r.action is not None for r in rules)
    if parsed.defaults.action is None and not catch_all:
        problems.add(("rules",) if rules else (), "no rule catches every ticket: end the rules "
                     "with one without 'when' (e.g. '- name: catch-all' / 'action: acknowledge')"
                     " or set 'defaults: {action: acknowledge}'", key=True)
