"""The Channel contract (bot/channels/base.py), checked against every channel.

Each channel must return one outcome per item, and await ``on_outcome`` once per item, in
order, as soon as that item's outcome is known and before the next item goes out: the outbox
records the outcome there, so a crash mid-batch leaves at most the message in flight in
doubt. One failing item must not cost the others their outcomes.

Every channel talks to a real far end: a Maildir on disk, aiosmtpd on loopback, the fake
Help Scout, a webhook URL mocked by respx, the dry-run's own output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import respx

from bot.channels.base import Channel, OutboxItem, SendOutcome
from bot.channels.dryrun import DryRunChannel
from bot.channels.helpscout import HelpScoutChannel
from bot.channels.maildir import MaildirChannel
from bot.channels.smtp import SmtpChannel
from bot.channels.webhook import WebhookChannel
from bot.clock import FakeClock
from bot.config import SmtpSettings
from bot.demo.fake_helpscout import FakeHelpScout
from bot.helpscout import ops
from bot.helpscout.client import HelpScoutClient
from tests.channels.outbox_items import NOW, item
from tests.helpscout.conftest import hs_settings
from tests.servers.smtp import SmtpServer

WEBHOOK_URL = "https://chat.example.com/hooks/T0/B0/secret"
COUNT = 3  # items per batch
FAILING = 1  # the position scripted to fail, in the failing-item cases


@dataclass
class Case:
    """A channel, the items of one batch, and how many sends its far end has accepted."""

    channel: Channel
    items: list[OutboxItem]
    delivered: Callable[[], int]
    failing: int | None = None
    # called with a position once its outcome is recorded (scripts the far end's failures)
    after: Callable[[int], None] = lambda position: None


Build = Callable[[pytest.FixtureRequest, Path, int | None], Iterator[Case]]


def _mail_items(channel: str, failing: int | None) -> list[OutboxItem]:
    """One ticket's mail: every channel keeps one ticket's messages in order."""
    items = []
    for n in range(1, COUNT + 1):
        to = ("nobody@customer.example",) if n - 1 == failing else ("ann@customer.example",)
        items.append(dataclasses.replace(item(n, to=to), channel=channel))
    return items


def maildir_case(request: pytest.FixtureRequest, tmp: Path,
                 failing: int | None) -> Iterator[Case]:
    box = tmp / "outbox"
    parked = tmp / "tmp-parked"

    def after(position: int) -> None:
        # a real write error for the failing item: tmp/ is not a directory while it is written
        if failing is not None and position == failing - 1:
            (box / "tmp").rename(parked)
            (box / "tmp").write_text("in the way")
        elif failing is not None and position == failing:
            (box / "tmp").unlink()
            parked.rename(box / "tmp")

    yield Case(MaildirChannel(box), _mail_items("maildir", failing),
               lambda: len(list((box / "new").iterdir())), failing, after)


def smtp_case(request: pytest.FixtureRequest, tmp: Path,
              failing: int | None) -> Iterator[Case]:
    server: SmtpServer = request.getfixturevalue("smtp_server")
    server.refuse("nobody@customer.example")  # 550 at RCPT: a permanent failure
    settings = SmtpSettings(host=server.host, port=server.port, user=None, password=None,
                            tls="none")
    channel = SmtpChannel(settings, backoff=0.01, timeout=5)
    yield Case(channel, _mail_items("smtp", failing), lambda: len(server.messages), failing)


def helpscout_case(request: pytest.FixtureRequest, tmp: Path,
                   failing: int | None) -> Iterator[Case]:
    clock = FakeClock(NOW)
    fake = FakeHelpScout(clock=clock)
    conv = fake.add_conversation("Help", "ann@example.com", "<p>My site is down</p>")
    customer = int(fake.conversation(conv)["primaryCustomer"]["id"])
    gone = fake.add_conversation("Old", "bob@example.com", "<p>?</p>")
    fake.delete(gone)  # a reply to it is a permanent failure
    items = []
    for n in range(1, COUNT + 1):
        target, who = (gone, 501) if n - 1 == failing else (conv, customer)
        payload = ops.reply_op(target, who, f"Reply {n}", None, "active", f"sb:contract:{n}")
        items.append(OutboxItem(id=n, idem_key=f"k{n}", channel="helpscout", kind="acknowledge",
                                ticket_id=1, message_id=f"helpscout:k{n}", envelope_from="",
                                recipients=(), payload=payload))
    client = HelpScoutClient(hs_settings(), clock=clock, transport=fake.transport(),
                             max_attempts=3)

    def delivered() -> int:
        return sum(t["type"] == "message" for t in fake.threads(conv))

    yield Case(HelpScoutChannel(client), items, delivered, failing)


def webhook_case(request: pytest.FixtureRequest, tmp: Path,
                 failing: int | None) -> Iterator[Case]:
    accepted: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        text = json.loads(req.content)["text"]
        if text == "refuse me":
            return httpx.Response(400, text="invalid_payload")
        accepted.append(text)
        return httpx.Response(200, text="ok")

    items = []
    for n in range(1, COUNT + 1):
        text = "refuse me" if n - 1 == failing else f"Alert {n}: mail is failing"
        items.append(OutboxItem(id=n, idem_key=f"alert:{n}", channel="webhook", kind="alert",
                                ticket_id=None, message_id=f"webhook:{n}", envelope_from="",
                                recipients=(), payload=json.dumps({"text": text}).encode()))
    with respx.mock(assert_all_called=True) as router:
        router.post(WEBHOOK_URL).mock(side_effect=answer)
        yield Case(WebhookChannel(WEBHOOK_URL), items, lambda: len(accepted), failing)


def dryrun_case(request: pytest.FixtureRequest, tmp: Path,
                failing: int | None) -> Iterator[Case]:
    out = io.StringIO()
    yield Case(DryRunChannel("smtp", out), _mail_items("smtp", None),
               lambda: out.getvalue().count("would send"))


ALL = [
    pytest.param(maildir_case, id="maildir"),
    pytest.param(smtp_case, id="smtp", marks=pytest.mark.slow),
    pytest.param(helpscout_case, id="helpscout"),
    pytest.param(webhook_case, id="webhook"),
    pytest.param(dryrun_case, id="dryrun"),
]
CAN_FAIL = [p for p in ALL if p.id != "dryrun"]  # a dry run sends nothing


@dataclass
class Run:
    returned: list[SendOutcome]
    reported: list[tuple[int, SendOutcome]]
    delivered_when_reported: list[int]


def run_batch(case: Case) -> Run:
    reported: list[tuple[int, SendOutcome]] = []
    seen: list[int] = []
    positions = {it.id: p for p, it in enumerate(case.items)}

    async def on_outcome(it: OutboxItem, outcome: SendOutcome) -> None:
        reported.append((it.id, outcome))
        seen.append(case.delivered())
        case.after(positions[it.id])

    async def go() -> list[SendOutcome]:
        try:
            return await case.channel.send_batch(case.items, on_outcome=on_outcome)
        finally:
            await case.channel.aclose()

    return Run(asyncio.run(go()), reported, seen)


def build(request: pytest.FixtureRequest, tmp_path: Path, failing: int | None) -> Iterator[Case]:
    factory: Build = request.param
    yield from factory(request, tmp_path, failing)


@pytest.fixture(params=ALL)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    yield from build(request, tmp_path, None)


@pytest.fixture(params=CAN_FAIL)
def failing_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    yield from build(request, tmp_path, FAILING)


def test_every_outcome_is_reported_once_in_order_as_it_happens(case: Case) -> None:
    run = run_batch(case)
    assert [o.status for o in run.returned] == ["sent"] * COUNT
    assert run.reported == [(it.id, o) for it, o in zip(case.items, run.returned, strict=True)]
    # reported before the next item went out: the far end had exactly this many then
    assert run.delivered_when_reported == list(range(1, COUNT + 1))
    assert case.delivered() == COUNT


def test_one_failing_item_does_not_cost_the_others_their_outcomes(failing_case: Case) -> None:
    case = failing_case
    run = run_batch(case)
    statuses = [o.status for o in run.returned]
    assert len(statuses) == COUNT
    assert statuses[FAILING] in {"failed", "retry"}
    assert statuses[:FAILING] + statuses[FAILING + 1:] == ["sent"] * (COUNT - 1)
    assert run.reported == [(it.id, o) for it, o in zip(case.items, run.returned, strict=True)]
    assert run.delivered_when_reported == [
        sum(p != FAILING for p in range(position + 1)) for position in range(COUNT)]
    assert case.delivered() == COUNT - 1


@pytest.mark.slow
def test_smtp_sessions_keep_each_tickets_outcomes_in_order(smtp_server: SmtpServer) -> None:
    """Two sessions may interleave tickets, never one ticket's messages."""
    items = [item(n, ticket=7 + n % 2) for n in range(1, 7)]
    settings = SmtpSettings(host=smtp_server.host, port=smtp_server.port, user=None,
                            password=None, tls="none", connections=2)
    run = run_batch(Case(SmtpChannel(settings, backoff=0.01, timeout=5), items,
                         lambda: len(smtp_server.messages)))
    assert [o.status for o in run.returned] == ["sent"] * 6
    assert sorted(i for i, _ in run.reported) == [it.id for it in items]
    by_id = {it.id: it for it in items}
    for ticket in (7, 8):
        ids = [i for i, _ in run.reported if by_id[i].ticket_id == ticket]
        assert ids == [it.id for it in items if it.ticket_id == ticket]
    assert dict(run.reported) == {it.id: o for it, o in zip(items, run.returned, strict=True)}
