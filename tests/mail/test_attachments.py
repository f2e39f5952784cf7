"""Files an owner attached reach the requester: read from their mail, written as parts."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from bot.mail.attachments import MAX_FILES, files_of
from bot.mail.compose import compose


def owner_mail(*files: tuple[str, str, bytes], forward: bool = True) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pat <billing@example.com>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Re: [#2] Assigned to you: invoice"
    msg.set_content("The corrected invoice is attached.")
    for name, ctype, data in files:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    if forward:  # a client that attaches what it answers: never passed on
        inner = EmailMessage()
        inner["Subject"] = "[#2] Assigned to you: invoice"
        inner.set_content("Priority: normal  Rule: billing")
        msg.add_attachment(inner)
    return msg.as_bytes()


def test_real_attachments_are_read_and_an_attached_message_is_not() -> None:
    files, left_out = files_of(owner_mail(("invoice 1234.pdf", "application/pdf", b"%PDF-1"),
                                          ("../../etc/passwd", "text/plain", b"x")))
    assert [(f.filename, f.content_type, f.data) for f in files] == [
        ("invoice 1234.pdf", "application/pdf", b"%PDF-1"), ("etc_passwd", "text/plain", b"x")]
    assert left_out == 0


def test_too_many_files_are_counted_not_passed_on() -> None:
    many = [(f"f{i}.txt", "text/plain", b"x") for i in range(MAX_FILES + 2)]
    files, left_out = files_of(owner_mail(*many, forward=False))
    assert (len(files), left_out) == (MAX_FILES, 2)
    assert files_of(b"not mail at all \xff") == ((), 0)


def test_compose_writes_the_files_as_attachments_that_read_back() -> None:
    (pdf,), _ = files_of(owner_mail(("invoice.pdf", "application/pdf", bytes(range(256))),
                                    forward=False))
    raw = compose(kind="owner_reply", from_header="Support <support@example.com>",
                  to=["ann@customer.example"], subject="Re: invoice [#2]", text="Here it is.",
                  html=None, message_id="<sb.2.owner_reply.00ff@example.com>",
                  date=datetime(2026, 11, 23, tzinfo=UTC), files=[pdf])
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage) and msg.get_content_type() == "multipart/mixed"
    (part,) = list(msg.iter_attachments())
    assert part.get_filename() == "invoice.pdf"
    assert part.get_payload(decode=True) == bytes(range(256))
    body = msg.get_body(("plain",))
    assert body is not None and "Here it is." in body.get_content()
