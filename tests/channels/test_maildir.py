"""The outbox Maildir: a real Maildir, written once per Message-ID even across restarts."""

from __future__ import annotations

import mailbox
from pathlib import Path

from bot.channels.maildir import MaildirChannel
from tests.channels.outbox_items import item, send


def test_writes_each_payload_into_a_real_maildir(tmp_path: Path) -> None:
    items = [item(n) for n in range(3)]
    outcomes = send(MaildirChannel(tmp_path / "outbox"), items)
    assert [o.status for o in outcomes] == ["sent"] * 3
    box = mailbox.Maildir(str(tmp_path / "outbox"), create=False)
    assert {m["Message-ID"] for m in box.itervalues()} == {i.message_id for i in items}
    assert sorted(p.read_bytes() for p in (tmp_path / "outbox" / "new").iterdir()) == sorted(
        i.payload for i in items)
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []


def test_file_names_sort_in_sending_order(tmp_path: Path) -> None:
    items = [item(n) for n in range(10)]
    send(MaildirChannel(tmp_path), items)
    names = sorted(p.name for p in (tmp_path / "new").iterdir())
    by_name = [(tmp_path / "new" / n).read_bytes() for n in names]
    assert by_name == [i.payload for i in items]


def test_the_same_message_id_is_never_written_twice(tmp_path: Path) -> None:
    it = item()
    ch = MaildirChannel(tmp_path)
    first, again = send(ch, [it, it])
    assert first.status == again.status == "sent"
    assert "already" in again.detail
    # a restart (new channel) still knows it, also after a mail client moved it to cur/
    moved = next((tmp_path / "new").iterdir())
    moved.rename(tmp_path / "cur" / (moved.name + ":2,S"))
    assert send(MaildirChannel(tmp_path), [it])[0].detail.startswith("already")
    assert len(list((tmp_path / "new").iterdir())) + len(list((tmp_path / "cur").iterdir())) == 1


def test_an_unwritable_maildir_is_a_retry_not_a_loss(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("not a directory")
    outcomes = send(MaildirChannel(blocker), [item()])
    assert outcomes[0].status == "retry"
