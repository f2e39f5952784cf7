"""The state's size and its rebuild: what a forwarded large message costs, how fast an
empty store is rebuilt from a Sent folder.

Usage: .venv/bin/python bench/bench_state.py [--quick]

  (a) store growth: a billing question with an incompressible attachment of 1, 8 and 31 MB
      goes through the embedded worker (the rules forward it to billing, attached). Printed:
      the message's size, the raw bytes the store keeps for it now (the blob once), what the
      old layout kept (the ledger's compressed copy plus the forward's whole payload), and
      the SQLite file's growth.
  (b) rebuild: N tickets answered by a worker with a Sent folder (a private Dovecot and an
      aiosmtpd on loopback), the state file deleted, then one `cycle()` on the empty store:
      the rebuild's wall time and messages re-sent (must be 0), for two sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import log
from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import open_worker
from bot.store import Store
from tests.helpers import deliver, embedded_settings
from tests.imap_helpers import imap_settings, ticket_mail
from tests.servers.dovecot import DovecotServer, Mailbox
from tests.servers.smtp import SmtpServer

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MB = 1024 * 1024


def billing_mail(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Marcus Lee <marcus@leeproperties.example>"
    msg["To"] = "Support <support@example.com>"
    msg["Subject"] = "Charged twice this month"
    msg["Message-ID"] = f"<big-{size}@leeproperties.example>"
    msg.set_content("I was charged twice for my November subscription; the statement is "
                    "attached. Could you refund one of the charges?")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="pdf",
                       filename="statement.pdf")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def cycle(settings: Settings, clock: FakeClock) -> None:
    async def go() -> None:
        async with open_worker(settings, clock=clock) as worker:
            await worker.cycle()
    asyncio.run(go())


def store_growth(sizes: list[int]) -> None:
    print("(a) store growth for one forwarded message (SQLite, embedded worker)")
    print(f"{'attachment':>10}  {'message':>9}  {'kept now':>9}  {'old layout':>10}  "
          f"{'file growth':>11}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            settings = embedded_settings(base)
            cycle(settings, FakeClock(T0))  # an empty, migrated store first
            empty = settings.state_path.stat().st_size
            raw = billing_mail(size)
            deliver(base / "inbox", raw, T0)
            cycle(settings, FakeClock(T0 + timedelta(minutes=1)))
            store = Store(settings.state)
            kept = store.raw_bytes()
            forward = max((store.outbox_row(i) for i in range(1, 20)),
                          key=lambda r: len(r.payload) if r else 0)
            store.close()
            assert forward is not None
            old = len(zlib.compress(raw, 6)) + len(forward.payload)
            grown = settings.state_path.stat().st_size - empty
            print(f"{size / MB:>8.0f} MB  {len(raw) / MB:>6.1f} MB  {kept / MB:>6.1f} MB  "
                  f"{old / MB:>7.1f} MB  {grown / MB:>8.1f} MB   "
                  f"({kept / len(raw):.2f}x the message now, {old / len(raw):.2f}x before)")


def rebuild(counts: list[int]) -> None:
    print("(b) rebuilding an empty store from the Sent folder (Dovecot, aiosmtpd on loopback)")
    with DovecotServer() as server:
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp, SmtpServer() as smtp:
                base = Path(tmp)
                box = Mailbox(server, server.add_user())
                settings = imap_settings(base, box, smtp, SUPPORTBOT_IMAP_SENT_FOLDER="Sent")
                box.append_many("INBOX", [ticket_mail(i) for i in range(n)])
                cycle(settings, FakeClock(T0))
                answered = len(smtp.messages)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{settings.state_path}{suffix}").unlink(missing_ok=True)
                start = time.perf_counter()
                cycle(settings, FakeClock(T0 + timedelta(hours=2)))
                seconds = time.perf_counter() - start
                store = Store(settings.state)
                tickets = sum(store.tickets_by_state().values())
                store.close()
                print(f"{n:>6} tickets: rebuilt {tickets} in {seconds:.2f} s "
                      f"({n / seconds:,.0f} tickets/s, cycle included); "
                      f"re-sent {len(smtp.messages) - answered}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    log.configure("console", "error", [])
    store_growth([1 * MB] if args.quick else [1 * MB, 8 * MB, 31 * MB])
    rebuild([100] if args.quick else [200, 1000])


if __name__ == "__main__":
    main()
