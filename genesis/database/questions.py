"""Questions about a run: code search, filtered queries, lineage, rows and DataFrames.

:class:`RunQuestions` is part of :class:`~genesis.database.engine.AsyncProgramDatabase`
(and so of the sync facade). Filters, orderings and column lists are written in the
language of :mod:`genesis.database.query_language`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

from genesis.database.arguments import id_argument, int_argument
from genesis.database.code_search import SearchHit, search_terms
from genesis.database.errors import InvalidArgumentError
from genesis.database.json_indexes import JsonIndex, index_field
from genesis.database.program import Program
from genesis.database.protocol import LineageStep, ProgramStore, StoreReader
from genesis.database.query_language import (
    COLUMNS,
    JSON_COLUMNS,
    Field,
    Node,
    parse_columns,
    parse_order,
    parse_where,
)

__all__ = ["DEFAULT_COLUMNS", "RunQuestions", "row_fields"]

Values = list[tuple[Any, ...]]  # a batch: the fields' values, a tuple per program
DEFAULT_COLUMNS = ("id", "generation", "island_idx", "combined_score", "correct")
MAX_LIMIT = 100_000


def _where(where: str | None) -> Node | None:
    return None if where is None or not where.strip() else parse_where(where)


def _optional_bool(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidArgumentError(f"{name}: expected True, False or None, got {value!r:.80}")
    return value


async def row_fields(reader: StoreReader, columns: Sequence[str] | str | None,
                     embeddings: bool = False) -> list[Field]:
    """The fields of an export: the given ones, else every column with the JSON flattened.

    Flattened: each top-level key of ``public_metrics``, ``private_metrics`` and
    ``metadata`` found in the run becomes a field of its own (``public_metrics.sum_radii``).
    """
    if columns is not None:
        return parse_columns(columns)
    fields = list(dict.fromkeys(Field(name) for name in ("id", "code", *COLUMNS)))
    for column in JSON_COLUMNS:
        fields += [Field(column, (key,)) for key in await reader.json_keys(column)]
    if embeddings:
        fields.append(Field("embedding"))
    return fields


class RunQuestions:
    """Code search, queries and lineage of a run (mixed into the async engine)."""

    store: ProgramStore

    async def search_code(self, query: str, limit: int = 20, island: int | None = None,
                          correct: bool | None = None) -> list[SearchHit]:
        """Return the programs whose code holds the query's words, most relevant first."""
        terms = search_terms(query)
        limit = int_argument(limit, "limit", 1, MAX_LIMIT)
        if island is not None:
            island = int_argument(island, "island")
        correct = _optional_bool(correct, "correct")
        async with self.store.read() as reader:
            return await reader.search_code(terms, limit=limit, island=island, correct=correct)

    async def query(self, where: str | None = None, order_by: str | Sequence[str] | None = None,
                    limit: int = 100, columns: Sequence[str] | str | None = None
                    ) -> list[dict[str, Any]]:
        """Return chosen fields of the programs matching a filter, as dicts."""
        node = _where(where)
        order = parse_order(order_by) if order_by else []
        fields = parse_columns(columns if columns is not None else DEFAULT_COLUMNS)
        limit = int_argument(limit, "limit", 1, MAX_LIMIT)
        async with self.store.read() as reader:
            return await reader.query_rows(node, fields, order, limit)

    async def iter_rows(self, where: str | None = None,
                        columns: Sequence[str] | str | None = None, embeddings: bool = False,
                        batch_size: int = 5000) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the matching programs' fields in insertion order, ``batch_size`` at a time.

        Without ``columns``: every column, the JSON columns flattened (see :func:`row_fields`).
        """
        async with self.value_batches(where, columns, embeddings, batch_size) as (names,
                                                                                  batches):
            async for batch in batches:
                yield [dict(zip(names, values, strict=True)) for values in batch]

    @asynccontextmanager
    async def value_batches(self, where: str | None = None,
                            columns: Sequence[str] | str | None = None,
                            embeddings: bool = False, batch_size: int = 5000
                            ) -> AsyncIterator[tuple[list[str], AsyncIterator[Values]]]:
        """The fields' names, and batches of their values (a tuple a program), in one snapshot.

        :meth:`iter_rows` without a dict per program, for readers of many (``db export``).
        """
        node = _where(where)
        batch_size = int_argument(batch_size, "batch_size", 1, MAX_LIMIT)
        async with self.store.read(snapshot=True) as reader:
            fields = await row_fields(reader, columns, embeddings)
            async with aclosing(reader.iter_values(node, fields, batch_size)) as batches:
                yield [field.name for field in fields], batches

    async def to_dataframe(self, where: str | None = None,
                           columns: Sequence[str] | str | None = None, embeddings: bool = False,
                           batch_size: int = 5000) -> Any:
        """Return the matching programs as a pandas DataFrame, read in batches.

        Needs pandas: ``pip install "genesis-evolve[frames]"``.
        """
        from genesis.database.frames import collect_frame

        async with self.value_batches(where, columns, embeddings, batch_size) as (names,
                                                                                  batches):
            return await collect_frame(batches, names)

    async def create_index(self, field: str) -> bool:
        """Index a JSON path (``public_metrics.sum_radii``) so that filters on it use it.

        Comparisons on the path in ``query``, ``iter_rows``, ``to_dataframe`` and exports
        then read the index instead of every program: on SQLite every comparison but ``!=``,
        on PostgreSQL the ranges on numbers (its GIN indexes already serve equality).
        Returns False if the path was already indexed.
        """
        return await self.store.create_json_index(JsonIndex(index_field(field)))

    async def drop_index(self, field: str) -> bool:
        """Drop the index on a JSON path; False if there was none."""
        return await self.store.drop_json_index(JsonIndex(index_field(field)))

    async def indexes(self) -> list[str]:
        """Return the JSON paths that have an index, sorted."""
        async with self.store.read() as reader:
            return [index.field.name for index in await reader.json_indexes()]

    async def lineage(self, program_id: str, direction: str = "up",
                      max_depth: int | None = None) -> list[LineageStep]:
        """Return a program's ancestors (``up``) or descendants (``down``), nearest first."""
        id_argument(program_id)
        if direction not in ("up", "down"):
            raise InvalidArgumentError(f"direction: expected 'up' or 'down', got {direction!r}")
        if max_depth is not None:
            max_depth = int_argument(max_depth, "max_depth", 0)
        async with self.store.read() as reader:
            return await reader.lineage(program_id, direction, max_depth)  # type: ignore[arg-type]

    async def common_ancestor(self, first: str, second: str) -> Program | None:
        """Return the nearest program both descend from (one of them, if it is the other's)."""
        id_argument(first, "first")
        id_argument(second, "second")
        async with self.store.read(snapshot=True) as reader:
            found = await reader.common_ancestor(first, second)
            return None if found is None else await reader.get(found)
