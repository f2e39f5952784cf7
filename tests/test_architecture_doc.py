"""docs/ARCHITECTURE.md names every module under bot/, and only modules that exist.

A module is named by its path in backquotes (`bot/mail/parse.py`); a package's
``__init__.py`` is named by its folder (`bot/mail/`). A newcomer looks there first.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
NAMED = set(re.findall(r"`(bot/[\w/]*(?:\.py|/))`", DOC.read_text()))


def modules() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bot").rglob("*.py"))


def named(module: str) -> bool:
    if module.endswith("/__init__.py"):
        return module.removesuffix("__init__.py") in NAMED or module in NAMED
    return module in NAMED


def test_every_module_is_named() -> None:
    missing = [m for m in modules() if not named(m)]
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"


def test_every_module_named_exists() -> None:
    gone = sorted(n for n in NAMED if not (ROOT / n).exists())
    assert not gone, f"docs/ARCHITECTURE.md names modules that are gone: {gone}"
