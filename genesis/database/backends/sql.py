"""SQL shared by the SQLite and PostgreSQL backends.

Both backends store a run in the same tables (``programs``, ``archive``, ``metadata_store``,
``islands``, ``generation_event_log``, ``attempt_log``) and answer the protocol's reads with the
same statements. Statements are written once with ``?`` placeholders; a :class:`Dialect`
translates them and supplies the few fragments that differ (row ids, JSON access, casts).
A backend subclasses :class:`SQLSession` with its own four primitives (``_all``, ``_one``,
``_run``, ``_run_many``) and its bulk insert.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesis.database.backends.sql_questions import AnalysisSQL
from genesis.database.codec import (
    PROGRAM_COLUMNS,
    decode_json,
    dumps,
    encode_json,
    encode_program,
    program_from_row,
    unpack_embedding,
)
from genesis.database.errors import (
    ConfigurationError,
    DuplicateJobError,
    DuplicateProgramError,
    IntegrityError,
)
from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.offers import Offer
from genesis.database.optimistic import new_token
from genesis.database.program import Program
from genesis.database.protocol import (
    MAINTENANCE_CONFLICTS,
    MAINTENANCE_RUNS,
    MIGRATION_TOKEN,
    SELECTION_TOKEN,
    AttemptEvent,
    GenerationEvent,
    IslandStats,
    Order,
    ProgramSummary,
    RunTotals,
    SelectionState,
)

__all__ = [
    "STATE_KEYS",
    "Dialect",
    "EncodedProgram",
    "IslandMembers",
    "Query",
    "SQLSession",
    "Statement",
    "encode_for_insert",
    "island_members",
    "metric_name",
]

# An encoded program ready for insertion: (column values, in_archive, count_children).
EncodedProgram = tuple[tuple[Any, ...], bool, bool]
_SUMMARY = "p.id, p.island_idx, p.generation, p.combined_score, p.correct, p.children_count, " \
           "p.timestamp"
_ORDER_COLUMNS: dict[str, str] = {
    "score": "p.combined_score",
    "generation": "p.generation",
    "timestamp": "p.timestamp",
    "id": "p.id",
}
_CHUNK = 400
# The metadata that sampling and maintenance decide from (part of the selection state).
STATE_KEYS = ("best_program_id", "best_score_ever", "best_score_generation", "last_iteration",
              LAST_MIGRATION_KEY, "beam_search_parent_id", SELECTION_TOKEN, MIGRATION_TOKEN)


@dataclass(frozen=True)
class Query:
    """A read to send in a flight: final SQL, its parameters, and how to decode its rows."""

    sql: str
    params: Sequence[Any] = ()
    decode: Callable[[list[Sequence[Any]]], Any] = list


@dataclass(frozen=True)
class Statement:
    """A write to send in a flight: final SQL and one parameter row per execution."""

    sql: str
    rows: Sequence[Sequence[Any]] = ((),)


_ISLAND = PROGRAM_COLUMNS.index("island_idx")


def _island_order(values: Sequence[Any]) -> int:
    """Sort key of an encoded row: its island counter (-1 holds programs without island)."""
    island = values[_ISLAND]
    return -1 if island is None else int(island)


# Adds one to a metadata counter named by {key} (SQL giving the key), creating it at 1.
_COUNT_UP = ("INSERT INTO metadata_store (key, value) SELECT {key}, '1' ON CONFLICT (key) "
             "DO UPDATE SET value = CAST(CAST(metadata_store.value AS BIGINT) + 1 AS TEXT)")
# Costs and timings ShinkaEvolve's runner keeps in program metadata (telemetry sums them).
COST_KEYS = {"api": "api_costs", "embed": "embed_cost", "novelty": "novelty_cost",
             "meta": "meta_cost"}
TIMING_KEYS = ("sampling_seconds", "evaluation_seconds", "postprocess_seconds",
               "pipeline_seconds")


@dataclass(frozen=True)
class Dialect:
    """The fragments of SQL in which SQLite and PostgreSQL differ."""

    name: str
    placeholder: str
    seq: str
    embedding_column: str
    embedding_select: str
    json_cast: str
    metric_value: str
    metric_is_number: str
    average_metrics: str
    raise_metadata: str  # raises a numeric value; ``{values}`` is its VALUES or SELECT
    archived: str
    append_json: str  # ``{column}``'s JSON array with the JSON value ``?`` appended
    json_number: str  # a JSON number at key ``?`` of column ``{column}``, else NULL
    json_true: str  # whether the value at key ``?`` of column ``{column}`` is JSON true
    value_compare: str  # whether ``metadata_store.value`` is a number {op} ``?``
    array_params: bool = False  # membership tests as ``= ANY(?)`` with one list parameter

    def sql(self, text: str) -> str:
        """Translate a statement written with ``?`` placeholders."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def raise_metadata_sql(self, values: str = "VALUES (?, ?)") -> str:
        """The statement raising a numeric metadata value to the one ``values`` gives."""
        return self.raise_metadata.replace("{values}", self.sql(values))

    def metric_param(self, metric: str) -> str:
        """Return the parameter that addresses ``public_metrics[metric]``."""
        return f'$."{metric}"' if self.name == "sqlite" else metric

    def number_at(self, column: str, key: str) -> tuple[str, list[str]]:
        """Return SQL for the JSON number under ``key`` of ``column`` and its parameters."""
        fragment = self.json_number.replace("{column}", column)
        return fragment, [self.metric_param(key)] * fragment.count("?")

    def true_at(self, column: str, key: str) -> tuple[str, list[str]]:
        """Return SQL testing that ``key`` of ``column`` holds JSON true, and its parameters."""
        fragment = self.json_true.replace("{column}", column)
        return fragment, [self.metric_param(key)] * fragment.count("?")


def metric_name(metric: str) -> str:
    """Validate a public-metric name used in an ORDER BY."""
    if not isinstance(metric, str) or not metric or '"' in metric or "\\" in metric:
        raise ConfigurationError(f"metric {metric!r} is not a valid public_metrics key")
    return metric


def encode_for_insert(
    program: Program, max_code_bytes: int, count_children: bool = True
) -> EncodedProgram:
    """Validate and encode a program for a backend insert."""
    return encode_program(program, max_code_bytes), bool(program.in_archive), count_children


def _summary(row: Sequence[Any]) -> ProgramSummary:
    return ProgramSummary(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


@dataclass(frozen=True)
class IslandMembers:
    """An island's embedded programs as (id, seq, blob or None), and its departures counter.

    ``full``: ``members`` are all of them, in id order; otherwise only the newcomers since
    the cache's ``after_seq``, the others being the ones it knows (no member left).
    """

    full: bool
    members: list[tuple[str, int, bytes | None]]
    departures: int | None


def island_members(rows: Sequence[Sequence[Any]]) -> list[tuple[str, int, bytes | None]]:
    """(id, seq, blob or None) of rows of programs."""
    return [(r[0], int(r[1]), None if r[2] is None else bytes(r[2])) for r in rows]


def _numeric_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class SQLSession(AnalysisSQL, ABC):
    """Protocol reads and writes on one connection, in SQL common to both backends."""

    dialect: Dialect

    # Primitives a backend provides -------------------------------------------------------

    @abstractmethod
    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run a query and return all its rows."""

    @abstractmethod
    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        """Run a query and return its first row, or None."""

    @abstractmethod
    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return the number of rows it changed."""

    @abstractmethod
    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per parameter row."""

    @abstractmethod
    async def _insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert encoded program rows as fast as the backend can."""

    def _json_param(self, text: str | None) -> str | None:
        """Return JSON text as the backend must receive it (PostgreSQL's JSONB needs a hook)."""
        return text

    async def _flight(self, writes: Sequence[Statement], reads: Sequence[Query]
                      ) -> list[list[Sequence[Any]]]:
        """Run ``writes`` then ``reads``; return the rows of each read.

        PostgreSQL sends them all at once (one network round trip); here they run in turn.
        """
        for statement in writes:
            if len(statement.rows) == 1:
                await self._run(statement.sql, statement.rows[0])
            else:
                await self._run_many(statement.sql, statement.rows)
        return [await self._all(query.sql, query.params) for query in reads]

    async def fetch(self, *queries: Query) -> list[Any]:
        """Run reads together (one round trip on PostgreSQL) and return their decoded rows."""
        rows = await self._flight((), queries)
        return [query.decode(found) for query, found in zip(queries, rows, strict=True)]

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run a query written with ``?`` placeholders and return its rows (for tools)."""
        return await self._all(self.dialect.sql(sql), params)

    # Decoding ----------------------------------------------------------------------------

    def _select(self, where: str = "", tail: str = "") -> str:
        columns = ", ".join(
            self.dialect.embedding_select if name == "embedding" else f"p.{name}"
            for name in PROGRAM_COLUMNS[:-1]
        )
        archived = "EXISTS (SELECT 1 FROM archive a WHERE a.program_id = p.id)"
        sql = f"SELECT {columns}, {archived} FROM programs p"
        if where:
            sql += f" WHERE {where}"
        if tail:
            sql += f" {tail}"
        return self.dialect.sql(sql)

    def _program(self, row: Sequence[Any]) -> Program:
        values = dict(zip(PROGRAM_COLUMNS[:-1], row[:-1], strict=True))
        for name in ("archive_inspiration_ids", "top_k_inspiration_ids", "embedding_pca_2d",
                     "embedding_pca_3d", "migration_history"):
            values[name] = decode_json(values[name], list)
        for name in ("public_metrics", "private_metrics", "metadata"):
            values[name] = decode_json(values[name], dict)
        embedding = values["embedding"]
        values["embedding"] = (
            decode_json(embedding, list) if isinstance(embedding, str)
            else unpack_embedding(embedding)
        )
        return program_from_row(values, bool(row[-1]))

    async def _rows_in(self, template: str, column: str, values: Sequence[Any]
                       ) -> list[Sequence[Any]]:
        """Rows of ``template`` whose ``{match}`` tests ``column`` against ``values``, in chunks.

        PostgreSQL gets one array parameter (``= ANY``), so the statement text is the same
        whatever the number of values and is prepared once; SQLite gets ``IN (?, ...)``.
        """
        rows: list[Sequence[Any]] = []
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), _CHUNK):
            match, params = self._membership(column, unique[start:start + _CHUNK])
            rows += await self._all(self.dialect.sql(template.format(match=match)), params)
        return rows

    async def _programs(self, sql: str, params: Sequence[Any] = ()) -> list[Program]:
        return [self._program(row) for row in await self._all(sql, params)]

    async def _program_or_none(self, sql: str, params: Sequence[Any] = ()) -> Program | None:
        row = await self._one(sql, params)
        return self._program(row) if row is not None else None

    # Reads -------------------------------------------------------------------------------

    async def get(self, program_id: str) -> Program | None:
        """Return the program with this id, or None."""
        return await self._program_or_none(self._select("p.id = ?"), (program_id,))

    async def get_many(self, program_ids: Sequence[str]) -> list[Program]:
        """Return the programs with these ids in the given order, skipping missing ones."""
        rows = await self._rows_in(self._select("{match}"), "p.id", program_ids)
        found = {program.id: program for program in map(self._program, rows)}
        return [found[pid] for pid in program_ids if pid in found]

    async def summaries(self, program_ids: Sequence[str]) -> list[ProgramSummary]:
        """Return summaries of these programs in the given order, skipping missing ones."""
        rows = await self._rows_in(f"SELECT {_SUMMARY} FROM programs p WHERE {{match}}", "p.id",
                                   program_ids)
        found = {row[0]: _summary(row) for row in rows}
        return [found[pid] for pid in program_ids if pid in found]

    async def count(self) -> int:
        """Return the number of programs (from the islands counters)."""
        row = await self._one("SELECT COALESCE(SUM(programs), 0) FROM islands")
        return int(row[0]) if row else 0

    async def count_and_last_timestamp(self) -> tuple[int, float | None]:
        """Return the number of programs and the newest timestamp."""
        row = await self._one("SELECT MAX(timestamp) FROM programs")
        return await self.count(), (row[0] if row else None)

    async def island_stats(self) -> list[IslandStats]:
        """Return per-island counts, ordered by island index."""
        return (await self.fetch(self.q_island_stats()))[0]

    async def totals(self) -> RunTotals:
        """Return the run's program and correct counts and its distinct generations."""
        counts = await self._one("SELECT COALESCE(SUM(programs), 0), COALESCE(SUM(correct), 0) "
                                 "FROM islands")
        generations = await self._one("SELECT COUNT(DISTINCT generation), MAX(generation) "
                                      "FROM programs")
        assert counts is not None and generations is not None
        return RunTotals(int(counts[0]), int(counts[1]), int(generations[0]), generations[1])

    async def earliest_program(self) -> Program | None:
        """Return the program with the smallest timestamp (the run's initial program)."""
        return await self._program_or_none(
            self._select(tail=f"ORDER BY p.timestamp, {self.dialect.seq} LIMIT 1")
        )

    async def best_program(self, metric: str | None = None) -> Program | None:
        """Return the best correct program by combined_score (or a public metric)."""
        if metric is None:
            return await self._program_or_none(self._select(
                "p.correct = TRUE AND p.combined_score IS NOT NULL",
                "ORDER BY p.combined_score DESC NULLS LAST, p.timestamp DESC LIMIT 1",
            ))
        top = await self._metric_order(metric, correct_only=True, limit=1)
        return top[0] if top else None

    async def _metric_order(self, metric: str, correct_only: bool, limit: int) -> list[Program]:
        param = self.dialect.metric_param(metric_name(metric))
        where = self.dialect.metric_is_number
        if correct_only:
            where += " AND p.correct = TRUE"
        sql = self._select(where, f"ORDER BY {self.dialect.metric_value} DESC, p.timestamp DESC "
                                  "LIMIT ?")
        return await self._programs(sql, (param, param, limit))

    async def top_programs(
        self, n: int, metric: str | None = "combined_score", correct_only: bool = False
    ) -> list[Program]:
        """Return up to ``n`` programs, best first, by combined_score/timestamp/a metric."""
        if n <= 0:
            return []
        correct = " AND p.correct = TRUE" if correct_only else ""
        if metric == "combined_score":
            return await self._programs(self._select(
                f"p.combined_score IS NOT NULL{correct}",
                "ORDER BY p.combined_score DESC NULLS LAST, p.timestamp DESC LIMIT ?"), (n,))
        if metric == "timestamp":
            where = "p.correct = TRUE" if correct_only else ""
            return await self._programs(self._select(where, "ORDER BY p.timestamp DESC LIMIT ?"),
                                        (n,))
        if metric is None:
            average = self.dialect.average_metrics
            return await self._programs(self._select(
                f"{average} IS NOT NULL{correct}", f"ORDER BY {average} DESC LIMIT ?"), (n,))
        return await self._metric_order(metric, correct_only, n)

    async def nth_program(
        self,
        *,
        island: int | None,
        correct: bool | None,
        order: Order,
        descending: bool,
        offset: int = 0,
        generation: int | None = None,
    ) -> Program | None:
        """Return the program at ``offset`` in an indexed ordering of one island (or all)."""
        query = self.q_nth(island=island, correct=correct, order=order, descending=descending,
                           offset=offset, generation=generation)
        return (await self.fetch(query))[0]

    async def programs_by_generation(self, generation: int) -> list[Program]:
        """Return the programs of one generation."""
        return await self._programs(
            self._select("p.generation = ?", f"ORDER BY {self.dialect.seq}"), (generation,)
        )

    async def iter_programs(self, batch_size: int = 500) -> AsyncIterator[list[Program]]:
        """Yield every program in insertion order, ``batch_size`` at a time."""
        seq = self.dialect.seq
        last = -1
        sql = self._select(f"{seq} > ?", f"ORDER BY {seq} LIMIT ?").replace(
            "SELECT ", f"SELECT {seq}, ", 1
        )
        while True:
            rows = await self._all(sql, (last, batch_size))
            if not rows:
                return
            last = rows[-1][0]
            yield [self._program(row[1:]) for row in rows]

    async def children(
        self, program_id: str, *, correct_only: bool = True, limit: int = 100
    ) -> list[Program]:
        """Return up to ``limit`` children of a program, best score first."""
        where = "p.parent_id = ?" + (" AND p.correct = TRUE" if correct_only else "")
        sql = self._select(where, "ORDER BY p.combined_score DESC NULLS LAST, p.id LIMIT ?")
        return await self._programs(sql, (program_id, limit))

    async def ancestry(self, program_id: str, max_ancestors: int = 10) -> list[Program]:
        """Return up to ``max_ancestors`` ancestors, oldest first."""
        if max_ancestors <= 0:
            return []
        steps = await self.lineage(program_id, "up", max_ancestors)
        return await self.get_many([step.id for step in reversed(steps)])

    async def archive_members(self) -> list[ProgramSummary]:
        """Return every archive member (correct or not), sorted by id."""
        return (await self.fetch(self.q_archive_members()))[0]

    async def archive_summaries(self, island: int | None = None) -> list[ProgramSummary]:
        """Return the archive's correct members (of one island, or all), sorted by id."""
        return [s for s in await self.archive_members()
                if s.correct and (island is None or s.island_idx == island)]

    async def program_named_by(self, key: str) -> Program | None:
        """Return the program whose id is stored under a metadata key (one query)."""
        where = "p.id = (SELECT value FROM metadata_store WHERE key = ?)"
        return await self._program_or_none(self._select(where), (key,))

    async def archive_count(self) -> int:
        """Return the number of archive members."""
        row = await self._one("SELECT COUNT(*) FROM archive")
        return int(row[0]) if row else 0

    async def migration_candidates(self, islands: Sequence[int]
                                   ) -> dict[int, list[ProgramSummary]]:
        """Return each island's correct programs of generation > 0 (one round trip)."""
        found = await self.fetch(*(self.q_migration_candidates(i) for i in islands))
        return dict(zip(islands, found, strict=True))

    async def by_source_job_id(self, job_id: str) -> Program | None:
        """Return the program produced by this job, through the unique index."""
        return await self._program_or_none(self._select("p.source_job_id = ?"), (job_id,))

    async def get_metadata(self, key: str) -> str | None:
        """Return a metadata_store value (None if absent)."""
        row = await self._one(self.dialect.sql("SELECT value FROM metadata_store WHERE key = ?"),
                              (key,))
        return row[0] if row else None

    async def all_metadata(self) -> dict[str, str | None]:
        """Return the whole metadata_store."""
        rows = await self._all("SELECT key, value FROM metadata_store ORDER BY key")
        return {row[0]: row[1] for row in rows}

    async def embedding_ids(self, island: int) -> list[str]:
        """Return the ids of an island's programs that have an embedding, sorted."""
        column = self.dialect.embedding_column
        rows = await self._all(self.dialect.sql(
            f"SELECT id FROM programs WHERE island_idx = ? AND {column} IS NOT NULL ORDER BY id"
        ), (island,))
        return [row[0] for row in rows]

    async def embeddings(self, program_ids: Sequence[str]) -> dict[str, bytes]:
        """Return float64 embedding blobs of these programs."""
        column = self.dialect.embedding_column
        rows = await self._rows_in(
            f"SELECT id, {column} FROM programs WHERE {{match}} AND {column} IS NOT NULL", "id",
            program_ids)
        return {row[0]: bytes(row[1]) for row in rows}

    async def generation_events(self) -> list[GenerationEvent]:
        """Return the generation event log, oldest first."""
        rows = await self._all("SELECT generation, status, source_job_id, details, created_at "
                               "FROM generation_event_log ORDER BY id")
        return [GenerationEvent(r[0], r[1], r[2], _details(r[3]), r[4]) for r in rows]

    async def attempt_events(self) -> list[AttemptEvent]:
        """Return the attempt log, oldest first."""
        rows = await self._all("SELECT generation, stage, status, details, created_at "
                               "FROM attempt_log ORDER BY id")
        return [AttemptEvent(r[0], r[1], r[2], _details(r[3]), r[4]) for r in rows]

    async def generations(self) -> list[int]:
        """Return the distinct generations stored, ascending (an index skip scan)."""
        rows = await self._all(
            "WITH RECURSIVE g(x) AS (SELECT MIN(generation) FROM programs UNION ALL "
            "SELECT (SELECT MIN(generation) FROM programs WHERE generation > g.x) FROM g "
            "WHERE g.x IS NOT NULL) SELECT x FROM g WHERE x IS NOT NULL")
        return [int(row[0]) for row in rows]

    async def score_rank(self, score: float, correct_only: bool) -> tuple[int, int, int]:
        """Return how many scored programs score below, equal to, and in all."""
        where = "combined_score IS NOT NULL" + (" AND correct = TRUE" if correct_only else "")
        row = await self._one(self.dialect.sql(
            "SELECT COUNT(*) FILTER (WHERE combined_score < ?), "
            f"COUNT(*) FILTER (WHERE combined_score = ?), COUNT(*) FROM programs WHERE {where}"),
            (score, score))
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def iter_embeddings(self, batch_size: int = 1000
                              ) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Yield (id, float64 blob) of every embedded program in id order, in batches."""
        column = self.dialect.embedding_column
        sql = self.dialect.sql(f"SELECT id, {column} FROM programs WHERE id > ? AND {column} "
                               "IS NOT NULL ORDER BY id LIMIT ?")
        last = ""
        while True:
            rows = await self._all(sql, (last, batch_size))
            if not rows:
                return
            last = rows[-1][0]
            yield [(row[0], bytes(row[1])) for row in rows]

    async def island_telemetry(self) -> list[dict[str, Any]]:
        """Return per-island aggregates: counts, scores, costs and timings from metadata."""
        dialect, params = self.dialect, []

        def number(key: str) -> str:
            fragment, extra = dialect.number_at("p.metadata", key)
            params.extend(extra)
            return fragment

        def flag(key: str) -> str:
            fragment, extra = dialect.true_at("p.metadata", key)
            params.extend(extra)
            return fragment

        def copy() -> str:  # each placement binds its own parameters, in order
            return f"({flag('_is_island_copy')} OR {flag('_spawned_island')})"

        columns = [
            "COUNT(*)", f"COUNT(*) FILTER (WHERE NOT {copy()})",
            "COUNT(*) FILTER (WHERE p.correct = TRUE)", "COUNT(p.combined_score)",
            "COALESCE(SUM(p.combined_score), 0)", "MAX(p.combined_score)",
            "MAX(p.combined_score) FILTER (WHERE p.correct = TRUE)",
        ]
        for name, key in COST_KEYS.items():
            value, condition = number(key), f"NOT {copy()}"  # in the order they appear
            if name == "api":
                condition += f" AND NOT {flag('headless_pricing_unknown')}"
            columns.append(f"COALESCE(SUM({value}) FILTER (WHERE {condition}), 0)")
        columns.append(f"COUNT(*) FILTER (WHERE NOT {copy()} AND "
                       f"{flag('headless_pricing_unknown')})")
        for key in TIMING_KEYS:
            value = number(key)
            columns.append(f"COALESCE(SUM({value}) FILTER (WHERE NOT {copy()}), 0)")
        rows = await self._all(dialect.sql(
            f"SELECT p.island_idx, {', '.join(columns)} FROM programs p GROUP BY p.island_idx "
            "ORDER BY p.island_idx"), params)
        names = ("count", "evaluated_count", "correct_count", "score_count", "score_sum",
                 "best_score", "best_correct_score",
                 *(f"{name}_cost" for name in COST_KEYS), "pricing_unknown_count",
                 *TIMING_KEYS)
        return [{"island_idx": row[0], **dict(zip(names, row[1:], strict=True))}
                for row in rows]

    # Queries that flights combine ----------------------------------------------------------

    def q_island_stats(self) -> Query:
        """Per-island counts, ordered by island index (the counters table: O(islands))."""
        return Query("SELECT island_idx, programs, correct, best_score FROM islands "
                     "WHERE island_idx >= 0 AND programs > 0 ORDER BY island_idx", (),
                     lambda rows: [IslandStats(int(r[0]), int(r[1]), int(r[2]), r[3])
                                   for r in rows])

    def q_migration_candidates(self, island: int) -> Query:
        """The correct programs of generation > 0 on an island, as summaries by id."""
        return Query(self.dialect.sql(
            f"SELECT {_SUMMARY} FROM programs p WHERE p.island_idx = ? AND p.correct = TRUE "
            "AND p.generation > 0 ORDER BY p.id"), (island,),
            lambda rows: [_summary(r) for r in rows])

    def q_archive_members(self) -> Query:
        """Every archive member (correct or not) as a summary, sorted by id.

        The archive drives the lookup by primary key (``Dialect.archived``); a join would let
        a planner with stale statistics scan the programs instead of the small archive.
        """
        return Query(f"SELECT {_SUMMARY} FROM programs p WHERE {self.dialect.archived} "
                     "ORDER BY p.id", (), lambda rows: [_summary(r) for r in rows])

    def q_metadata(self, keys: Sequence[str]) -> Query:
        """The values of some metadata keys, as a dict (absent keys are left out)."""
        match, params = self._membership("key", list(keys))
        return Query(self.dialect.sql(f"SELECT key, value FROM metadata_store WHERE {match}"),
                     params, lambda rows: {r[0]: r[1] for r in rows})

    def q_best_summary(self) -> Query:
        """The summary of the program ``best_program_id`` names, or None."""
        return Query(self.dialect.sql(
            f"SELECT {_SUMMARY} FROM programs p WHERE p.id = "
            "(SELECT value FROM metadata_store WHERE key = ?)"), ("best_program_id",),
            lambda rows: _summary(rows[0]) if rows else None)

    def q_programs(self, program_ids: Sequence[str]) -> Query:
        """Whole programs by id, as a dict (a flight's few ids: at most 400)."""
        unique = list(dict.fromkeys(program_ids))
        if len(unique) > _CHUNK:
            raise ValueError(f"a flight fetches at most {_CHUNK} programs by id")
        match, params = self._membership("p.id", unique)
        return Query(self._select(match), params,
                     lambda rows: {p.id: p for p in map(self._program, rows)})

    def q_nth(self, *, island: int | None, correct: bool | None, order: Order,
              descending: bool, offset: int = 0, generation: int | None = None) -> Query:
        """The program at ``offset`` in an indexed ordering of one island (or all), or None."""
        clauses, params = [], []
        if island is not None:
            clauses.append("p.island_idx = ?")
            params.append(island)
        if correct is not None:
            clauses.append("p.correct = TRUE" if correct else "p.correct = FALSE")
        if generation is not None:
            clauses.append("p.generation = ?")
            params.append(generation)
        direction = "DESC" if descending else "ASC"
        tail = f"ORDER BY {_ORDER_COLUMNS[order]} {direction}"
        if order == "score":
            tail += " NULLS LAST" if descending else " NULLS FIRST"
        if order != "id":
            tail += f", p.id {direction}"
        sql = self._select(" AND ".join(clauses), f"{tail} LIMIT 1 OFFSET ?")
        return Query(sql, (*params, max(0, int(offset))),
                     lambda rows: self._program(rows[0]) if rows else None)

    def q_island_embeddings(self, island: int, after_seq: int,
                            known: tuple[int, int] | None = None) -> Query:
        """An island's embedded programs as :class:`IslandMembers`; blobs only past ``after_seq``.

        A cache that has seen every program up to ``after_seq`` learns the island's current
        members and receives only the embeddings it lacks, in one round trip. ``known`` (the
        island's departures and member count as the cache last saw them) lets a backend
        that counts them send only the newcomers while no member left; here every member
        is listed.
        """
        seq, column = self.dialect.seq, f"p.{self.dialect.embedding_column}"
        return Query(self.dialect.sql(
            f"SELECT p.id, {seq}, CASE WHEN {seq} > ? THEN {column} END FROM programs p "
            f"WHERE p.island_idx = ? AND {column} IS NOT NULL ORDER BY p.id"),
            (after_seq, island), lambda rows: IslandMembers(True, island_members(rows), None))

    def state_queries(self) -> list[Query]:
        """The reads that make up a :class:`SelectionState`, to add to any flight.

        The metadata, which holds the token, comes first: everything read after it is at
        least as new, so a decision taken on it fails the token's guard if anything changed
        (see :mod:`genesis.database.optimistic`).
        """
        return [self.q_metadata(STATE_KEYS), self.q_island_stats(), self.q_archive_members(),
                self.q_best_summary()]

    @staticmethod
    def state_from(results: Sequence[Any]) -> SelectionState:
        """Build the state from the decoded results of :meth:`state_queries`."""
        metadata, islands, archive, best = results
        return SelectionState(tuple(islands), tuple(archive), best, metadata)

    async def selection_state(self) -> SelectionState:
        """Read the selection state in one flight."""
        return self.state_from(await self.fetch(*self.state_queries()))

    async def fetch_with_state(self, *queries: Query) -> tuple[list[Any], SelectionState]:
        """Run ``queries`` and read the selection state, all in one flight."""
        results = await self.fetch(*queries, *self.state_queries())
        return results[:len(queries)], self.state_from(results[len(queries):])

    def _membership(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """``column = ANY(?)`` with one array (PostgreSQL) or ``column IN (?, ...)``."""
        if self.dialect.array_params:
            return f"{column} = ANY(?)", [values]
        if not values:
            return "1 = 0", []
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    # Writes ------------------------------------------------------------------------------

    async def insert(self, programs: Sequence[Program], *, count_children: bool = True) -> None:
        """Insert programs; bump parents' children_count and last_iteration."""
        max_bytes = getattr(self, "max_code_bytes", 8 * 1024 * 1024)
        await self.insert_encoded(
            [encode_for_insert(p, max_bytes, count_children) for p in programs]
        )

    async def insert_encoded(self, items: Sequence[EncodedProgram]) -> None:
        """Insert already-validated programs and apply their side effects."""
        if not items:
            return
        try:
            await self._insert_rows([values for values, _, _ in items])
        except DuplicateProgramError as exc:
            raise DuplicateProgramError(await self._duplicate(items, exc)) from exc
        await self._flight(self.side_effect_statements(items), ())

    def insert_statements(self, items: Sequence[EncodedProgram]) -> list[Statement]:
        """Every write that inserting ``items`` takes, for a flight (no bulk COPY).

        Every flight takes its row locks in one order: island counters in island order (the
        counters' trigger runs once per inserted row, so the rows go in island order), then
        the selection token (when island copies enter the archive), parents by id, metadata.
        Concurrent group commits therefore queue instead of deadlocking (a deadlock costs
        ``deadlock_timeout``, a second by default).
        """
        rows = sorted((values for values, _, _ in items), key=_island_order)
        return [self.program_statement(rows), *self.side_effect_statements(items)]

    @abstractmethod
    def program_statement(self, rows: Sequence[tuple[Any, ...]]) -> Statement:
        """The backend's INSERT of encoded program rows, one execution per row."""

    def side_effect_statements(self, items: Sequence[EncodedProgram]) -> list[Statement]:
        """Archive entries, parents' children counts and ``last_iteration`` of an insert.

        An insert that enters the archive (island copies) changes the selection state, so
        it also renews the state's token.
        """
        statements = []
        archived = [(values[0],) for values, in_archive, _ in items if in_archive]
        if archived:  # the token's row first, as in every maintenance write (no deadlock)
            statements.append(self.set_metadata_statement(SELECTION_TOKEN, new_token()))
            statements.append(Statement(self.dialect.sql(
                "INSERT INTO archive (program_id) VALUES (?) ON CONFLICT DO NOTHING"), archived))
        parents = Counter(values[3] for values, _, count in items if count and values[3])
        if parents:
            statements.append(Statement(self.dialect.sql(
                "UPDATE programs SET children_count = children_count + ? WHERE id = ?"),
                [(parents[pid], pid) for pid in sorted(parents)]))
        last = max(values[7] for values, _, _ in items)
        statements.append(Statement(self.dialect.raise_metadata_sql(),
                                    [("last_iteration", _numeric_text(last))]))
        return statements

    def guarded_statements(self, changes: Any, guards: Mapping[str, str | None], token: str
                           ) -> list[Statement]:
        """Writes that apply ``changes`` only while each token key holds its expected value.

        The first statement renews each guard's token (in the order given) to ``token`` if it
        still is the expected one (the rows it updates stay locked until the end); every
        other one runs only where all of them are then ``token``, that is, only if every
        renewal happened.
        """
        sql = self.dialect.sql
        guard = " AND ".join(["EXISTS (SELECT 1 FROM metadata_store WHERE key = ? AND "
                              "value = ?)"] * len(guards))
        check = tuple(item for key in guards for item in (key, token))
        statements = [Statement(sql(
            "INSERT INTO metadata_store (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = excluded.value WHERE metadata_store.value = ? "
            "OR (metadata_store.value IS NULL AND CAST(? AS TEXT) IS NULL)"),
            [(key, token, expected, expected) for key, expected in guards.items()])]
        if changes.archive_remove:
            statements.append(Statement(sql(
                f"DELETE FROM archive WHERE program_id = ? AND {guard}"),
                [(pid, *check) for pid in changes.archive_remove]))
        if changes.archive_add:
            statements.append(Statement(sql(
                f"INSERT INTO archive (program_id) SELECT ? WHERE {guard} "
                "ON CONFLICT DO NOTHING"), [(pid, *check) for pid in changes.archive_add]))
        if changes.metadata:
            statements.append(Statement(sql(
                f"INSERT INTO metadata_store (key, value) SELECT ?, ? WHERE {guard} "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                [(key, value, *check) for key, value in changes.metadata.items()]))
        if changes.raised:
            statements.append(Statement(
                self.dialect.raise_metadata_sql(f"SELECT ?, ? WHERE {guard}"),
                [(key, _numeric_text(value), *check) for key, value in changes.raised.items()]))
        if changes.moves:
            statements.append(self.moves_statement(changes.moves, guard, check))
        counter = f"CASE WHEN {guard} THEN ? ELSE ? END"  # applied, or refused by the guard
        statements.append(Statement(sql(_COUNT_UP.format(key=counter)),
                                    [(*check, MAINTENANCE_RUNS, MAINTENANCE_CONFLICTS)]))
        return statements

    def moves_statement(self, moves: Sequence[tuple[str, int, dict[str, Any]]], guard: str,
                        check: Sequence[Any]) -> Statement:
        """The UPDATE moving (id, island, event) programs while ``guard`` (on ``check``) holds,
        appending each event to the program's migration history."""
        append = self.dialect.append_json.replace("{column}", "migration_history")
        return Statement(self.dialect.sql(
            f"UPDATE programs SET island_idx = ?, migration_history = {append} "
            f"WHERE id = ? AND {guard}"),
            [(island, self._json_param(dumps(event)), pid, *check)
             for pid, island, event in moves])

    def offer_statements(self, offer: Offer, archive_size: int, token: str
                         ) -> list[Statement]:
        """Writes that apply an offer, whatever other offers were applied before it.

        The token's row is locked first (as by every maintenance write) and renewed, so
        optimistic decisions taken on the state before the offer are refused. The archive
        keeps its best ``archive_size`` members of everything offered; the best program and
        ``best_score_ever`` move only forward, compared with what is stored.
        """
        sql = self.dialect.sql
        statements = [self.set_metadata_statement(SELECTION_TOKEN, token)]
        if offer.archive:
            statements.append(Statement(sql(
                "INSERT INTO archive (program_id) SELECT id FROM programs WHERE id = ? AND "
                "correct ON CONFLICT DO NOTHING"), [(pid,) for pid in offer.archive]))
            # Only an archive over its size is trimmed; its members are looked up by primary
            # key (as in q_archive_members), not joined: a join may scan every program.
            statements.append(Statement(sql(
                "DELETE FROM archive WHERE (SELECT COUNT(*) FROM archive) > ? AND program_id "
                f"NOT IN (SELECT p.id FROM programs p WHERE {self.dialect.archived} ORDER BY "
                "p.correct DESC, p.combined_score DESC NULLS LAST, p.timestamp DESC, p.id "
                "LIMIT ?)"), [(archive_size, archive_size)]))
        best = offer.best
        if best is not None:
            score = _numeric_text(best.combined_score or 0.0)
            stored = "EXISTS (SELECT 1 FROM programs WHERE id = ?)"
            compare = self.dialect.value_compare  # final SQL (a regex on PostgreSQL)
            at = "SELECT 1 FROM metadata_store WHERE key = '{}' AND {}".format
            # The first generation to reach the best score: a higher score, or the same
            # score reached by an earlier generation (so the order of offers does not count).
            statements.append(Statement(
                sql("INSERT INTO metadata_store (key, value) SELECT 'best_score_generation', ? "
                    f"WHERE {stored} AND (NOT EXISTS (")
                + at("best_score_ever", compare.format(op=">=")) + ") OR (EXISTS ("
                + at("best_score_ever", compare.format(op="=")) + ") AND NOT EXISTS ("
                + at("best_score_generation", compare.format(op="<=")) + "))) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(str(offer.best_generation), best.id, score, score,
                  str(offer.best_generation))]))
            statements.append(Statement(self.dialect.raise_metadata_sql(
                f"SELECT 'best_score_ever', ? WHERE {stored}"), [(score, best.id)]))
            statements.append(Statement(sql(
                "INSERT INTO metadata_store (key, value) SELECT 'best_program_id', ? "
                f"WHERE {stored} AND NOT EXISTS (SELECT 1 FROM metadata_store m JOIN programs b "
                "ON b.id = m.value WHERE m.key = 'best_program_id' AND b.correct AND "
                "b.combined_score IS NOT NULL AND (b.combined_score > ? OR "
                "(b.combined_score = ? AND b.timestamp >= ?))) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                [(best.id, best.id, best.combined_score, best.combined_score,
                  best.timestamp)]))
        statements.append(Statement(sql(_COUNT_UP.format(key="?")), [(MAINTENANCE_RUNS,)]))
        return statements

    def q_tokens(self, keys: Sequence[str]) -> Query:
        """The values of these token keys, in order (None where absent)."""
        marks = ", ".join("?" * len(keys))
        return Query(self.dialect.sql(f"SELECT key, value FROM metadata_store WHERE key IN "
                                      f"({marks})"), tuple(keys),
                     lambda rows: [dict(rows).get(key) for key in keys])

    def set_metadata_statement(self, key: str, value: str | None) -> Statement:
        """The write of one metadata_store value."""
        return Statement(self.dialect.sql(
            "INSERT INTO metadata_store (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"), [(key, value)])

    async def _duplicate(self, items: Sequence[EncodedProgram], exc: BaseException) -> str:
        """Say which id a refused insert repeats (the driver's message does not, or oddly)."""
        ids = [values[0] for values, _, _ in items]
        repeated = [pid for pid, count in Counter(ids).items() if count > 1]
        if repeated:
            return f"program id {repeated[0]!r} appears twice in one batch"
        if len(ids) == 1:
            return f"a program with id {ids[0]!r} is already stored"
        detail = getattr(getattr(exc.__cause__, "diag", None), "message_detail", None) or ""
        match = re.search(r"Key \(id\)=\((.*)\) already exists", detail)
        if match:  # PostgreSQL names it (and its transaction can no longer be queried)
            return f"a program with id {match[1]!r} is already stored"
        if self.dialect.name == "sqlite":  # the statement was undone, the transaction lives
            rows = await self._rows_in("SELECT id FROM programs WHERE {match}", "id", ids)
            if rows:
                return f"a program with id {rows[0][0]!r} is already stored"
        return f"one of these {len(ids)} program ids is already stored: {ids[0]!r}, ..."

    async def insert_isolated(self, items: Sequence[EncodedProgram]) -> list[str | BaseException]:
        """Insert group-committed programs so that a bad item fails only itself.

        Returns, per item, the id stored for it (an already stored program's id when its
        ``source_job_id`` was seen before) or the exception that refused it.
        """
        outcomes: list[str | BaseException | None] = [None] * len(items)
        owners = await self._job_owners({v[-1] for v, _, _ in items if v[-1] is not None})
        first, later, seen = [], [], set()
        for index, (values, _, _) in enumerate(items):
            job = values[-1]
            if job is not None and job in owners:
                outcomes[index] = owners[job]
            elif job is not None and job in seen:
                later.append(index)
            else:
                seen.add(job)
                first.append(index)
        if first:
            try:
                await self._run("SAVEPOINT genesis_batch")
                await self.insert_encoded([items[i] for i in first])
                await self._run("RELEASE SAVEPOINT genesis_batch")
                for index in first:
                    outcomes[index] = items[index][0][0]
            except IntegrityError:
                await self._run("ROLLBACK TO SAVEPOINT genesis_batch")
                await self._run("RELEASE SAVEPOINT genesis_batch")
                later = first + later
        for index in sorted(later):
            outcomes[index] = await self._insert_one(items[index])
        return [outcome for outcome in outcomes if outcome is not None]

    async def _job_owners(self, jobs: set[str]) -> dict[str, str]:
        rows = await self._rows_in("SELECT source_job_id, id FROM programs WHERE {match}",
                                   "source_job_id", sorted(jobs))
        return {row[0]: row[1] for row in rows}

    async def _insert_one(self, item: EncodedProgram) -> str | BaseException:
        job = item[0][-1]
        if job is not None:
            owner = await self._job_owners({job})
            if owner:
                return owner[job]
        try:
            await self._run("SAVEPOINT genesis_item")
            await self.insert_encoded([item])
            await self._run("RELEASE SAVEPOINT genesis_item")
            return item[0][0]
        except IntegrityError as exc:
            await self._run("ROLLBACK TO SAVEPOINT genesis_item")
            await self._run("RELEASE SAVEPOINT genesis_item")
            if isinstance(exc, DuplicateJobError) and job is not None:
                owner = await self._job_owners({job})
                if owner:
                    return owner[job]
            return exc

    async def set_metadata(self, key: str, value: str | None) -> None:
        """Set a metadata_store value."""
        await self._flight([self.set_metadata_statement(key, value)], ())

    async def delete_metadata(self, key: str) -> None:
        """Remove a metadata_store key (nothing if absent)."""
        await self._run(self.dialect.sql("DELETE FROM metadata_store WHERE key = ?"), (key,))

    async def raise_metadata(self, key: str, value: float) -> bool:
        """Set a numeric metadata value if it is larger than the stored one."""
        changed = await self._run(self.dialect.raise_metadata_sql(), (key, _numeric_text(value)))
        return changed > 0

    async def count_up(self, key: str) -> None:
        """Add one to a metadata counter (created at 1)."""
        await self._flight([Statement(self.dialect.sql(_COUNT_UP.format(key="?")), [(key,)])],
                           ())

    async def archive_add(self, program_ids: Sequence[str]) -> None:
        """Add programs to the archive."""
        await self._run_many(
            self.dialect.sql("INSERT INTO archive (program_id) VALUES (?) ON CONFLICT DO NOTHING"),
            [(pid,) for pid in program_ids],
        )

    async def archive_remove(self, program_ids: Sequence[str]) -> None:
        """Remove programs from the archive."""
        await self._run_many(self.dialect.sql("DELETE FROM archive WHERE program_id = ?"),
                             [(pid,) for pid in program_ids])

    async def move_program(self, program_id: str, island: int, event: dict[str, Any]) -> None:
        """Move a program to another island and append ``event`` to its migration history
        (one statement: the server appends)."""
        statement = self.moves_statement([(program_id, island, event)], "TRUE", ())
        await self._run_many(statement.sql, statement.rows)

    async def replace_metadata(self, program_id: str, metadata: dict[str, Any]) -> bool:
        """Replace a program's metadata (its job id column follows); True if it exists."""
        text = encode_json("metadata", metadata, program_id)
        job = metadata.get("source_job_id")
        job = str(job) if isinstance(job, (str, int)) and not isinstance(job, bool) else None
        changed = await self._run(self.dialect.sql(
            f"UPDATE programs SET metadata = {self.dialect.json_cast}, "
            "source_job_id = COALESCE(?, source_job_id) WHERE id = ?"),
            (self._json_param(text), job, program_id))
        return changed > 0

    async def set_embedding_features(
        self, rows: Sequence[tuple[str, list[float], list[float], int | None]]
    ) -> None:
        """Store (id, 2-D projection, 3-D projection, cluster id) of embedded programs."""
        cast = self.dialect.json_cast
        await self._run_many(self.dialect.sql(
            f"UPDATE programs SET embedding_pca_2d = {cast}, embedding_pca_3d = {cast}, "
            "embedding_cluster_id = ? WHERE id = ?"),
            [(self._json_param(encode_json("embedding_pca_2d", two, pid)),
              self._json_param(encode_json("embedding_pca_3d", three, pid)), cluster, pid)
             for pid, two, three, cluster in rows])

    async def record_generation_event(self, event: GenerationEvent) -> None:
        """Append to the generation event log."""
        await self._run(self.dialect.sql(
            "INSERT INTO generation_event_log (generation, status, source_job_id, details, "
            f"created_at) VALUES (?, ?, ?, {self.dialect.json_cast}, ?)"),
            (event.generation, event.status, event.source_job_id,
             self._json_param(_details_text(event.details)),
             event.created_at or time.time()))

    async def record_attempt_event(self, event: AttemptEvent) -> None:
        """Append to the attempt log."""
        await self._run(self.dialect.sql(
            "INSERT INTO attempt_log (generation, stage, status, details, created_at) "
            f"VALUES (?, ?, ?, {self.dialect.json_cast}, ?)"),
            (event.generation, event.stage, event.status,
             self._json_param(_details_text(event.details)),
             event.created_at or time.time()))


def _details(value: Any) -> dict[str, Any] | None:
    return None if value is None else decode_json(value, dict)


def _details_text(details: dict[str, Any] | None) -> str | None:
    return None if details is None else encode_json("details", details, kind=dict)
