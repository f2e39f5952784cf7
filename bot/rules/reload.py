"""Hot reload: swap in a changed rules.yaml or templates folder only once it validates.

The worker calls `maybe_reload()` every cycle (and with ``force=True`` on SIGHUP). A change
is noticed by the files' modification time and size; the new set is loaded and checked in
full before one attribute assignment swaps it in, so a decision never sees half of each.
An invalid change is logged loudly with its `file:line` errors and the old set stays.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from bot.errors import RulesError
from bot.rules.load import load_ruleset
from bot.rules.ruleset import RuleSet
from bot.templates import Templates

log = structlog.get_logger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(rules_path: Path, templates_path: Path) -> Fingerprint:
    """(path, mtime_ns, size) of rules.yaml and every file in the templates folder."""
    paths = [rules_path]
    if templates_path.is_dir():
        paths += sorted(p for p in templates_path.iterdir() if p.is_file())
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def load_set(rules_path: Path, templates_path: Path) -> tuple[RuleSet, Templates]:
    templates = Templates(templates_path)
    return load_ruleset(rules_path, templates), templates


class RulesHolder:
    """The rules and templates in force; raises `RulesError` at start if they are invalid."""

    def __init__(self, rules_path: Path, templates_path: Path) -> None:
        self.rules_path = Path(rules_path)
        self.templates_path = Path(templates_path)
        self._seen = fingerprint(self.rules_path, self.templates_path)
        self.current: tuple[RuleSet, Templates] = load_set(self.rules_path, self.templates_path)
        self.last_reload_ok = True
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_errors: list[str] = []
        log.info("rules loaded", rules=str(self.rules_path), digest=self.current[0].digest,
                 count=len(self.current[0].rules))

    def maybe_reload(self, force: bool = False) -> bool:
        """Reload when a file changed (or when forced); True when a new set is in force."""
        seen = fingerprint(self.rules_path, self.templates_path)
        if seen == self._seen and not force:
            return False
        self._seen = seen  # an invalid version is reported once, not every cycle
        try:
            new = load_set(self.rules_path, self.templates_path)
        except RulesError as exc:
            self.last_reload_ok = False
            self.reloads_failed += 1
            self.last_errors = exc.errors
            log.error("rules reload rejected; the previous rules stay in force",
                      rules=str(self.rules_path), errors=exc.errors,
                      digest=self.current[0].digest)
            return False
        old = self.current[0].digest
        self.current = new
        self.last_reload_ok = True
        self.reloads_ok += 1
        self.last_errors = []
        log.info("rules reloaded", rules=str(self.rules_path), digest=new[0].digest,
                 previous=old, count=len(new[0].rules), forced=force)
        return True
