"""Rule test cases: YAML files anyone can add, run by `supportbot test` and by pytest.

A case file holds any of:

    cases:                        # single messages
      - name: emails arent going out
        message: {from: "Ann <ann@example.org>", subject: ..., body: ...}   # or eml: x.eml
        expect: {priority: critical, topic: deliverability, actions: [forward, alert]}
    manifest: path/manifest.yaml  # a folder's manifest: {tickets: [{file, priority, action}]}
    folders:                      # every .eml of a folder expects the same thing
      - {path: ../automated, expect: {ignored: true}}

Paths are relative to the case file; a manifest or folder that is absent (the shared
corpus lives beside the repository) makes its cases "skipped", never failed. Messages are
built as real RFC 5322 bytes and go through the real parser, exactly like the worker's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import MalformedMessage, RulesError
from bot.mail.parse import parse_message
from bot.model import Decision, Message
from bot.rules.decide import decide
from bot.rules.ruleset import RuleSet
from bot.rules.schema import Priority, Strings
from bot.rules.yamlfile import YamlDocument, YamlSyntaxError, read_text
from bot.vocab import ActionKind, SourceKind

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
ActionName = Literal["acknowledge", "ask_info", "answer", "forward", "alert"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InlineMessage(_Strict):
    from_: str = Field(default="Requester <requester@customer.example>", alias="from")
    to: str = "Support <support@example.com>"
    cc: str | None = None
    reply_to: str | None = None
    subject: str = ""
    body: str = ""
    html: str | None = None
    headers: dict[str, str] = {}
    source: SourceKind = SourceKind.EMAIL
    tags: Strings = []
    mailbox: int | None = None


class ExpectedAction(_Strict):
    kind: ActionName
    to: Strings | None = None
    template: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class Expect(_Strict):
    ignored: bool | None = None
    reason_contains: str | None = None
    priority: Priority | None = None
    topic: str | None = None
    first_action: ActionName | None = None
    actions: list[ExpectedAction] | None = None
    rules: Strings | None = None
    owner: str | None = None
    tags: Strings | None = None
    followup: bool | None = None


class Case(_Strict):
    name: str
    eml: str | None = None
    source: SourceKind | None = None
    message: InlineMessage | None = None
    expect: Expect

    @model_validator(mode="after")
    def _one_input(self) -> Case:
        if (self.eml is None) == (self.message is None):
            raise ValueError("give exactly one of 'eml' (a file) or 'message' (inline)")
        return self


class Folder(_Strict):
    path: str
    expect: Expect


class CaseFile(_Strict):
    cases: list[Case] = []
    manifest: str | None = None
    folders: list[Folder] = []


@dataclasses.dataclass
class Result:
    file: Path
    name: str
    status: Literal["pass", "fail", "skip"]
    problems: list[str] = dataclasses.field(default_factory=list)
    decision: Decision | None = None

    @property
    def label(self) -> str:
        return f"{self.file}: {self.name}"


@dataclasses.dataclass
class _Runnable:
    name: str
    expect: Expect
    raw: bytes | None  # None: skipped (missing file)
    source: str
    extra: dict[str, Any]
    skip_reason: str = ""


def build_raw(m: InlineMessage) -> bytes:
    """An inline case as real RFC 5322 bytes, so it goes through the real parser."""
    msg = EmailMessage()
    msg["From"] = m.from_
    msg["To"] = m.to
    if m.cc:
        msg["Cc"] = m.cc
    if m.reply_to:
        msg["Reply-To"] = m.reply_to
    msg["Subject"] = m.subject
    msg["Date"] = format_datetime(NOW)
    msg["Message-ID"] = make_msgid(domain="cases.supportbot.test")
    for key, value in m.headers.items():
        if key in msg:
            del msg[key]
        msg[key] = value
    if m.html is not None and not m.body:
        msg.set_content(m.html, subtype="html")
    else:
        msg.set_content(m.body or "\n")
        if m.html is not None:
            msg.add_alternative(m.html, subtype="html")
    return msg.as_bytes()


def load_case_file(path: Path) -> list[_Runnable]:
    """Read one case file; RulesError names file and line for a malformed one."""
    try:
        doc = YamlDocument.parse(read_text(path))
    except YamlSyntaxError as exc:
        raise RulesError([f"{path}:{exc.line}: {exc.message}"]) from None
    try:
        spec = CaseFile.model_validate(doc.data or {})
    except ValidationError as exc:
        raise RulesError([f"{path}:{doc.line(tuple(e['loc']))}: "
                          f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                          for e in exc.errors()]) from None
    base = path.parent
    out: list[_Runnable] = []
    for case in spec.cases:
        if case.message is not None:
            m = case.message
            extra: dict[str, Any] = {"tags": tuple(m.tags)} if m.tags else {}
            if m.mailbox is not None:
                extra["mailbox_id"] = m.mailbox
            out.append(_Runnable(case.name, case.expect, build_raw(m), m.source,
                                 extra))
        else:
            out.append(_from_file(case.name, base / (case.eml or ""), case.expect,
                                  case.source or SourceKind.EMAIL))
    if spec.manifest is not None:
        out += _from_manifest(base / spec.manifest)
    for folder in spec.folders:
        directory = base / folder.path
        if not directory.is_dir():
            out.append(_Runnable(folder.path, folder.expect, None, SourceKind.EMAIL, {},
                                 f"folder {directory} not found"))
            continue
        out += [_from_file(f.name, f, folder.expect, SourceKind.EMAIL)
                for f in sorted(directory.glob("*.eml"))]
    return out


def _from_file(name: str, path: Path, expect: Expect, source: str) -> _Runnable:
    try:
        return _Runnable(name, expect, path.read_bytes(), source, {})
    except OSError:
        return _Runnable(name, expect, None, source, {}, f"{path} not found")


def _from_manifest(path: Path) -> list[_Runnable]:
    if not path.is_file():
        return [_Runnable(path.name, Expect(), None, SourceKind.EMAIL, {},
                          f"manifest {path} not found")]
    doc = YamlDocument.parse(read_text(path))
    tickets = doc.data.get("tickets", []) if isinstance(doc.data, dict) else []
    return [_from_file(t["file"], path.parent / t["file"],
                       Expect(ignored=False, priority=t["priority"], first_action=t["action"]),
                       SourceKind.EMAIL)
            for t in tickets]


def run_cases(files: Iterable[Path], ruleset: RuleSet, *,
              own_addresses: frozenset[str] = frozenset({"support@example.com"}),
              own_domain: str | None = "example.com") -> list[Result]:
    results: list[Result] = []
    for path in files:
        for item in load_case_file(path):
            if item.raw is None:
                results.append(Result(path, item.name, "skip", [item.skip_reason]))
                continue
            decision = _decide(item, ruleset, own_addresses, own_domain)
            problems = compare(item.expect, decision)
            results.append(Result(path, item.name, "fail" if problems else "pass", problems,
                                  decision))
    return results


def _decide(item: _Runnable, ruleset: RuleSet, own_addresses: frozenset[str],
            own_domain: str | None) -> Decision:
    try:
        message: Message = parse_message(
            item.raw or b"", source=item.source, received_at=NOW)  # type: ignore[arg-type]
    except MalformedMessage as exc:
        return Decision(ignored=True, reason=f"malformed message: {exc}")
    if item.extra:
        message = dataclasses.replace(message, **item.extra)
    return decide(message, None, NOW, ruleset, own_addresses=own_addresses,
                  own_domain=own_domain)


def compare(expect: Expect, d: Decision) -> list[str]:
    """Every difference between what the case expects and what was decided."""
    problems = []

    def check(key: str, wanted: object, got: object) -> None:
        got = got.value if isinstance(got, Enum) else got  # shown as written in rules.yaml
        if wanted is not None and wanted != got:
            problems.append(f"{key}: expected {wanted!r}, got {got!r}")

    check("ignored", expect.ignored, d.ignored)
    if expect.reason_contains and expect.reason_contains.lower() not in (d.reason or "").lower():
        problems.append(f"reason: expected it to mention {expect.reason_contains!r}, "
                        f"got {d.reason!r}")
    check("priority", expect.priority, d.priority)
    check("topic", expect.topic, d.topic)
    check("owner", expect.owner, d.owner)
    check("followup", expect.followup, d.followup)
    check("rules", expect.rules, list(d.rules))
    check("tags", expect.tags, list(d.tags))
    first = next((a.kind for a in d.actions if a.kind != ActionKind.ALERT), None)
    check("first_action", expect.first_action, first)
    if expect.actions is not None:
        remaining = list(d.actions)
        for want in expect.actions:
            hit = next((a for a in remaining if a.kind == want.kind
                        and (want.to is None or list(a.to) == want.to)
                        and (want.template is None or a.template == want.template)), None)
            if hit is None:
                problems.append(f"actions: expected {want.model_dump(exclude_none=True)}")
            else:
                remaining.remove(hit)
        if remaining:
            problems.append("actions: unexpected " + ", ".join(
                f"{a.kind} to {list(a.to)}" for a in remaining))
    if problems:
        why = "; ".join(f"{s.rule}: {s.reason}" for s in d.trace if s.matched)
        problems.append(f"decided: rules {list(d.rules)} ({why or d.reason})")
    return problems
