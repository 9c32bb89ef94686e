"""The view's own reads: keyset pages of summaries, lineage, children, counters.

Each statement is written once with ``?`` placeholders and ``{seq}`` (SQLite's rowid,
PostgreSQL's identity column) and runs through :meth:`SQLSession.rows`. Every one of them
is answered from an index or the small ``islands`` table (see ``tests/test_view_queries.py``
for the plans): none reads code or embeddings, none scans the programs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from genesis.database.backends.sql import SQLSession

__all__ = ["IslandRow", "ProgramRow", "QueryCounter", "ViewQueries"]

_ROW = ("{seq}, p.id, p.parent_id, p.island_idx, p.generation, p.combined_score, p.correct, "
        "p.children_count, p.timestamp")


@dataclass(frozen=True)
class ProgramRow:
    """A program without code, metrics or embedding: what lists and trees show."""

    seq: int
    id: str
    parent_id: str | None
    island: int | None
    generation: int
    score: float | None
    correct: bool
    children: int
    timestamp: float

    def as_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class IslandRow:
    """Counts of one island, from the ``islands`` counters (island -1: programs without one)."""

    island: int
    programs: int
    correct: int
    best_score: float | None


@dataclass
class QueryCounter:
    """Statements run and rows read, for the benchmark's cost per live update."""

    queries: int = 0
    rows: int = 0


def _program_row(row: Sequence[Any]) -> ProgramRow:
    return ProgramRow(int(row[0]), row[1], row[2], row[3], int(row[4]), row[5], bool(row[6]),
                      int(row[7]), float(row[8]))


class ViewQueries:
    """The view's indexed reads on one session, counted in a :class:`QueryCounter`."""

    def __init__(self, session: SQLSession, counter: QueryCounter | None = None) -> None:
        self.session = session
        self.counter = counter if counter is not None else QueryCounter()
        self._seq = session.dialect.seq

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        rows = await self.session.rows(sql.replace("{seq}", self._seq), params)
        self.counter.queries += 1
        self.counter.rows += len(rows)
        return rows

    async def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._rows(sql, params)
        return rows[0][0] if rows else None

    async def newest_seq(self) -> int:
        """Return the sequence number of the newest program (0 for an empty run)."""
        return int(await self._value("SELECT MAX({seq}) FROM programs p") or 0)

    async def programs_before(self, before: int | None, limit: int) -> list[ProgramRow]:
        """Return up to ``limit`` programs older than ``before`` (or the newest), newest first."""
        where = "WHERE {seq} < ? " if before is not None else ""
        params = (before, limit) if before is not None else (limit,)
        rows = await self._rows(f"SELECT {_ROW} FROM programs p {where}"
                                "ORDER BY {seq} DESC LIMIT ?", params)
        return [_program_row(r) for r in rows]

    async def programs_after(self, after: int, limit: int) -> list[ProgramRow]:
        """Return up to ``limit`` programs newer than ``after``, oldest first."""
        rows = await self._rows(f"SELECT {_ROW} FROM programs p WHERE {{seq}} > ? "
                                "ORDER BY {seq} LIMIT ?", (after, limit))
        return [_program_row(r) for r in rows]

    async def top(self, limit: int) -> list[ProgramRow]:
        """Return the ``limit`` best correct programs, best first."""
        rows = await self._rows(
            f"SELECT {_ROW} FROM programs p WHERE p.correct = TRUE "
            "AND p.combined_score IS NOT NULL "
            "ORDER BY p.combined_score DESC NULLS LAST, p.timestamp DESC LIMIT ?", (limit,))
        return [_program_row(r) for r in rows]

    async def by_ids(self, ids: Sequence[str]) -> list[ProgramRow]:
        """Return the rows of these programs in the given order, skipping missing ones."""
        found: dict[str, ProgramRow] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 200):
            chunk = unique[start:start + 200]
            rows = await self._rows(f"SELECT {_ROW} FROM programs p WHERE p.id IN "
                                    f"({', '.join('?' * len(chunk))})", chunk)
            found.update((r.id, r) for r in map(_program_row, rows))
        return [found[i] for i in ids if i in found]

    async def archive(self) -> list[ProgramRow]:
        """Return the archive's members, best first (the archive is small and bounded)."""
        ids = [r[0] for r in await self._rows("SELECT program_id FROM archive")]
        rows = await self.by_ids(ids)
        return sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0), r.id))

    async def children(self, program_id: str, after: int, limit: int) -> list[ProgramRow]:
        """Return up to ``limit`` children of a program newer than ``after``, oldest first."""
        rows = await self._rows(f"SELECT {_ROW} FROM programs p WHERE p.parent_id = ? "
                                "AND {seq} > ? ORDER BY {seq} LIMIT ?",
                                (program_id, after, limit))
        return [_program_row(r) for r in rows]

    async def lineage(self, program_id: str, depth: int) -> list[ProgramRow]:
        """Return a program and up to ``depth`` of its ancestors, oldest first."""
        rows = await self._rows(
            "WITH RECURSIVE chain(id, depth) AS ("
            " SELECT ?, 0"
            " UNION ALL"
            " SELECT q.parent_id, c.depth + 1 FROM programs q JOIN chain c ON q.id = c.id"
            " WHERE q.parent_id IS NOT NULL AND c.depth < ?"
            f") SELECT {_ROW} FROM chain c JOIN programs p ON p.id = c.id "
            "ORDER BY c.depth DESC", (program_id, depth))
        return [_program_row(r) for r in rows]

    async def islands(self) -> list[IslandRow]:
        """Return the island counters, by island."""
        rows = await self._rows("SELECT island_idx, programs, correct, best_score FROM islands "
                                "WHERE programs > 0 ORDER BY island_idx")
        return [IslandRow(int(r[0]), int(r[1]), int(r[2]), r[3]) for r in rows]

    async def best_id(self) -> str | None:
        """Return the id of the tracked best program (metadata ``best_program_id``)."""
        return await self._value("SELECT value FROM metadata_store WHERE key = ?",
                                 ("best_program_id",))

    async def metadata(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Return these metadata_store values (absent keys are left out)."""
        rows = await self._rows("SELECT key, value FROM metadata_store WHERE key IN "
                                f"({', '.join('?' * len(keys))})", list(keys))
        return {r[0]: r[1] for r in rows}

    async def added_since(self, since: float) -> int:
        """Return how many programs have a timestamp at or after ``since``."""
        return int(await self._value("SELECT COUNT(*) FROM programs p WHERE p.timestamp >= ?",
                                     (since,)) or 0)

    async def advisory_locks(self, schema: str, names: Sequence[str]
                             ) -> list[tuple[str, bool, int]]:
        """Return (lock, granted, sessions) for the run's advisory write locks (PostgreSQL)."""
        key = "(hashtext(?)::bigint & 4294967295)"
        rows = []
        for name in names:
            found = await self._rows(
                "SELECT l.granted, COUNT(*) FROM pg_locks l WHERE l.locktype = 'advisory' "
                "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database "
                f"WHERE datname = current_database()) AND l.classid::bigint = {key} "
                f"AND l.objid::bigint = {key} GROUP BY l.granted", (schema, name))
            rows += [(name, bool(r[0]), int(r[1])) for r in found]
        return rows

    async def run_connections(self, application_name: str) -> dict[str, int]:
        """Return the server connections of a run's workers by state (PostgreSQL)."""
        found = await self._rows(
            "SELECT state, COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = ? AND pid <> pg_backend_pid() GROUP BY state",
            (application_name,))
        return {str(r[0]): int(r[1]) for r in found}

    async def id_at(self, seq: int) -> str | None:
        """Return the id of the program with this sequence number."""
        return await self._value("SELECT p.id FROM programs p WHERE {seq} = ?", (seq,))
