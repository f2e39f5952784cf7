"""Coverage-guided fuzzing with atheris (libFuzzer), when it is installed: optional.

    python -m tests.reliability.atheris_fuzz mail  -max_total_time=60 [SEED_DIR]
    python -m tests.reliability.atheris_fuzz rules -max_total_time=60 [SEED_DIR]

``mail``: raw bytes -> parse_message -> decide (only MalformedMessage may escape parsing);
``rules``: bytes as rules.yaml text -> load_ruleset (only RulesError, with file:line).
An unhandled exception ends the run with libFuzzer's crash report and a non-zero exit.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from bot.mail.parse import parse_message  # noqa: F401  (instrumented for coverage)
    from bot.rules.decide import decide  # noqa: F401
    from bot.rules.load import load_ruleset
    from bot.templates import Templates
    from tests.helpers import REPO
    from tests.reliability.fuzz import decide_once, rules_once

TEMPLATES = Templates(REPO / "templates")
RULESET = load_ruleset(REPO / "rules.yaml", TEMPLATES)
WORKDIR = Path(tempfile.mkdtemp(prefix="supportbot-atheris-"))


def mail(data: bytes) -> None:
    decide_once(data, RULESET)


def rules(data: bytes) -> None:
    rules_once(data.decode("utf-8", "replace"), WORKDIR, TEMPLATES)


def main() -> None:
    target = {"mail": mail, "rules": rules}[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
