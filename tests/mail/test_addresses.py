"""Reading addresses and ticket tags: who the bot answers, which ticket a reply is for."""

from __future__ import annotations

import pytest

from bot.mail.addresses import reply_recipient, valid_address
from bot.mail.ticketref import find_ticket_ref
from bot.model import Message


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: Re: Fwd: x [#123]", 123),
    ("[#5] something", 5),
    ("Re: their ticket [#99] [#123]", 123),
    ("no tag here #123", None),
    ("", None),
])
def test_find_ticket_ref(subject: str, expected: int | None) -> None:
    assert find_ticket_ref(subject) == expected


# -- who to answer ----------------------------------------------------------------------------
def incoming(**fields: object) -> Message:
    base: dict[str, object] = {"source": "email", "message_id": "<m@x>",
                               "from_addr": "ann@customer.example"}
    base.update(fields)
    return Message(**base)  # type: ignore[arg-type]


def test_reply_goes_to_reply_to_when_present_else_from() -> None:
    assert reply_recipient(incoming()) == "ann@customer.example"
    assert reply_recipient(incoming(reply_to=("Team@Customer.example",),
                                    return_path="bounces+x@mailer.example")) \
        == "team@customer.example"
    assert reply_recipient(incoming(return_path="bounces+x@mailer.example")) \
        == "ann@customer.example"


def test_null_return_path_means_never_answer() -> None:
    assert reply_recipient(incoming(return_path="")) is None


def test_unusable_addresses_fall_through_or_give_none() -> None:
    assert reply_recipient(incoming(reply_to=("not an address",))) == "ann@customer.example"
    assert reply_recipient(incoming(from_addr="", return_path="ann@x.example")) == "ann@x.example"
    assert reply_recipient(incoming(from_addr="mailer-daemon")) is None


@pytest.mark.parametrize("address", [
    "ann@x.example\r\nbcc: evil@y.example", "ann @x.example", "a@b@c.example", "@x.example",
    "ann@", '"quoted"@x.example', "zoë@x.example", "ann@[127.0.0.1]", "ann@-bad-.example",
])
def test_invalid_addresses_are_refused(address: str) -> None:
    assert valid_address(address) is None


def test_idn_domains_become_ascii() -> None:
    assert valid_address("ann@bücher.example") == "ann@xn--bcher-kva.example"
