"""Which conversation a merged one now lives in, kept in the store for good.

Help Scout answers 301 (Location: the survivor) for a merged conversation for 60 days,
then 404. The client records each 301 it follows here, and the pipeline records each
merge it recognises from moved threads; a later write to the old id goes straight to the
survivor, long after Help Scout itself has forgotten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.store import Store

PREFIX = "helpscout:merged:"


class MergeMap(Protocol):
    def get(self, old: int) -> int | None: ...
    def put(self, old: int, new: int) -> None: ...


class MemoryMerges(dict[int, int]):
    """A process's memory only (tests, tools without a store)."""

    def put(self, old: int, new: int) -> None:
        self[old] = new


class StoredMerges:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, old: int) -> int | None:
        value = self.store.get_meta(f"{PREFIX}{old}")
        return int(value) if value is not None and value.isdigit() else None

    def merged_into(self, new: int) -> list[int]:
        """The conversations known to have been merged into ``new``."""
        return sorted(int(k.removeprefix(PREFIX)) for k, v in
                      self.store.meta_items(PREFIX).items()
                      if v == str(new) and k.removeprefix(PREFIX).isdigit())

    def put(self, old: int, new: int) -> None:
        if old != new and self.get(old) != new:
            with self.store.transaction():
                self.store.set_meta(f"{PREFIX}{old}", str(new))
