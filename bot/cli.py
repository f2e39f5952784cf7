"""`supportbot` command line: one subcommand per module in `bot/commands/`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Exit codes: 0 ok, 1 a check found problems, 2 bad configuration
or usage.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import bot.commands
from bot import __version__
from bot.errors import ConfigError, RulesError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supportbot",
        description="A level-1 support desk that never sleeps: reads tickets, classifies them "
        "with rules.yaml, tells every requester what happens next, and follows up on schedule.",
    )
    parser.add_argument("--version", action="version", version=f"supportbot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = sorted(
        (importlib.import_module(f"bot.commands.{m.name}") for m in
         pkgutil.iter_modules(bot.commands.__path__) if not m.name.startswith("_")),
        key=lambda mod: (getattr(mod, "ORDER", 50), mod.__name__),
    )
    for module in modules:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"supportbot: invalid rules or templates:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
