"""detect_automated: every signal fires on its own, people stay people, strongest first."""

from __future__ import annotations

import pytest

from bot.mail.automated import automated_signals, detect_automated, is_own_message_id
from bot.mail.parse import parse_message
from bot.model import Headers, Message
from tests.mail._fixtures import OWN, OWN_DOMAIN, fixture, fixture_names

EXPECTED = {
    "auto-generated.eml": "Auto-Submitted: auto-generated",
    "auto-submitted.eml": "Auto-Submitted: auto-replied",
    "bounces-verp.eml": "sender bounces+12345-abcd=example.com@mail.vendor.example",
    "delivery-status-part.eml": "message/delivery-status part",
    "list-id.eml": "List-Id: customers.lists.vendor.example",
    "list-request.eml": "sender users-request@lists.example.org",
    "list-unsubscribe.eml": "List-Unsubscribe header",
    "mailer-daemon.eml": "sender mailer-daemon@mx.vendor.example",
    "multipart-report-mdn.eml": "multipart/report (disposition-notification)",
    "noreply.eml": "sender no-reply@shop.example",
    "null-return-path.eml": "null Return-Path <>",
    "own-address.eml": "from our own address support@example.com",
    "own-message-id.eml": "our own Message-ID <sb.42.ack.Zx81kq@example.com>",
    "owner-list.eml": "sender owner-users@lists.example.org",
    "postmaster.eml": "sender postmaster@vendor.example",
    "precedence-auto-reply.eml": "Precedence: auto_reply",
    "precedence-bulk.eml": "Precedence: bulk",
    "subject-abwesenheitsnotiz.eml": "out-of-office subject 'Abwesenheitsnotiz: Ihre Anfrage'",
    "subject-afwezig.eml": "out-of-office subject 'Afwezig: uw vraag'",
    "subject-automatic-reply.eml": "out-of-office subject 'Automatic reply: Your request'",
    "subject-dsn-failure.eml": "bounce subject 'Delivery Status Notification (Failure)'",
    "subject-japanese.eml": "out-of-office subject '自動応答: お問い合わせ'",
    "subject-lotus.eml": "out-of-office subject 'Pat Robot is out of the office.'",
    "subject-mail-delivery-failed.eml":
        "bounce subject 'Mail delivery failed: returning message to sender'",
    "subject-out-of-office.eml": "out-of-office subject 'Out of Office: Your request'",
    "subject-reponse-automatique.eml":
        "out-of-office subject 'Réponse automatique : Votre demande'",
    "subject-resposta-automatica.eml": "out-of-office subject 'Resposta automática: pedido'",
    "subject-respuesta-automatica.eml":
        "out-of-office subject 'Respuesta automática: Su solicitud'",
    "subject-returned-mail.eml": "bounce subject 'Returned mail: see transcript for details'",
    "subject-risposta-automatica.eml":
        "out-of-office subject 'Risposta automatica: la sua richiesta'",
    "subject-undeliverable.eml": "bounce subject 'Undeliverable: Your request'",
    "x-autoreply.eml": "X-Autoreply: yes",
    "x-autorespond.eml": "X-Autorespond: Vacation",
    "x-failed-recipients.eml": "X-Failed-Recipients: gone@example.net",
    "x-loop.eml": "X-Loop: helpdesk@vendor.example",
}


def detect(msg: Message) -> str | None:
    return detect_automated(msg, own_addresses=OWN, own_domain=OWN_DOMAIN)


def test_every_signal_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == fixture_names("automated")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_signal_fires_alone(name: str) -> None:
    assert detect(fixture(f"automated/{name}")) == EXPECTED[name]


@pytest.mark.parametrize("name", fixture_names("human"))
def test_people_who_talk_about_robots_are_people(name: str) -> None:
    msg = fixture(f"human/{name}")
    assert detect(msg) is None, list(automated_signals(msg, own_addresses=OWN,
                                                       own_domain=OWN_DOMAIN))


def test_strongest_signal_is_the_reason_and_all_are_listed() -> None:
    msg = parse_message(
        b"From: MAILER-DAEMON@mx.example.net\nReturn-Path: <>\nPrecedence: bulk\n"
        b"Auto-Submitted: auto-replied\nSubject: Undeliverable: hello\n"
        b"Message-ID: <sb.9.ack.zz@example.com>\n\nbody\n")
    assert list(automated_signals(msg, own_addresses=OWN, own_domain=OWN_DOMAIN)) == [
        "our own Message-ID <sb.9.ack.zz@example.com>",
        "Auto-Submitted: auto-replied",
        "null Return-Path <>",
        "Precedence: bulk",
        "sender mailer-daemon@mx.example.net",
        "bounce subject 'Undeliverable: hello'",
    ]


def test_auto_submitted_no_is_a_person() -> None:
    msg = parse_message(b"From: a@customer.example\nAuto-Submitted: no\n\nhello\n")
    assert detect(msg) is None


def test_body_quoting_a_bounce_is_ignored() -> None:
    msg = parse_message(
        b"From: ann@customer.example\nSubject: help\n\n"
        b"I got this:\n> Undeliverable: hello\n> From: MAILER-DAEMON@mx.example.net\n"
        b"> Auto-Submitted: auto-replied\n> Status: 5.1.1\n")
    assert detect(msg) is None


def test_help_scout_message_without_headers_is_judged_by_sender_and_subject() -> None:
    person = Message(source="helpscout", message_id=None, from_addr="ann@customer.example",
                     subject="Out of office replies", headers=Headers())
    robot = Message(source="helpscout", message_id=None, from_addr="noreply@vendor.example",
                    subject="Hello")
    assert detect(person) is None
    assert detect(robot) == "sender noreply@vendor.example"


@pytest.mark.parametrize("mid,domain,own", [
    ("<sb.42.ack.Zx81kq@example.com>", "example.com", True),
    ("<sb.42.ack.Zx81kq@EXAMPLE.com>", "example.com", True),
    ("<sb.42.ack.Zx81kq@example.com>", None, True),
    ("<sb.42.ack.Zx81kq@other.example>", "example.com", False),
    ("<sb.42.Zx81kq@example.com>", "example.com", False),
    ("<abc.42.ack.Zx81kq@example.com>", "example.com", False),
    ("sb.42.ack.Zx81kq@example.com", "example.com", False),
    ("", "example.com", False),
    (None, "example.com", False),
])
def test_is_own_message_id(mid: str | None, domain: str | None, own: bool) -> None:
    assert is_own_message_id(mid, domain) is own


@pytest.mark.parametrize("subject", [
    "Re: my emails bounce - Undeliverable?",
    "Fwd: Undeliverable: newsletter",
    "Undeliverable emails to gmail",
    "Returned mail keeps happening",
    "Mail delivery failed for all my campaigns",
    "Delivery failure to outlook",
    "Out of office replies counted as opens",
    "Automatic reply not working",
    "Autoreply settings",
    "Unzustellbare E-Mails an Gmail",
    "Réponse automatique ne marche pas",
    "Question about failure notices",
])
def test_human_subjects_near_robot_phrases(subject: str) -> None:
    msg = Message(source="email", message_id="<h@customer.example>",
                  from_addr="ann@customer.example", subject=subject)
    assert detect(msg) is None


@pytest.mark.parametrize("subject", [
    "Undeliverable: Re: [#42] Your request",
    "[EXTERNAL] Undeliverable: Your request",
    "Unzustellbar: Ihre Anfrage",
    "Non remis : Votre demande",
    "Onbestelbaar: uw vraag",
    "Non recapitabile: la sua richiesta",
    "Delivery Status Notification (Delay)",
    "Warning: could not send message for past 4 hours",
    "failure notice",
    "Automatische Antwort: Ihre Anfrage",
    "Fuera de la oficina: Su solicitud",
    "Autosvar: Din fråga",
    "自動返信：お問い合わせ",
])
def test_robot_subjects_in_many_languages(subject: str) -> None:
    msg = Message(source="email", message_id="<r@vendor.example>",
                  from_addr="pat@vendor.example", subject=subject)
    reason = detect(msg)
    assert reason is not None and "subject" in reason
