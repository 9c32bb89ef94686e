"""Storage primitives vs the raw driver: single adds, group commit, batches, the ceiling.

    python -m benchmarks.storage                   # SQLite, and PostgreSQL when reachable
    python -m benchmarks.storage --rows 2000 --embedding-dim 0 --backend sqlite

Each scenario writes the same realistic records into a fresh run. The ceiling is the raw
driver doing the same work with nothing around it: plain ``sqlite3`` ``executemany`` in one
transaction into the same table (PostgreSQL: raw psycopg binary ``COPY``), best of three.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from benchmarks.common import (
    POSTGRES_URL,
    Row,
    Runs,
    machine,
    markdown_table,
    peak_rss_mb,
    postgres_reachable,
    realistic_program,
    save,
)
from genesis.database import DatabaseConfig, DatabaseURL, Program, create_store
from genesis.database.backends.sqlite_schema import prepare_file
from genesis.database.codec import JSON_COLUMNS, PROGRAM_COLUMNS
from genesis.database.protocol import ProgramStore

CONCURRENCY = (16, 64)
BATCH = 500
CEILING_RUNS = 3
TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
RAW_TYPES = {"island_idx": "int4", "generation": "int4", "children_count": "int4",
             "embedding_cluster_id": "int4", "timestamp": "float8", "combined_score": "float8",
             "complexity": "float8", "correct": "bool", "embedding": "bytea"}


def raw_tuple(program: Program) -> tuple[object, ...]:
    """Encode a program the minimal way a raw-driver user would (json.dumps, packed floats)."""
    embedding = array("d", program.embedding).tobytes() if program.embedding else None
    return (
        program.id, program.code, program.language, program.parent_id,
        json.dumps(program.archive_inspiration_ids), json.dumps(program.top_k_inspiration_ids),
        program.island_idx, program.generation, program.timestamp, program.code_diff,
        program.combined_score, json.dumps(program.public_metrics),
        json.dumps(program.private_metrics), program.text_feedback, program.correct,
        program.children_count, program.complexity, embedding,
        json.dumps(program.embedding_pca_2d), json.dumps(program.embedding_pca_3d),
        program.embedding_cluster_id, json.dumps(program.migration_history),
        json.dumps(program.metadata), program.system_prompt_id,
        program.metadata.get("source_job_id"),
    )


def quiesce() -> None:
    """Flush dirty pages and collect garbage so a scenario does not pay for the previous one."""
    os.sync()
    gc.collect()


def sqlite_ceiling(path: Path, programs: Sequence[Program]) -> Row:
    """Plain sqlite3: encode and executemany every row in one transaction."""
    prepare_file(path)
    quiesce()
    columns = ", ".join("embedding_vec" if c == "embedding" else c for c in PROGRAM_COLUMNS)
    sql = f"INSERT INTO programs ({columns}) VALUES ({', '.join('?' * len(PROGRAM_COLUMNS))})"
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("synchronous = FULL", "cache_size = -16000", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")  # the engine's own settings, for a like-for-like run
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, [raw_tuple(p) for p in programs])
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return Row("raw sqlite3 executemany, 1 transaction", len(programs), elapsed,
               note="ceiling")


async def sequential(store: ProgramStore, programs: Sequence[Program]) -> Row:
    """Await one add at a time."""
    latencies = []
    start = time.perf_counter()
    for program in programs:
        t0 = time.perf_counter()
        await store.add(program)
        latencies.append(time.perf_counter() - t0)
    return Row("sequential add()", len(programs), time.perf_counter() - start, latencies)


async def concurrent(store: ProgramStore, programs: Sequence[Program], tasks: int) -> Row:
    """``tasks`` tasks add concurrently (group commit)."""
    queue = iter(programs)
    latencies: list[float] = []

    async def worker() -> None:
        for program in queue:
            t0 = time.perf_counter()
            await store.add(program)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return Row(f"{tasks} concurrent tasks, add()", len(programs), time.perf_counter() - start,
               latencies, versus_ceiling=True)


async def batched(store: ProgramStore, programs: Sequence[Program]) -> Row:
    """add_many() in batches of BATCH programs."""
    latencies = []
    start = time.perf_counter()
    for index in range(0, len(programs), BATCH):
        t0 = time.perf_counter()
        await store.add_many(programs[index:index + BATCH])
        latencies.append(time.perf_counter() - t0)
    return Row(f"add_many(), batches of {BATCH}", len(programs), time.perf_counter() - start,
               latencies, versus_ceiling=True)


Scenario = Callable[[ProgramStore, Sequence[Program]], Awaitable[Row]]


async def run_scenarios(
    new_url: Callable[[str], DatabaseURL], programs: Sequence[Program], sequential_rows: int,
    backend: str,
) -> list[Row]:
    """Run every engine scenario, each on a fresh run.

    On SQLite with embeddings, ``add_many()`` also runs with ShinkaEvolve's JSON copy of the
    embedding (``sqlite_legacy_embedding=True``, as for ShinkaEvolve's runner): the price of
    files that ShinkaEvolve reads with their embeddings.
    """
    config = DatabaseConfig(pool_max_size=8)
    scenarios: list[tuple[str, Scenario, Sequence[Program], DatabaseConfig]] = [
        ("sequential", sequential, programs[:sequential_rows], config),
        *[(f"concurrent{k}", lambda s, p, k=k: concurrent(s, p, k), programs, config)
          for k in CONCURRENCY],
        ("batched", batched, programs, config),
    ]
    if backend == "sqlite" and programs and programs[0].embedding:
        scenarios.append(("batched_text", with_text, programs,
                          DatabaseConfig(pool_max_size=8, sqlite_legacy_embedding=True)))
    rows = []
    for name, scenario, subset, options in scenarios:
        quiesce()
        async with create_store(new_url(name), options) as store:
            rows.append(await scenario(store, subset))
    return rows


async def with_text(store: ProgramStore, programs: Sequence[Program]) -> Row:
    """add_many() also filling ShinkaEvolve's JSON embedding column."""
    row = await batched(store, programs)
    return Row(f"{row.name}, + ShinkaEvolve's JSON embedding", row.ops, row.seconds,
               row.latencies, versus_ceiling=True)


def postgres_ceiling(url: DatabaseURL, programs: Sequence[Program]) -> Row:
    """Raw psycopg: binary COPY of the same rows into the same table, one transaction."""
    import psycopg
    from psycopg.types.json import Jsonb

    from genesis.database.backends.postgres_schema import schema_name

    async def create() -> None:
        async with create_store(url):  # the run's schema, indexes and triggers
            pass

    asyncio.run(create())
    json_positions = {i for i, column in enumerate(PROGRAM_COLUMNS) if column in JSON_COLUMNS}
    types = ["jsonb" if i in json_positions else RAW_TYPES.get(c, "text")
             for i, c in enumerate(PROGRAM_COLUMNS)]
    copy_sql = f"COPY programs ({', '.join(PROGRAM_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(url.conninfo()) as conn:
        conn.execute(f"SET search_path TO {schema_name(url.run)}")
        conn.commit()
        quiesce()
        start = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.set_types(types)
            for program in programs:
                row = list(raw_tuple(program))
                for i in json_positions:
                    row[i] = Jsonb(json.loads(row[i]))
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - start
    return Row("raw psycopg binary COPY, 1 transaction", len(programs), elapsed,
               note="ceiling")


def run_backend(backend: str, programs: Sequence[Program], sequential_rows: int) -> list[Row]:
    """All engine scenarios on one backend, after its raw-driver ceiling."""
    with tempfile.TemporaryDirectory(prefix="genesis-bench-") as folder:
        runs = Runs(backend, Path(folder))
        try:
            # The ceiling is the best of three runs, so noise cannot flatter the engine.
            ceiling = max((sqlite_ceiling(Path(runs.new(f"ceiling{i}").path), programs)
                           if backend == "sqlite" else
                           postgres_ceiling(runs.new(f"ceiling{i}"), programs)
                           for i in range(CEILING_RUNS)), key=lambda row: row.rate)
            rows = asyncio.run(run_scenarios(runs.new, programs, sequential_rows, backend))
        finally:
            runs.drop()
    return [ceiling, *rows]


def report(title: str, rows: list[Row]) -> str:
    """Print and return the markdown table of one backend (first row: the ceiling)."""
    text = f"### {title}\n\n" + markdown_table(rows, rows[0].rate)
    print(text + "\n")
    return text


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run the storage benchmark and print one table per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--sequential-rows", type=int, default=1000)
    parser.add_argument("--embedding-dim", type=int, nargs="*", default=[0, 1536])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}\n")
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    if "postgres" in backends and not postgres_reachable():
        print(f"postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, left out\n")
        backends.remove("postgres")
    results: dict[str, object] = {}
    for dim in args.embedding_dim:
        rng = random.Random(args.seed)
        programs = [realistic_program(rng, embedding_dim=dim) for _ in range(args.rows)]
        label = f"embedding {dim} floats" if dim else "no embedding"
        for backend in backends:
            rows = run_backend(backend, programs, args.sequential_rows)
            report(f"{TITLES[backend]}, {args.rows:,} rows, {label}", rows)
            results[f"{backend}_{dim}"] = [r.as_dict() for r in rows]
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(f"peak RSS: {results['peak_rss_mb']} MB")
    path = save("storage", results)
    print(f"results: {os.path.relpath(path)}")
    return results


if __name__ == "__main__":
    main()
