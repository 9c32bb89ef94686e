"""The analysis reads both backends share: code search, filtered rows, lineage.

:class:`AnalysisSQL` is part of every :class:`~genesis.database.backends.sql.SQLSession`;
the SQL that differs per backend comes from its compiler
(:mod:`genesis.database.backends.query_sql`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Literal

from genesis.database.backends.flat_rows import RowPlan, settle
from genesis.database.backends.query_sql import QueryCompiler, compiler_for
from genesis.database.code_search import SearchHit, SearchTerms, snippet
from genesis.database.codec import decode_json, unpack_embedding
from genesis.database.errors import OperationalError
from genesis.database.json_indexes import JsonIndex, index_field
from genesis.database.protocol import LineageStep
from genesis.database.query_language import JSON_COLUMNS, Field, Node, OrderKey

__all__ = ["AnalysisSQL", "Direction"]

Direction = Literal["up", "down"]
# A walk through parent_id carries the columns of a lineage step, so that the walk reads
# each program once, by index (no join with the programs after it).
_STEP = "id, parent_id, generation, island_idx, combined_score, correct"
_JOIN = {"up": "q.id = c.parent_id", "down": "q.parent_id = c.id"}


def _chain(name: str, direction: Direction) -> str:
    """A recursive CTE ``name(<step columns>, depth)`` from the program ``?`` to depth ``?``."""
    columns = ", ".join(f"q.{column}" for column in _STEP.split(", "))
    return (f"{name}({_STEP}, depth) AS (SELECT {columns}, 0 FROM programs q WHERE q.id = ? "
            f"UNION ALL SELECT {columns}, c.depth + 1 FROM {name} c JOIN programs q "
            f"ON {_JOIN[direction]} WHERE c.depth < ?)")


class AnalysisSQL:
    """Code search, filtered rows and lineage over the primitives of a session."""

    # What the session provides: ``dialect``, ``_all`` and ``count``.
    dialect: Any

    @property
    def compiler(self) -> QueryCompiler:
        """The compiler of this backend's SQL (for SQL that no JSON path index serves)."""
        return compiler_for(self.dialect.name)

    async def json_indexes(self) -> list[JsonIndex]:
        """Return the run's JSON path indexes (none in a file read at an older schema)."""
        if not await self._has_table("json_indexes"):
            return []
        rows = await self._all("SELECT field FROM json_indexes ORDER BY field")
        return [JsonIndex(index_field(str(row[0]))) for row in rows]

    async def _filter_compiler(self, where: Node | None, limit: int) -> QueryCompiler:
        """The compiler of a filter, knowing which JSON paths have an index.

        SQLite keeps no histograms, so it guesses how many programs a range on an indexed
        path matches, and with ``ORDER BY`` may read every program in order instead. The
        index is the better way when the filter matches fewer than sqrt(limit x programs)
        (it reads the matches; the scan reads about limit x programs / matches rows), which
        counting the matches up to that bound through the index tells.
        """
        compiler = compiler_for(self.dialect.name, await self.json_indexes())
        if where is None or self.dialect.name != "sqlite":
            return compiler
        condition, params = compiler.where(where)
        if compiler.uses_index:
            rows = await self._all("SELECT COALESCE(MAX(rowid), 0) FROM programs")
            bound = math.isqrt(limit * int(rows[0][0])) + 1
            found = await self._all(f"SELECT COUNT(*) FROM (SELECT 1 FROM programs p WHERE "
                                    f"{condition} LIMIT ?)", [*params, bound])
            compiler.prefer_indexes = int(found[0][0]) < bound
        return compiler

    async def search_code(self, terms: SearchTerms, *, limit: int = 20,
                          island: int | None = None, correct: bool | None = None
                          ) -> list[SearchHit]:
        """Return the programs whose code holds every word, best first, with a snippet."""
        await self._check_search_index()
        sql, params = self.compiler.search(terms, island, correct, limit)
        rows = await self._all(sql, params)
        return [SearchHit(row[0], rank, row[1], row[2], row[3], bool(row[4]),
                          snippet(row[5], terms))
                for rank, row in enumerate(rows, start=1)]

    async def _has_table(self, name: str) -> bool:
        """Whether the schema holds this table: always on PostgreSQL (a run is upgraded
        before use), not in a SQLite file read as it is at an older schema."""
        return self.dialect.name != "sqlite" or bool(
            await self._all("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))

    async def _check_search_index(self) -> None:
        """Refuse code search, saying why, on a file read as it is at an older schema."""
        if not await self._has_table("programs_fts"):
            raise OperationalError("code search needs schema version 3 or later: this file "
                                   "is older and opened read-only; `genesis db upgrade` "
                                   "indexes it")

    def _converter(self, field: Field) -> Callable[[Any], Any] | None:
        """How a selected column's driver value becomes its Python value (None: as it is)."""
        if field.column in JSON_COLUMNS:
            return (lambda text: decode_json(text, dict)) if self.dialect.name == "sqlite" else None
        if field.column == "correct":
            return bool
        if field.column == "embedding":
            return lambda v: decode_json(v, list) if isinstance(v, str) else unpack_embedding(v)
        return None

    def _plan(self, fields: Sequence[Field]) -> RowPlan:
        """What to select for ``fields`` on this backend, and how to read their values."""
        return RowPlan(fields, self.compiler, self._converter,
                       lists=self.dialect.name != "sqlite")

    async def query_rows(self, where: Node | None, columns: Sequence[Field],
                         order: Sequence[OrderKey], limit: int) -> list[dict[str, Any]]:
        """Return the chosen fields of the programs matching ``where``, in ``order``."""
        plan = self._plan(columns)
        rows = await self._all(*await self.query_statement(where, columns, order, limit))
        return [dict(zip(plan.names, values, strict=True)) for values in plan.values(rows)]

    async def query_statement(self, where: Node | None, columns: Sequence[Field],
                              order: Sequence[OrderKey], limit: int) -> tuple[str, list[Any]]:
        """The SELECT of :meth:`query_rows` and its parameters, for this run's indexes."""
        compiler, plan = await self._filter_compiler(where, limit), self._plan(columns)
        sql, params = f"SELECT {plan.select} FROM programs p", []
        if where is not None:
            condition, params = compiler.where(where)
            sql += f" WHERE {condition}"
        ordering, extra = compiler.order(order)
        sql += f" ORDER BY {ordering} LIMIT {compiler.q}"
        return sql, [*params, *extra, limit]

    async def iter_values(self, where: Node | None, columns: Sequence[Field],
                          batch_size: int = 5000) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Yield the chosen fields' values of the programs matching ``where``, in insertion order.

        The next batch is asked for before this one is yielded, so that the database reads
        it while the caller works on this one.
        """
        compiler, seq = await self._filter_compiler(where, batch_size), self.dialect.seq
        plan = self._plan(columns)
        condition, extra = compiler.where(where) if where is not None else ("TRUE", [])
        sql = (f"SELECT {seq}, {plan.select} FROM programs p WHERE {seq} > {compiler.q} "
               f"AND {condition} ORDER BY {seq} LIMIT {compiler.q}")
        rows, ahead = await self._all(sql, [-1, *extra, batch_size]), None
        try:
            while rows:
                if len(rows) == batch_size:
                    ahead = asyncio.ensure_future(
                        self._all(sql, [rows[-1][0], *extra, batch_size]))
                    await asyncio.sleep(0)  # the query reaches the database before the yield
                yield plan.values(rows, offset=1)
                rows = await ahead if ahead is not None else []
                ahead = None
        finally:
            if ahead is not None:
                await settle(ahead)

    async def json_keys(self, column: str) -> list[str]:
        """Return the distinct top-level keys of a JSON column (one of JSON_COLUMNS)."""
        if column not in JSON_COLUMNS:
            raise ValueError(f"{column!r} is not a JSON column")
        return [str(row[0]) for row in await self._all(self.compiler.json_keys(column))]

    async def lineage(self, program_id: str, direction: Direction = "up",
                      max_depth: int | None = None) -> list[LineageStep]:
        """Return the ancestors (``up``) or descendants (``down``) of a program, nearest first.

        One recursive query; without ``max_depth`` the walk is bounded by the number of
        programs, so a cycle in corrupt data ends too.
        """
        depth = max_depth if max_depth is not None else await self.count()
        rows = await self._all(self.dialect.sql(
            f"WITH RECURSIVE {_chain('chain', direction)} SELECT depth, {_STEP} FROM chain "
            "WHERE depth > 0 ORDER BY depth, id"), (program_id, depth))
        return [LineageStep(int(r[0]), r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def common_ancestor(self, first: str, second: str) -> str | None:
        """Return the id of the nearest program both descend from (either one itself)."""
        depth = await self.count()
        rows = await self._all(self.dialect.sql(
            f"WITH RECURSIVE {_chain('a', 'up')}, {_chain('b', 'up')} "
            "SELECT a.id FROM a JOIN b ON a.id = b.id "
            "ORDER BY a.depth + b.depth, a.depth LIMIT 1"), (first, depth, second, depth))
        return rows[0][0] if rows else None
