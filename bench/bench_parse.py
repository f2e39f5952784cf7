"""Throughput of MIME parsing and of automated-mail detection on parsed messages.

Uses ../shared/corpus (bounces, auto-replies, tickets) repeated to ~10,000 messages, or the
test fixtures when the corpus is absent. Run: .venv/bin/python bench/bench_parse.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.mail.automated import detect_automated  # noqa: E402
from bot.mail.bounce import read_bounce  # noqa: E402
from bot.mail.parse import parse_message  # noqa: E402

TARGET = 10_000


def samples() -> tuple[str, list[bytes]]:
    corpus = REPO.parent / "shared" / "corpus"
    paths = sorted(corpus.glob("*/*.eml")) or sorted((REPO / "tests/fixtures/mail").rglob("*.eml"))
    where = str(corpus) if corpus.is_dir() else "tests/fixtures/mail"
    return where, [p.read_bytes() for p in paths]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} messages/s  ({count:,} in {seconds:.2f} s)"


def main() -> None:
    where, raws = samples()
    batch = (raws * (TARGET // len(raws) + 1))[:TARGET]
    print(f"{len(raws)} distinct messages from {where}, repeated to {len(batch):,}")

    start = time.perf_counter()
    messages = [parse_message(raw) for raw in batch]
    print(f"parse_message     {rate(len(messages), time.perf_counter() - start)}")

    own = frozenset({"support@example.com"})
    start = time.perf_counter()
    ignored = sum(detect_automated(m, own_addresses=own, own_domain="example.com") is not None
                  for m in messages)
    print(f"detect_automated  {rate(len(messages), time.perf_counter() - start)}"
          f"  [{ignored:,} automated]")

    automated = [m for m in messages
                 if detect_automated(m, own_addresses=own, own_domain="example.com")]
    start = time.perf_counter()
    bounces = sum(read_bounce(m) is not None for m in automated)
    print(f"read_bounce       {rate(len(automated), time.perf_counter() - start)}"
          f"  [{bounces:,} bounces] (re-parses raw MIME; runs on ignored mail only)")


if __name__ == "__main__":
    main()
