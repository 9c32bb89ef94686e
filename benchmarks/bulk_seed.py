"""Seed a run with many small programs fast, straight into the schema the store created.

PostgreSQL gets binary ``COPY`` in chunks, SQLite ``executemany`` in one transaction. The
rows are complete: a lineage per island with exact ``children_count``, increasing
timestamps, 70% correct, a job id each. The ``islands`` counters stay exact: on PostgreSQL
the schema's statement trigger runs once per COPY; on SQLite the row trigger is set aside
for the load and the counters recomputed from the rows (see ``_insert_sqlite``). The
archive, best program and ``last_iteration`` are then set through the store, as the engine
keeps them. PostgreSQL is vacuumed and analysed afterwards, as autovacuum would have been
during a run that grew this big.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.codec import JSON_COLUMNS, PROGRAM_COLUMNS

__all__ = ["SeedShape", "seed_programs"]

_CHUNK = 100_000  # rows per COPY (PostgreSQL)
_SQLITE_TRIGGER = "programs_islands_insert"
_PG_TYPES = {"island_idx": "int4", "generation": "int4", "children_count": "int4",
             "embedding_cluster_id": "int4", "timestamp": "float8", "combined_score": "float8",
             "complexity": "float8", "correct": "bool", "embedding": "bytea",
             **dict.fromkeys(JSON_COLUMNS, "jsonb")}
_CODE = "def solve(x):\n    return sorted(x)[:{k}]  # variant {i}\n"
# The rest of a program of realistic size: the same helper functions in every program, as
# in an evolution run, where children are small edits of their parents.
_HELPERS = """
def pack_circles(count: int, width: float = ONE, seed: int = SEED) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    centers = rng.random((count, DIMENSIONS)) * width
    radii = np.full(count, width / (DIMENSIONS * count))
    for step in range(STEPS):
        gaps = scipy.spatial.distance.cdist(centers, centers) - radii[:, None] - radii
        np.fill_diagonal(gaps, np.inf)
        radii = np.clip(radii + HALF * gaps.min(axis=ONE), ZERO, width / DIMENSIONS)
    return [(float(x), float(y)) for x, y in centers]

"""


@dataclass(frozen=True)
class SeedShape:
    """What the seeded programs look like (for the tables' notes)."""

    islands: int = 2
    correct_share: float = 0.7
    code_bytes: int = 0  # 0: the ~60 B function alone; else padded with helpers to about this

    def code(self, i: int) -> str:
        """The code of the ``i``-th program."""
        code = _CODE.format(k=i % 26, i=i)
        helpers = _HELPERS
        while len(code) + len(helpers) <= self.code_bytes:
            code += helpers
        return code

    def describe(self) -> str:
        """One line for a table."""
        size = f"~{self.code_bytes / 1000:.0f} KB" if self.code_bytes else "~60 B"
        return (f"small programs ({size} of code, 2 metrics, 2 metadata keys, no embedding), "
                f"{self.islands} islands, {self.correct_share:.0%} correct")


def _lineage(count: int, islands: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (parent index or -1, generation, children count) of ``count`` programs."""
    index = np.arange(count)
    earlier = index // islands  # programs of the same island before this one
    parent = (index % islands) + islands * np.floor(rng.random(count) * earlier).astype(np.int64)
    parent[:islands] = -1
    generation = np.zeros(count, dtype=np.int64)
    for i in range(islands, count):  # parents come first, so one pass suffices
        generation[i] = generation[parent[i]] + 1
    children = np.bincount(parent[islands:], minlength=count)
    return parent, generation, children


def rows(count: int, shape: SeedShape, seed: int = 7) -> Iterator[tuple[object, ...]]:
    """Yield ``count`` encoded programs in ``PROGRAM_COLUMNS`` order (JSON as text)."""
    rng = np.random.default_rng(seed)
    parent, generation, children = _lineage(count, shape.islands, rng)
    return _rows(count, shape, seed, rng, parent, generation, children)


def _rows(count: int, shape: SeedShape, seed: int, rng: np.random.Generator,
          parent: np.ndarray, generation: np.ndarray, children: np.ndarray
          ) -> Iterator[tuple[object, ...]]:
    scores = rng.random(count) * 2.6
    correct = rng.random(count) < shape.correct_share
    correct[:shape.islands] = True
    ids = [f"{seed:08x}-0000-4000-8000-{i:012x}" for i in range(count)]
    start = time.time() - count * 0.001
    for i in range(count):
        score = float(scores[i])
        job = f"{seed:08x}{i:024x}"
        yield (ids[i], shape.code(i), "python",
               ids[parent[i]] if parent[i] >= 0 else None, "[]", "[]", i % shape.islands,
               int(generation[i]), start + i * 0.001, None, score,
               f'{{"combined_score": {score!r}, "sum_radii": {score!r}}}', "{}", "",
               bool(correct[i]), int(children[i]), 0.25, None, "[]", "[]", None, "[]",
               f'{{"patch_type": "diff", "source_job_id": "{job}"}}', None, job)


def _copy_postgres(url: DatabaseURL, count: int, shape: SeedShape) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    from genesis.database.backends.postgres_schema import schema_name

    schema = schema_name(url.run)
    json_at = [i for i, c in enumerate(PROGRAM_COLUMNS) if c in JSON_COLUMNS]
    constant = {text: Jsonb(text, dumps=str) for text in ("[]", "{}")}
    types = [_PG_TYPES.get(c, "text") for c in PROGRAM_COLUMNS]
    sql = f"COPY {schema}.programs ({', '.join(PROGRAM_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(url.conninfo()) as conn:
        produced = rows(count, shape)
        left = count
        while left > 0:
            with conn.cursor() as cursor, cursor.copy(sql) as copy:
                copy.set_types(types)
                for _ in range(min(_CHUNK, left)):
                    row = list(next(produced))
                    for i in json_at:
                        row[i] = constant.get(row[i]) or Jsonb(row[i], dumps=str)
                    copy.write_row(row)
            conn.commit()
            left -= _CHUNK
        conn.autocommit = True
        conn.execute(f"VACUUM ANALYZE {schema}.programs")


def _insert_sqlite(url: DatabaseURL, count: int, shape: SeedShape) -> None:
    """Insert in one transaction with the islands row trigger set aside, then recount.

    The trigger would double the load's time; the counters it keeps are recomputed from the
    rows with the statement the schema upgrade uses, and the trigger is put back as stored.
    """
    columns = ", ".join("embedding_vec" if c == "embedding" else c for c in PROGRAM_COLUMNS)
    sql = f"INSERT INTO programs ({columns}) VALUES ({', '.join('?' * len(PROGRAM_COLUMNS))})"
    conn = sqlite3.connect(url.path, isolation_level=None)
    try:
        conn.execute("PRAGMA cache_size = -1000000")  # up to 1 GB: indexes stay in memory
        conn.execute("BEGIN IMMEDIATE")
        (trigger,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                  "AND name = ?", (_SQLITE_TRIGGER,)).fetchone()
        conn.execute(f"DROP TRIGGER {_SQLITE_TRIGGER}")
        conn.executemany(sql, rows(count, shape))
        conn.execute("DELETE FROM islands")
        conn.execute("INSERT INTO islands (island_idx, programs, correct, best_score) "
                     "SELECT COALESCE(island_idx, -1), COUNT(*), SUM(correct != 0), "
                     "MAX(CASE WHEN correct THEN combined_score END) FROM programs GROUP BY 1")
        conn.execute(trigger)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _create(url: DatabaseURL, config: DatabaseConfig) -> None:
    """Create the run's schema, as a first writable open does."""
    store = create_store(url, config)
    await store.open()
    await store.close()


async def _finish(url: DatabaseURL, config: DatabaseConfig) -> None:
    """Set the archive, best program and last_iteration through the store."""
    async with create_store(url, config) as store, store.write() as writer:
        best = await writer.top_programs(config.archive_size, correct_only=True)
        await writer.archive_add([p.id for p in best])
        await writer.set_metadata("best_program_id", best[0].id)
        await writer.raise_metadata("best_score_ever", best[0].combined_score or 0.0)
        await writer.set_metadata("best_score_generation", str(best[0].generation))
        totals = await writer.totals()
        await writer.raise_metadata("last_iteration", totals.last_generation or 0)


def seed_programs(url: DatabaseURL, count: int, config: DatabaseConfig,
                  shape: SeedShape | None = None) -> float:
    """Create the run, seed ``count`` programs; return the seconds it took."""
    shape = shape or SeedShape(islands=config.num_islands)
    started = time.perf_counter()
    asyncio.run(_create(url, config))
    if url.is_postgres:
        _copy_postgres(url, count, shape)
    else:
        _insert_sqlite(url, count, shape)
    asyncio.run(_finish(url, config))
    return time.perf_counter() - started

