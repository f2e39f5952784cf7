"""`supportbot` command line: one subcommand per module in `bot/commands/`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Exit codes: 0 ok, 1 a check found problems, 2 bad configuration
or usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence

import bot.commands
from bot import __version__
from bot.errors import ConfigError, RulesError, StoreError


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
    for command in sub.choices.values():  # every command: -v for debug logging
        if "--verbose" not in command._option_string_actions:
            command.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        # a checkout updated without `make`: a new dependency is not in the venv yet
        if not exc.name or exc.name.split(".")[0] == "bot":
            raise
        print(f"supportbot: the Python package '{exc.name}' is not installed in this "
              "environment (a dependency in pyproject.toml): run `make install`, or "
              "`.venv/bin/pip install -c constraints.txt -e .`", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so that a closed pipe is met inside the try
        return code
    except BrokenPipeError:
        # `supportbot log 3 | head`: the reader has what it wanted; end quietly, as `cat`
        # would, and keep the interpreter's own final flush from complaining
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except ConfigError as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"supportbot: invalid rules or templates:\n{exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the state database is unreachable or failed: one line
        print(f"supportbot: state database: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
