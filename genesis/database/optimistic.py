"""Optimistic maintenance: decide from the selection state, apply by compare-and-set.

Maintenance (archive, best program, migrations) must see a state no other worker changes
meanwhile. Holding a lock while the decision is made would keep every other machine of
the run waiting across the network; here instead the unchanged decision code (the
functions of :mod:`genesis.database.maintenance` and :mod:`genesis.database.islands`) runs
against a :class:`RecordingWriter`: it answers reads from the selection state (and, for
the rare reads the state does not hold, from the store), and records writes as a
:class:`Changes`. The store then applies them in one flight, guarded by the state's token:
if another worker's maintenance renewed the token since the state was read, nothing is
applied and the decision is made again from the state that flight brought back.

The token is read before everything else in a state's flight, so data read with it is at
least as new as the token: a decision on newer data with an older token fails the guard
(and is redone), never the other way round.

Migrations have a token of their own (``MIGRATION_TOKEN``), renewed by every migration and
by every locked pass: a decision that migrates is guarded by it too. Under the default
policy a due migration is guarded by it alone, since the offers that keep renewing the
selection token change nothing a migration decides from.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.program import Program
from genesis.database.protocol import (
    SELECTION_TOKEN,
    IslandStats,
    ProgramSummary,
    SelectionState,
    StoreReader,
)

__all__ = ["Changes", "NeedsLock", "RecordingWriter", "new_token", "summary_of"]


def new_token() -> str:
    """A fresh selection-state token."""
    return uuid.uuid4().hex


class NeedsLock(Exception):
    """The decision wants a write that a guarded flight does not carry (inserting copies)."""


def summary_of(program: Program) -> ProgramSummary:
    """The summary of a program in hand."""
    return ProgramSummary(program.id, program.island_idx, program.generation,
                          program.combined_score, bool(program.correct),
                          program.children_count, program.timestamp)


@dataclass
class Changes:
    """Writes a decision made, in order, to be applied if the state is still current."""

    archive_add: list[str] = field(default_factory=list)
    archive_remove: list[str] = field(default_factory=list)
    metadata: dict[str, str | None] = field(default_factory=dict)
    raised: dict[str, float] = field(default_factory=dict)
    moves: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.archive_add or self.archive_remove or self.metadata or self.raised
                    or self.moves)

    @property
    def migrates(self) -> bool:
        """Whether the decision is (or includes) a migration."""
        return bool(self.moves) or LAST_MIGRATION_KEY in self.raised


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


class RecordingWriter:
    """A :class:`~genesis.database.protocol.StoreWriter` over a selection state.

    Reads the state answers (archive, islands, best program, selection metadata) cost
    nothing; others go to a fresh reader of the store (``read``). Programs in ``known`` are
    known to be stored, with these summaries.
    """

    def __init__(self, state: SelectionState,
                 read: Callable[[], AbstractAsyncContextManager[StoreReader]],
                 known: Sequence[Program] = ()) -> None:
        self.state = state
        self.changes = Changes()
        self._read = read
        self._known = {p.id: summary_of(p) for p in known}
        self._archive = {m.id: m for m in state.archive}
        self._metadata = dict(state.metadata)

    # Answered from the state -----------------------------------------------------------------

    async def summaries(self, program_ids: Sequence[str]) -> list[ProgramSummary]:
        """Summaries of programs, from those in hand when all are."""
        if all(pid in self._known for pid in program_ids):
            return [self._known[pid] for pid in program_ids]
        async with self._read() as reader:
            return await reader.summaries(program_ids)

    async def archive_members(self) -> list[ProgramSummary]:
        """The archive, as this decision has changed it so far."""
        return sorted(self._archive.values(), key=lambda m: m.id)

    async def archive_summaries(self, island: int | None = None) -> list[ProgramSummary]:
        """The archive's correct members (of one island, or all)."""
        return [m for m in await self.archive_members()
                if m.correct and (island is None or m.island_idx == island)]

    async def archive_count(self) -> int:
        """The archive's size."""
        return len(self._archive)

    async def island_stats(self) -> list[IslandStats]:
        """The islands' counts."""
        return list(self.state.islands)

    async def count(self) -> int:
        """The number of programs."""
        return sum(s.programs for s in self.state.islands)

    async def get_metadata(self, key: str) -> str | None:
        """A metadata value, as this decision has changed it so far."""
        if key in self._metadata or key in self.state.metadata:
            return self._metadata.get(key)
        async with self._read() as reader:
            return await reader.get_metadata(key)

    async def program_named_by(self, key: str) -> Any:
        """The best program (a summary) from the state; other keys from the store."""
        if key == "best_program_id":
            pid = self._metadata.get(key)
            if pid is None:
                return None
            if pid in self._known:
                return self._known[pid]
            best = self.state.best
            if best is not None and best.id == pid:
                return best
        async with self._read() as reader:
            return await reader.program_named_by(key)

    # Recorded ------------------------------------------------------------------------------

    async def archive_add(self, program_ids: Sequence[str]) -> None:
        """Record archive entries."""
        for pid in program_ids:
            self.changes.archive_add.append(pid)
            if pid in self.changes.archive_remove:
                self.changes.archive_remove.remove(pid)
            summary = self._known.get(pid)
            if summary is not None:
                self._archive[pid] = summary

    async def archive_remove(self, program_ids: Sequence[str]) -> None:
        """Record archive removals."""
        for pid in program_ids:
            self.changes.archive_remove.append(pid)
            if pid in self.changes.archive_add:
                self.changes.archive_add.remove(pid)
            self._archive.pop(pid, None)

    async def set_metadata(self, key: str, value: str | None) -> None:
        """Record a metadata value."""
        self.changes.metadata[key] = value
        self._metadata[key] = value

    async def raise_metadata(self, key: str, value: float) -> bool:
        """Record raising a numeric metadata value; True if it is larger than the current."""
        current = _number(self._metadata.get(key))
        if current is not None and not current < value:
            return False
        self.changes.raised[key] = max(value, self.changes.raised.get(key, value))
        self._metadata[key] = str(value)
        return True

    async def move_program(self, program_id: str, island: int, event: dict[str, Any]) -> None:
        """Record a migration (the event is appended to the history by the server)."""
        self.changes.moves.append((program_id, island, event))
        if program_id in self._archive:
            self._archive[program_id] = replace(self._archive[program_id], island_idx=island)

    async def insert(self, programs: Sequence[Program], *, count_children: bool = True) -> None:
        """Inserting programs (spawning an island) is done under the lock instead."""
        raise NeedsLock("inserting programs")

    async def delete_metadata(self, key: str) -> None:
        """Deleting metadata is done under the lock instead."""
        raise NeedsLock("deleting metadata")

    # Anything else: a read of the store --------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def read(*args: Any, **kwargs: Any) -> Any:
            async with self._read() as reader:
                return await getattr(reader, name)(*args, **kwargs)

        return read

    def iter_programs(self, batch_size: int = 500) -> AsyncIterator[list[Program]]:
        """Not used by maintenance."""
        raise NeedsLock("iterating programs")

    @property
    def token(self) -> str | None:
        """The token of the state this decision was made from."""
        return self.state.metadata.get(SELECTION_TOKEN)
