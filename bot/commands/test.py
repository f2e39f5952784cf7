"""`supportbot test [FILES...]`: run rule test cases against rules.yaml; exit 1 on a mismatch."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bot.commands._common import setup
from bot.errors import RulesError
from bot.rules.cases import run_cases
from bot.rules.reload import load_set

ORDER = 32
DEFAULT_CASES = Path("tests/rules/cases")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("test", help="run rule test cases (tests/rules/cases/*.yaml)",
                       description="Runs YAML rule test cases: each names an .eml file or an "
                       "inline message and the expected priority, topic and actions (or "
                       "ignored: true). Prints each failure and a summary (-v: every case); "
                       "exits 1 when any case fails. See docs/rules.md for the case format.")
    p.add_argument("files", nargs="*", type=Path,
                   help=f"case files (default: {DEFAULT_CASES}/*.yaml)")
    p.add_argument("--rules", type=Path, help="rules file (default: $SUPPORTBOT_RULES)")
    p.add_argument("--templates", type=Path, help="templates folder (default: "
                   "$SUPPORTBOT_TEMPLATES)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every case (PASS and SKIP too), and log at debug level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    files = list(args.files) or sorted(DEFAULT_CASES.glob("*.yaml"))
    if not files:
        print(f"no case files given and none found in {DEFAULT_CASES}/")
        return 1
    rules_path = args.rules or settings.rules_path
    ruleset, _ = load_set(rules_path, args.templates or settings.templates_path)
    try:
        results = run_cases(files, ruleset, own_addresses=frozenset({settings.from_addr}),
                            own_domain=settings.from_domain)
    except RulesError as exc:
        for line in exc.errors:
            print(line)
        return 1
    for r in results:
        if r.status == "pass" and args.verbose:
            print(f"PASS {r.label}")
        elif r.status == "skip" and args.verbose:
            print(f"SKIP {r.label}: {'; '.join(r.problems)}")
        elif r.status == "fail":
            print(f"FAIL {r.label}")
            for problem in r.problems:
                print(f"     {problem}")
    counts = Counter(r.status for r in results)
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
          f"({len(files)} file(s), rules {rules_path}, digest {ruleset.digest})")
    return 1 if counts["fail"] else 0
