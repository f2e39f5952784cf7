"""The robots that slipped through before issue 18, each signal alone; and the people and
set-ups (a list in front of support, web forms, a forwarding relay) that must stay people."""

from __future__ import annotations

import pytest

from bot.mail.addresses import reply_recipient
from bot.mail.automated import NO_SETUP, MailSetup, detect_automated
from bot.mail.parse import parse_message
from bot.model import Message, SourceKind

OWN = frozenset({"support@example.com"})


def detect(raw: str, setup: MailSetup = NO_SETUP) -> str | None:
    msg = parse_message(raw.encode())
    return detect_automated(msg, own_addresses=OWN, own_domain="example.com", setup=setup)


def mail(headers: str, body: str = "Hello,\nplease have a look.\n") -> str:
    return f"{headers.strip()}\nMessage-ID: <m@x.example>\n\n{body}"


DMARC_ZIP = mail(
    "From: dmarcreport@microsoft.com\nTo: dmarc@example.com\n"
    "Subject: Report Domain: example.com Submitter: protection.outlook.com Report-ID: abc\n"
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b", "--b\n"
    "Content-Type: text/plain\n\nThis is a DMARC aggregate report from Microsoft.\n--b\n"
    "Content-Type: application/gzip\nContent-Disposition: attachment; "
    'filename="protection.outlook.com!example.com!1671408000!1671494400.xml.gz"\n'
    "Content-Transfer-Encoding: base64\n\nH4sIAAAAAAAAAwMAAAAAAAAAAAA=\n--b--\n")

ROBOTS = {
    "dmarc attachment": (DMARC_ZIP, "DMARC aggregate report (protection.outlook.com!"
                         "example.com!1671408000!1671494400.xml.gz)"),
    "dmarc subject": (mail("From: reports@receiver.example\nSubject: Report Domain: example.com"
                           " Submitter: receiver.example Report-ID: <2002.02.15.1>"),
                      "DMARC aggregate report subject 'Report Domain: example.com Submitter:"
                      " receiver.example Re...'"),
    "tls header": (mail("From: tls@receiver.example\nTLS-Report-Domain: example.com\n"
                        "Subject: hello"), "SMTP TLS report (TLS-Report-Domain: example.com)"),
    "old complaint": (mail("From: abuse@isp.example\nSubject: [SpamCop (http://x.example/) "
                           "id:7261]Great offer"), "feedback-loop subject '[SpamCop "
                          "(http://x.example/) id:7261]Great offer'"),
    "delay": (mail("From: postmaster-bot@mx.example\nSubject: Delivery delayed: Your invoice"),
              "bounce subject 'Delivery delayed: Your invoice'"),
    "delay warning": (mail("From: relay@mx.example\nSubject: Message delivery is delayed"),
                      "delayed-delivery subject 'Message delivery is delayed'"),
    "boxtrapper": (mail("From: ann@vendor.example\nX-Boxtrapper: 6Tb9hvJ9y\nSubject: Verify"),
                   "challenge-response (X-Boxtrapper header)"),
    "choicemail": (mail("From: ann@vendor.example\nX-ChoiceMail-Registration-Request: 1\n"
                        "Subject: Hi"), "challenge-response (X-ChoiceMail-Registration-Request"
                   " header)"),
    "robot word at the end": (mail("From: googlealerts-noreply@google.com\n"
                                   "Subject: Google Alert - deliverability"),
                              "sender googlealerts-noreply@google.com"),
    "lotus AUTO:": (mail("From: ann@vendor.example\nSubject: AUTO: Ann Example is out of the "
                         "office (returning 12/01/2026)"),
                    "out-of-office subject 'AUTO: Ann Example is out of the office (returning"
                    " 12/01/2...'"),
    "bracketed": (mail("From: desk@vendor.example\nSubject: [Auto-Reply] Ticket received"),
                  "out-of-office subject '[Auto-Reply] Ticket received'"),
    "bracketed generated": (mail("From: ops@vendor.example\nSubject: [AUTO GENERATED] Weekly"),
                            "out-of-office subject '[AUTO GENERATED] Weekly'"),
    "bracketed german": (mail("From: ann@vendor.example\nSubject: [Automatische Antwort] Ihre "
                              "Anfrage"), "out-of-office subject '[Automatische Antwort] Ihre"
                         " Anfrage'"),
    "bracketed chinese": (mail("From: ann@vendor.example\nSubject: 【自动回复】您的来信"),
                          "out-of-office subject '【自动回复】您的来信'"),
    "second precedence": (mail("From: ann@vendor.example\nPrecedence: never-bounce\n"
                               "Precedence: bulk\nSubject: News"), "Precedence: bulk"),
    "second auto-submitted": (mail("From: ann@vendor.example\nAuto-Submitted: no\n"
                                   "Auto-Submitted: auto-generated\nSubject: x"),
                              "Auto-Submitted: auto-generated"),
}


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_robots_from_the_wider_world_are_named(name: str) -> None:
    raw, reason = ROBOTS[name]
    assert detect(raw) == reason


PEOPLE = {
    "suppress alone": mail("From: ann@customer.example\nX-Auto-Response-Suppress: All\n"
                           "Subject: Our emails bounce"),
    "noreply in the middle": mail("From: ann.noreplyson@customer.example\nSubject: Hi"),
    "re: auto": mail("From: ann@customer.example\nSubject: Re: Auto: hi"),
    "a person asks about reports": mail("From: ann@customer.example\nSubject: What does "
                                        "Report Domain: mean in the DMARC mail?"),
    "a person's bracket tag": mail("From: ann@customer.example\nSubject: [URGENT] Our emails "
                                   "are delayed"),
    "delayed in a question": mail("From: ann@customer.example\nSubject: Why is my delivery "
                                  "delayed?"),
    "delayed in a report": mail("From: ann@customer.example\nSubject: Delivery delayed for our "
                                "newsletter"),
    "a vendor named": mail("From: ann@customer.example\nSubject: ChoiceMail blocks your emails"),
    "confirm in a request": mail("From: ann@customer.example\nSubject: Please confirm your "
                                 "email was received"),
}


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_people_stay_people(name: str) -> None:
    assert detect(PEOPLE[name]) is None


GROUP = mail("From: 'Ann' via Support <support@example.com>\nReply-To: ann@customer.example\n"
             "List-Id: <support.example.com>\nPrecedence: list\nMailing-list: list "
             "support@example.com\nList-Unsubscribe: <mailto:support+unsubscribe@example.com>\n"
             "Subject: Can't log in")


def test_a_google_group_in_front_of_support_makes_its_members_people() -> None:
    assert detect(GROUP) == ("from our own address support@example.com (via List-Id "
                             "support.example.com)")
    setup = MailSetup(list_ids=frozenset({"support.example.com"}))
    assert detect(GROUP, setup) is None
    other = GROUP.replace("<support.example.com>", "<news.vendor.example>")
    assert detect(other, setup) == ("from our own address support@example.com (via List-Id "
                                    "news.vendor.example)")
    robot = GROUP.replace("Subject: Can't log in", "Auto-Submitted: auto-replied\nSubject: x")
    assert detect(robot, setup) == "Auto-Submitted: auto-replied"


def test_web_form_senders_are_people_when_reply_to_names_one() -> None:
    form = mail("From: noreply@forms.example.com\nReply-To: ann@customer.example\n"
                "Subject: Contact form: emails not arriving")
    setup = MailSetup(form_senders=frozenset({"noreply@forms.example.com"}))
    assert detect(form) == "sender noreply@forms.example.com (replies to ann@customer.example)"
    assert detect(form, setup) is None
    lone = form.replace("Reply-To: ann@customer.example\n", "")
    assert detect(lone, setup) == ("web form sender noreply@forms.example.com without a "
                                   "Reply-To: nobody to answer")
    robot = form.replace("ann@customer.example", "no-reply@customer.example")
    assert detect(robot, setup) == ("Reply-To no-reply@customer.example: our answers would "
                                    "reach a robot")
    person = parse_message(mail("From: ann@customer.example\nReply-To: noreply@customer.example"
                                "\nSubject: x").encode())
    assert detect_automated(person, own_addresses=OWN) is None
    assert reply_recipient(person) == "ann@customer.example"  # never the robot Reply-To


def test_a_relay_stamping_auto_forwarded_keeps_other_signals() -> None:
    relayed = mail("From: ann@customer.example\nAuto-Submitted: auto-forwarded\nSubject: Hi")
    setup = MailSetup(relay_auto_forwarded=True)
    assert detect(relayed) == "Auto-Submitted: auto-forwarded"
    assert detect(relayed, setup) is None
    ooo = relayed.replace("Subject: Hi", "Subject: Out of office: Hi")
    assert detect(ooo, setup) == "out-of-office subject 'Out of office: Hi'"


def test_help_scout_threads_have_no_headers_so_a_reports_opening_line_counts() -> None:
    def thread(subject: str, text: str) -> str | None:
        msg = Message(source=SourceKind.HELPSCOUT, message_id=None,
                      from_addr="dmarcreport@microsoft.com", subject=subject, text=text)
        return detect_automated(msg, own_addresses=OWN, own_domain="example.com")

    report = "This is a DMARC aggregate report from Microsoft Corporation. For Emails received"
    assert thread("Report Domain: example.com Submitter: protection.outlook.com Report-ID: 1",
                  report).startswith("DMARC aggregate report subject")
    assert thread("Weekly", report) == ("robot's opening line 'This is a DMARC aggregate "
                                        "report'")
    assert thread("Weekly", "Hi, what is this DMARC aggregate report we got?") is None
    email = parse_message(f"From: ann@customer.example\nSubject: Weekly\n\n{report}".encode())
    assert detect_automated(email, own_addresses=OWN) is None  # mail has headers to judge by
