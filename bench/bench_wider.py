"""The wider-world corpus (tests/fixtures/wider) through the worker: figures per category.

Prints, per category, robots ignored, people answered and false / missed critical, then
any message that went wrong. Run: .venv/bin/python bench/bench_wider.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability.wider import figures, run_wider


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = run_wider(Path(tmp))
    copied = sum("commit" in r.entry.provenance for r in results)
    print(f"wider corpus: {len(results)} messages ({copied} copied from public projects, "
          f"{len(results) - copied} written)")
    for category, line in figures(results):
        print(f"  {category:<24} {line}")
    for r in results:
        if not r.ok:
            print(f"  WRONG {r.problem()}")


if __name__ == "__main__":
    main()
