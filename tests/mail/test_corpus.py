"""The wide real-world check: every machine in ../shared/corpus/automated is caught, with a
reason, and no person in ../shared/corpus/tickets is."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bot.mail.automated import detect_automated
from bot.mail.bounce import read_bounce
from bot.mail.parse import parse_message

OWN = frozenset({"support@example.com"})


def test_every_automated_file_is_detected_with_a_reason(corpus: Path) -> None:
    files = sorted((corpus / "automated").glob("*.eml"))
    assert files
    missed = []
    signals: Counter[str] = Counter()
    for path in files:
        msg = parse_message(path.read_bytes())
        reason = detect_automated(msg, own_addresses=OWN, own_domain="example.com")
        if not reason:
            missed.append(path.name)
        else:
            signals[_kind(reason)] += 1
        read_bounce(msg)  # must not raise either
    assert missed == []
    print(f"\n{len(files)} automated files detected; first signal: {dict(signals)}")


def test_no_ticket_is_mistaken_for_a_machine(corpus: Path) -> None:
    files = sorted((corpus / "tickets").glob("*.eml"))
    assert files
    flagged = {}
    for path in files:
        reason = detect_automated(parse_message(path.read_bytes()), own_addresses=OWN,
                                  own_domain="example.com")
        if reason:
            flagged[path.name] = reason
    assert flagged == {}


def test_ticket_quoting_a_bounce_and_html_only_ticket_read_well(corpus: Path) -> None:
    quoted = parse_message((corpus / "tickets" / "03-bounce-550.eml").read_bytes())
    assert "550-5.7.26" in quoted.text
    html = parse_message((corpus / "tickets" / "30-html-only-deliverability.eml").read_bytes())
    assert "All my emails to outlook.com addresses are bouncing" in html.text


def _kind(reason: str) -> str:
    """The signal's name without its detail: "sender x@y" -> "sender"."""
    for kind in ("sender", "bounce subject", "out-of-office subject", "feedback-loop subject",
                 "multipart/report", "Return-Path"):
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0]
