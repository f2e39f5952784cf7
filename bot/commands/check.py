"""`supportbot check`: is rules.yaml valid and does every template render? Run before deploying.

With a state file it also reads the last day's ledger and warns (exit code unchanged) when
the mail suggests a set-up that settings.mail does not cover (`bot.mail.setups`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.commands._common import open_store, setup
from bot.config import Settings
from bot.errors import RulesError
from bot.mail.automated import MailSetup
from bot.mail.setups import Seen, suggestions
from bot.rules.reload import load_set

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check", help="validate rules.yaml and render every template",
                       description="Validates rules.yaml (keys, regular expressions, owners, "
                       "templates, the catch-all) and renders every template with sample data. "
                       "Prints 'ok: N rules, M templates', or one 'file:line: message' per "
                       "problem and exits 1.")
    p.add_argument("--rules", type=Path, help="rules file (default: $SUPPORTBOT_RULES or "
                   "rules.yaml)")
    p.add_argument("--templates", type=Path, help="templates folder (default: "
                   "$SUPPORTBOT_TEMPLATES or templates)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = setup(args, check_runtime=False)
    rules_path = args.rules or settings.rules_path
    templates_path = args.templates or settings.templates_path
    try:
        ruleset, templates = load_set(rules_path, templates_path)
    except RulesError as exc:
        for line in exc.errors:
            print(line)
        print(f"{len(exc.errors)} problem(s) in {rules_path} / {templates_path}")
        return 1
    print(f"ok: {len(ruleset.rules)} rules, {len(templates.names())} templates "
          f"({rules_path}, digest {ruleset.digest})")
    for warning in _setup_warnings(settings, ruleset.settings.mail):
        print(f"warning: {warning}")
    return 0


def _setup_warnings(settings: Settings, setup: MailSetup) -> list[str]:
    """What the last day's mail suggests about settings.mail; nothing without a state yet."""
    if settings.state_url is None and not settings.state_path.is_file():
        return []
    try:
        store = open_store(settings)
        try:
            entries = store.ledger_since(datetime.now(UTC) - timedelta(days=1))
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - an unreachable state must not fail a rules check
        return [f"the last day's mail could not be read ({type(exc).__name__}), so set-ups "
                "were not checked"]
    return suggestions((Seen(e.status, e.reason) for e in entries), setup)
