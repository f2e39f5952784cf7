"""Imports only go down: every module under bot/ has a layer, and none imports a higher one.

Read from each module's source with ``ast`` (lazy imports inside functions and
``TYPE_CHECKING`` blocks count: the layering is a design rule, not an import-time one).
A module may import its own layer and those below it. A new module fails
``test_every_module_has_a_layer`` until it is placed here and in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

# Lowest first. ``pkg.*`` is the package and everything in it; the most specific entry wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("bot", "bot.errors", "bot.clock", "bot.vocab", "bot.model", "bot.log",
                    "bot.tls", "bot.config", "bot.metrics", "bot.terminal")),
    ("mail", ("bot.mail.*",)),
    ("rules", ("bot.rules.*", "bot.templates", "bot.template_budget")),
    ("store", ("bot.store.*",)),
    ("adapters", ("bot.helpscout.*", "bot.imap_connection", "bot.sources.*", "bot.channels.*")),
    # The core, split along the data flow: the leaves it is built from, then planning
    # (decision or due timer -> outbox rows), the lifecycle that plans, and ingestion
    # (source item -> ledger -> ticket), which calls them all.
    ("core leaves", ("bot.tickets", "bot.conversation", "bot.ticket_join", "bot.expand",
                     "bot.outbox", "bot.reports", "bot.health", "bot.retention")),
    ("core: plan", ("bot.plan",)),
    ("core: lifecycle", ("bot.lifecycle.*",)),
    ("core: ingest", ("bot.pipeline",)),
    # Rebuilding an empty store reads a source's history and replays it through the lifecycle.
    ("core: rebuild", ("bot.rebuild.*",)),
    ("runner", ("bot.worker", "bot.runtime", "bot.leases")),
    ("entry points", ("bot.demo.*", "bot.commands.*", "bot.cli", "bot.__main__")),
)

# Imports that the layer order allows but the design does not, and why.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("bot.rules", "bot.mail.compose", "the pure rules engine composes no mail"),
    ("bot.rules", "bot.mail.mime", "the pure rules engine writes no mail"),
    ("bot.sources", "bot.channels",
     "sources read and channels send; what both need lives in bot.imap_connection"),
    ("bot.channels", "bot.sources",
     "sources read and channels send; what both need lives in bot.imap_connection"),
)


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(BOT.rglob("*.py"))}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """The index of the most specific LAYERS entry naming ``module``."""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            package = entry.removesuffix(".*")
            if module == entry or (entry.endswith(".*") and within(module, package)):
                specificity = len(package) * 2 + (0 if entry.endswith(".*") else 1)
                if best is None or specificity > best[0]:
                    best = (specificity, index)
    return None if best is None else best[1]


def imports_of(module: str) -> list[Import]:
    """The bot modules ``module`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            target = name
            while target and target not in MODULES:  # bot.store.Ticket -> bot.store
                target = target.rpartition(".")[0]
            imp = Import(module, target, node.lineno)
            if target and target != module and imp not in found:
                found.append(imp)
    return found


def where(imp: Import) -> str:
    return f"{MODULES[imp.importer].relative_to(BOT.parent)}:{imp.line}"


def describe(module: str) -> str:
    index = layer_of(module)
    return f"{module} ({'unplaced' if index is None else LAYERS[index][0]})"


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, f"place these modules in tests/test_layers.py LAYERS: {unplaced}"


def test_every_layer_entry_names_a_module_that_exists() -> None:
    stale = [entry for _, entries in LAYERS for entry in entries
             if entry.removesuffix(".*") not in MODULES]
    assert not stale, f"LAYERS names modules that are gone: {stale}"


def test_imports_only_go_down() -> None:
    upward = []
    for module in MODULES:
        mine = layer_of(module)
        for imp in imports_of(module):
            theirs = layer_of(imp.target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{where(imp)}: {describe(module)} imports {describe(imp.target)}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize(("importer", "target", "why"), FORBIDDEN,
                         ids=[f"{a}-/->{b}" for a, b, _ in FORBIDDEN])
def test_forbidden_imports(importer: str, target: str, why: str) -> None:
    found = [where(imp) for module in MODULES if within(module, importer)
             for imp in imports_of(module) if within(imp.target, target)]
    assert not found, f"{importer} must not import {target} ({why}): {found}"


def test_the_reader_sees_imports_as_the_rule_means_them() -> None:
    """A check of the checker: names, packages and lazy imports all resolve to modules."""
    targets = {imp.target for imp in imports_of("bot.pipeline")}
    assert {"bot.store", "bot.lifecycle.agents", "bot.vocab", "bot.lifecycle.followup"} <= targets
    assert layer_of("bot.store.store") == layer_of("bot.store")
    assert layer_of("bot.lifecycle.followup") > layer_of("bot.plan")  # type: ignore[operator]
