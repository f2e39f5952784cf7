"""`explain` on a reply: what the worker does with it as a reply on its ticket, never as a
new ticket; and then the worker does exactly that."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import REPO, deliver, embedded_settings, make_mail, outbox_mail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DETAILS = ("When I click Save the page goes blank. It happens every time, Chrome on "
           "Windows 11.")


def cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


@pytest.fixture
def asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, bytes]:
    """A vague ticket, asked for details; returns the requester's reply to the ask."""
    settings = embedded_settings(tmp_path)
    for name, value in {"SUPPORTBOT_STATE": str(settings.state), "SUPPORTBOT_RULES":
                        str(REPO / "rules.yaml"), "SUPPORTBOT_TEMPLATES": str(REPO / "templates"),
                        "SUPPORTBOT_FROM": "Acme Support <support@example.com>"}.items():
        monkeypatch.setenv(name, value)
    deliver(tmp_path / "inbox", make_mail(subject="help", body="help",
                                          message_id="<vague@cust.example>"), T0)
    cycle(settings, FakeClock(T0))
    (ask,) = outbox_mail(tmp_path / "outbox")
    reply = make_mail(subject=f"Re: {ask.subject}", message_id="<details@cust.example>",
                      in_reply_to=str(ask.message["Message-ID"]),
                      body=f"{DETAILS}\n\nOn Mon, Acme Support wrote:\n> Could you tell us more?")
    return settings, reply


def explain_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> dict[str, object]:
    assert main(["explain", str(path), "--json", *extra]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_explain_finds_the_ticket_and_says_what_the_worker_then_does(
        asked: tuple[Settings, bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings, reply = asked
    path = tmp_path / "reply.eml"
    path.write_bytes(reply)

    shown = explain_json(capsys, path)

    assert shown["reply"] == {"ticket": 1, "handling": "decide again", "side": "requester",
                              "reason": shown["reply"]["reason"],  # type: ignore[index]
                              "sender": "ann@customer.example"}
    assert shown["rules"] == ["bugs"]
    kinds = [(p["kind"], p["to"]) for p in shown["previews"]]  # type: ignore[attr-defined]
    assert kinds == [("forward", ["product-support@example.com"]),
                     ("forwarded", ["ann@customer.example"])]
    store = Store(settings.state)
    assert [m.status for m in store.ticket_messages(1)] == ["ticket"]  # explain wrote nothing
    store.close()

    deliver(tmp_path / "inbox", reply, T0 + timedelta(hours=2))
    cycle(settings, FakeClock(T0 + timedelta(hours=2)))
    sent = [(m.kind, m.to) for m in outbox_mail(tmp_path / "outbox")][1:]
    assert sent == [("forward", "product-support@example.com"),
                    ("forwarded", "ann@customer.example")]


@pytest.mark.usefixtures("asked")
def test_explain_ticket_n_and_a_missing_ticket(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    unthreaded = tmp_path / "unthreaded.eml"
    unthreaded.write_bytes(make_mail(subject="more", body=DETAILS,
                                     message_id="<x@cust.example>"))
    assert explain_json(capsys, unthreaded)["reply"] is None  # a new ticket, as it would be
    on_ticket = explain_json(capsys, unthreaded, "--ticket", "1")
    assert on_ticket["reply"]["handling"] == "decide again"  # type: ignore[index]
    assert main(["explain", str(unthreaded), "--ticket", "99"]) == 2
    assert "ticket #99 is not in" in capsys.readouterr().err


def test_explain_refuses_a_forged_reference_as_the_worker_does(
        asked: tuple[Settings, bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, reply = asked
    ask_id = next(line.split(b":", 1)[1].strip().decode() for line in reply.splitlines()
                  if line.lower().startswith(b"in-reply-to:"))
    forged = tmp_path / "forged.eml"
    forged.write_bytes(make_mail(sender="Eve <eve@elsewhere.example>", subject="Re: help",
                                 body=DETAILS, message_id="<eve@elsewhere.example>",
                                 in_reply_to=ask_id))
    shown = explain_json(capsys, forged)
    assert shown["reply"] is None  # a new ticket of Eve's, not a reply on Ann's
    assert shown["rules"] == ["bugs"]
