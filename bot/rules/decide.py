"""The pure decision: (message, ticket, now, rules) -> Decision with a trace. No I/O.

The worker, dry-run, `explain`, `replay` and the tests all call this one function, so what
ops see in `explain` is what production does. It never raises: an internal error still
acknowledges the requester, with the error in the trace.

How matched rules combine (documented in docs/rules.md):
- rules run in order; the first match stops evaluation unless it has ``continue: true``;
- priority: the most severe any matched rule sets, else the default; topic: the first set;
  tags: all of them;
- the requester hears one answer: the first acknowledge / ask_info / answer among matched
  rules; forwards from every matched rule merge into one forward (its notice tells the
  requester who has it, so a plain acknowledgement is dropped next to it);
- critical priority adds an alert to settings.oncall.
"""

from __future__ import annotations

from datetime import datetime

from bot.errors import BudgetExceeded
from bot.mail.addresses import reply_recipient
from bot.mail.automated import detect_automated
from bot.model import Action, Decision, Message, TicketView, TraceStep
from bot.rules.match import Facts
from bot.rules.ownwords import describe_reading
from bot.rules.ruleset import Rule, RuleSet
from bot.vocab import PRIORITIES, REQUESTER_ACTIONS, ActionKind, MessageKind, Priority, spec


def decide(message: Message, ticket: TicketView | None, now: datetime, ruleset: RuleSet, *,
           own_addresses: frozenset[str] = frozenset(),
           own_domain: str | None = None) -> Decision:
    """Classify one message; see the module docstring for how rules combine."""
    try:
        return _decide(message, ticket, ruleset, own_addresses, own_domain)
    except BudgetExceeded:
        raise  # the message is quarantined with the reason, never guessed at
    except Exception as exc:  # noqa: BLE001 - a broken message or rule must never lose the ticket
        return _fallback(message, ruleset, exc)


def _decide(message: Message, ticket: TicketView | None, ruleset: RuleSet,
            own_addresses: frozenset[str], own_domain: str | None) -> Decision:
    machine = detect_automated(message, own_addresses=own_addresses, own_domain=own_domain,
                               setup=ruleset.settings.mail)
    if machine:
        return Decision(ignored=True, reason=machine,
                        trace=(TraceStep("automated", True, machine),))
    trace = [TraceStep("automated", False, "no sign of automated mail")]
    if ticket is not None:
        trace.append(TraceStep(f"ticket #{ticket.id}", True,
                               f"reply to ticket #{ticket.id} ({ticket.state}); the ticket's "
                               "lifecycle handles it, rules are not run"))
        return Decision(ignored=False, reason=None, priority=ticket.priority,
                        topic=ticket.topic, owner=ticket.owner, trace=tuple(trace))

    facts = Facts(message)
    reading = describe_reading(facts.reading, message.attachments)
    if reading:
        trace.append(TraceStep("own words", True, reading))
    matched: list[Rule] = []
    stopped_by: str | None = None
    for rule in ruleset.rules:
        if stopped_by is not None:
            trace.append(TraceStep(rule.name, False, f"not evaluated: '{stopped_by}' matched "
                                   "first"))
            continue
        hit, why = rule.matcher.test(facts)
        trace.append(TraceStep(rule.name, hit, why))
        if hit:
            matched.append(rule)
            if not rule.continue_:
                stopped_by = rule.name
    return _combine(message, matched, ruleset, trace)


def _combine(message: Message, matched: list[Rule], ruleset: RuleSet,
             trace: list[TraceStep]) -> Decision:
    defaults = ruleset.defaults
    requester = reply_recipient(message)
    to_requester = (requester,) if requester else ()

    priorities = [r.priority for r in matched if r.priority]
    priority = min((Priority(p) for p in priorities), key=PRIORITIES.index) if priorities \
        else Priority(defaults.priority)
    topic = next((r.topic for r in matched if r.topic), defaults.topic)
    tags = tuple(dict.fromkeys(t for r in matched for t in r.tags))

    answer: Action | None = None
    forward: Action | None = None
    for rule in matched:
        if rule.action == ActionKind.FORWARD.value:
            if forward is None:
                forward = Action(ActionKind.FORWARD, rule.to,
                                 rule.template or _template(ActionKind.FORWARD), rule.name,
                                 notice_template=rule.notice_template)
            else:
                extra = tuple(t for t in rule.to if t not in forward.to)
                forward = Action(ActionKind.FORWARD, forward.to + extra, forward.template,
                                 forward.rule, notice_template=forward.notice_template)
        elif rule.action in REQUESTER_ACTIONS:
            kind = ActionKind(rule.action)
            if answer is None:
                answer = Action(kind, to_requester, rule.template or _template(kind),
                                rule.name)
            else:
                trace.append(TraceStep(rule.name, True, f"its {rule.action} is not sent: the "
                                       f"requester already gets {answer.kind} from "
                                       f"'{answer.rule}'"))
    if answer is None and forward is None:
        if defaults.action is None:  # the loader guarantees a catch-all rule or a default
            raise RuntimeError("no rule matched and rules.yaml has no default action")
        kind = ActionKind(defaults.action)
        answer = Action(kind, to_requester, defaults.template or _template(kind), "defaults")
        trace.append(TraceStep("defaults", True, f"no rule chose an action: default "
                               f"{defaults.action}"))
    if forward is not None and answer is not None and answer.kind == ActionKind.ACKNOWLEDGE:
        trace.append(TraceStep(answer.rule, True, "acknowledge dropped: the forward notice "
                               "already tells the requester who has the ticket"))
        answer = None

    actions = [a for a in (forward, answer) if a is not None]
    oncall = ruleset.settings.oncall
    if priority == Priority.CRITICAL and oncall:
        source = next((r for r in matched if r.priority == Priority.CRITICAL), None)
        actions.append(Action(ActionKind.ALERT, (oncall,),
                              source.alert_template if source and source.alert_template
                              else _template(ActionKind.ALERT),
                              source.name if source else "defaults"))
    return Decision(
        ignored=False, reason=None, priority=priority, topic=topic, tags=tags,
        rules=tuple(r.name for r in matched), actions=tuple(actions),
        owner=forward.to[0] if forward and forward.to else None,
        followup=any(spec(a.kind).starts_followup for a in actions), trace=tuple(trace))


def _fallback(message: Message, ruleset: RuleSet, exc: Exception) -> Decision:
    """Still acknowledge: a requester hearing nothing is the worst outcome."""
    try:
        requester = reply_recipient(message)
    except Exception:  # noqa: BLE001 - the message object itself is unusable
        requester = None
    error = f"internal error: {type(exc).__name__}: {exc}"
    return Decision(
        ignored=False, reason=None, priority=ruleset.defaults.priority,
        actions=(Action(ActionKind.ACKNOWLEDGE, (requester,) if requester else (),
                        _template(ActionKind.ACKNOWLEDGE), "(internal error)"),),
        trace=(TraceStep("error", True, f"{error}; acknowledged by default"),))


def _template(kind: ActionKind) -> str:
    """The template an action uses when its rule names none: its kind's policy row."""
    return spec(MessageKind(kind)).template or kind.value
