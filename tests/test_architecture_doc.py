"""docs/ARCHITECTURE.md names every module under bot/, and only modules that exist.

A module is named by its path in backquotes (`bot/mail/parse.py`); a package's
``__init__.py`` is named by its folder (`bot/mail/`). A newcomer looks there first.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_layers import LAYERS

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


def doc_layers() -> list[tuple[str, str]]:
    """(layer, modules cell) of each row of the doc's layer table, in order."""
    text = DOC.read_text()
    table = text[text.index("| layer | modules |"):].split("\n\n", 1)[0]
    rows = [line.split("|") for line in table.splitlines()[2:]]
    return [(cells[1].strip(), cells[2]) for cells in rows]


def short(entry: str) -> str:
    """How the doc's layer table names a LAYERS entry: `bot/mail/`, `tickets`, `bot`."""
    if entry.endswith(".*"):
        return "`" + entry.removesuffix(".*").replace(".", "/") + "/`"
    return f"`{entry.removeprefix('bot.')}`"


def test_the_layer_table_is_the_layer_tests() -> None:
    table = doc_layers()
    assert [name for name, _ in table] == [name for name, _ in LAYERS]
    missing = [f"{name}: {short(e)}" for (name, entries), (_, cell) in zip(LAYERS, table,
                                                                           strict=True)
               for e in entries if short(e) not in cell]
    assert not missing, f"docs/ARCHITECTURE.md's layer table lacks: {missing}"
