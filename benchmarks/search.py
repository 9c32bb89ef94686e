"""Asking a 100k-program run questions, on both backends, each beside the same question
answered by a scan.

    python -m benchmarks.search                  # 100k programs, SQLite and PostgreSQL
    python -m benchmarks.search --programs 20000 --backends sqlite

The run is seeded by ``benchmarks.bulk_seed`` with programs of ~3 KB of code (``--code-bytes``;
the ShinkaEvolve runs in the test data hold 0.4-12.6 KB per program, median 4.6 KB): the
same helper functions in every program, as in an evolution run, and a line ending in
``# variant <i>``. Then 1% of the programs get ``metadata.patch_type == "rare"`` and a chain
of 1,000 programs is added for lineage. Rows, each median (p50) over repeated calls with varied
arguments:

- code search for ``variant <i>`` through the index (FTS5 / GIN on ``code_tsv``), beside a
  ``LIKE`` scan of the code;
- a filter matching 1% of the programs, as an equality on metadata (the PostgreSQL GIN
  containment shape) and as a range on a public metric, first without JSON path indexes
  (a scan on SQLite; on PostgreSQL the GIN index serves the equality, not the range),
  then with ``create_index`` on both paths (its build time is a row), beside reading
  every row's JSON into Python and filtering;
- lineage of depth 1,000 (one recursive query), beside walking it with one ``get`` per step;
- export of every row as CSV (no embeddings), beside the raw driver reading the same rows,
  with the growth of the process' peak memory.

Targets: search and filter p50 <= 20 ms and >= 20x faster than the scan; lineage <= 20 ms;
export >= 50% of the raw driver's rows/s with flat memory.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bulk_seed import SeedShape, seed_programs
from benchmarks.common import (
    Row,
    Runs,
    machine,
    markdown_table,
    peak_rss_mb,
    postgres_reachable,
    save,
)
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.ops.export import export_run

CHAIN = 1_000
RARE = 'metadata.patch_type == "rare"'
RANGE = "public_metrics.sum_radii > 2.574"  # seeded uniform in [0, 2.6): the top 1%


async def _timed(name: str, call: Callable[[int], Any], repeats: int, note: str = "") -> Row:
    """Time ``call(i)`` (a coroutine function, or a plain one for the raw driver)."""
    latencies = []
    for index in range(repeats):
        started = time.perf_counter()
        outcome = call(index)
        if inspect.isawaitable(outcome):
            await outcome
        latencies.append(time.perf_counter() - started)
    return Row(name, repeats, sum(latencies), latencies, note)


def _prepare_sqlite(url: DatabaseURL) -> None:
    with sqlite3.connect(url.path) as conn:
        conn.execute("UPDATE programs SET metadata = json_set(metadata, '$.patch_type', 'rare') "
                     "WHERE rowid % 100 = 0")


def _prepare_postgres(url: DatabaseURL) -> None:
    import psycopg

    from genesis.database.backends.postgres_schema import schema_name

    schema = schema_name(url.run)
    with psycopg.connect(url.conninfo(), autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.programs SET metadata = metadata || "
                     "'{\"patch_type\": \"rare\"}' WHERE seq % 100 = 0")
        conn.execute(f"VACUUM ANALYZE {schema}.programs")


class Raw:
    """The same questions through the raw driver: scans, and reading every row."""

    def __init__(self, url: DatabaseURL) -> None:
        self.url = url
        if url.is_sqlite:
            self.conn: Any = sqlite3.connect(url.path)
            self.table = "programs"
        else:
            import psycopg

            from genesis.database.backends.postgres_schema import schema_name

            self.conn = psycopg.connect(url.conninfo(), autocommit=True)
            self.table = f"{schema_name(url.run)}.programs"
        self.mark = "?" if url.is_sqlite else "%s"

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a query, return its rows."""
        return self.conn.execute(sql.replace("{t}", self.table).replace("?", self.mark),
                                 params).fetchall()

    def search_scan(self, words: str) -> list[Any]:
        """Programs whose code holds the words, by scanning the code."""
        like = "LIKE" if self.url.is_sqlite else "ILIKE"
        return self.all(f"SELECT id FROM {{t}} WHERE code {like} ?", (f"%{words}%",))

    def filter_scan(self, column: str, test: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Read every row's JSON column into Python and filter there."""
        rows = self.all(f"SELECT id, {column} FROM {{t}}")
        return [pid for pid, value in rows
                if test(json.loads(value) if isinstance(value, str) else value)]

    def read_all(self, batch: int = 5000) -> int:
        """Read every row (as export does, no embedding) in batches; return the count."""
        columns = ("id, code, parent_id, language, system_prompt_id, island_idx, generation, "
                   "children_count, embedding_cluster_id, timestamp, combined_score, "
                   "complexity, correct, public_metrics, private_metrics, metadata")
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT {columns} FROM {self.table}")
        count = 0
        while rows := cursor.fetchmany(batch):
            count += len(rows)
        return count

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


async def _chain(db: AsyncProgramDatabase) -> str:
    ids = [f"chain-{i:05d}" for i in range(CHAIN + 1)]
    await db.store.add_many([Program(id=pid, code=f"def link_{i}():\n    return {i}\n",
                                     parent_id=ids[i - 1] if i else None, island_idx=0,
                                     generation=i) for i, pid in enumerate(ids)])
    return ids[-1]


async def bench_backend(url: DatabaseURL, programs: int, folder: Path, shape: SeedShape
                        ) -> list[Row]:
    """Every row of the table for one backend."""
    label = "SQLite" if url.is_sqlite else "PostgreSQL"
    config = DatabaseConfig(database_url=str(url), num_islands=shape.islands)
    seconds = await asyncio.to_thread(seed_programs, url, programs, config, shape)
    print(f"{label}: seeded {programs:,} programs in {seconds:.1f} s", flush=True)
    rng = random.Random(3)
    targets = [rng.randrange(programs) for _ in range(50)]
    rows: list[Row] = []
    raw = Raw(url)
    async with AsyncProgramDatabase(config) as db:
        last = await _chain(db)
        # 1% rare; on PostgreSQL also the chain's GIN entries into the index, and statistics
        (_prepare_sqlite if url.is_sqlite else _prepare_postgres)(url)

        async def search(i: int) -> None:
            hits = await db.search_code(f"variant {targets[i]}", limit=20)
            assert hits, targets[i]

        searched = await _timed(f"{label}: search_code('variant <i>')", search, 50)
        scan = await _timed(f"{label}: scan: code LIKE '%variant <i>%'",
                            lambda i: raw.search_scan(f"variant {targets[i]}"), 5)
        rows += [_versus(searched, scan), scan]

        async def rare(i: int) -> None:
            found = await db.query(RARE, limit=programs)
            assert len(found) >= programs // 100 - 1

        async def ranged(i: int) -> None:
            found = await db.query(RANGE, limit=programs)
            assert programs // 200 < len(found) < programs // 50

        unindexed = [await _timed(f"{label}: query({RARE}) 1%, no JSON path index", rare, 5),
                     await _timed(f"{label}: query({RANGE}) 1%, no JSON path index", ranged,
                                  5)]
        started = time.perf_counter()
        for field in (RARE.split()[0], RANGE.split()[0]):
            await db.create_index(field)
        build = Row(f"{label}: create_index() of both paths", 2,
                    time.perf_counter() - started)
        filters = [await _timed(f"{label}: query({RARE}) 1%", rare, 20),
                   await _timed(f"{label}: query({RANGE}) 1%", ranged, 20)]
        scan = await _timed(f"{label}: scan: every metadata into Python", lambda i: (
            raw.filter_scan("metadata", lambda m: m.get("patch_type") == "rare")), 3)
        rows += [*(_versus(row, scan) for row in filters), scan, *unindexed, build]

        async def lineage(i: int) -> None:
            steps = await db.lineage(last)
            assert len(steps) == CHAIN

        async def walk(i: int) -> None:
            current = await db.get(last)
            steps = 0
            while current is not None and current.parent_id is not None:
                current = await db.get(current.parent_id)
                steps += 1
            assert steps == CHAIN

        walked = await _timed(f"{label}: lineage(depth {CHAIN:,})", lineage, 20)
        scan = await _timed(f"{label}: scan: {CHAIN:,} get() calls up the chain", walk, 3)
        rows += [_versus(walked, scan), scan]
    before = peak_rss_mb()
    started = time.perf_counter()
    result = await export_run(url, folder / f"{label}.csv", "csv")
    export = Row(f"{label}: export CSV (rows/s)", result.rows, time.perf_counter() - started)
    memory = peak_rss_mb() - before
    started = time.perf_counter()
    count = raw.read_all()
    reading = Row(f"{label}: raw driver reads the same rows", count,
                  time.perf_counter() - started)
    raw.close()
    export.note = (f"peak RSS +{memory:.0f} MB; {export.rate / reading.rate:.0%} of the raw "
                   "driver (target >= 50%)")
    return [*rows, export, reading]


def _versus(row: Row, scan: Row, target_ms: float = 20.0) -> Row:
    """Note a row's speed-up over the scan answering the same question, against the target."""
    p50, scanned = row.percentile(0.5), scan.percentile(0.5)
    assert p50 is not None and scanned is not None
    verdict = "meets" if p50 <= target_ms else "misses"
    row.note = f"{scanned / p50:,.0f}x the scan; {verdict} p50 <= {target_ms:.0f} ms"
    return row


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Seed each backend, ask the questions, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--code-bytes", type=int, default=3000,
                        help="code per seeded program (default 3000; 0: a ~60 B function)")
    args = parser.parse_args(argv)
    shape = SeedShape(islands=2, code_bytes=args.code_bytes)
    print(f"machine: {machine()}; {shape.describe()}\n")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="genesis-search-bench-") as folder:
        for backend in args.backends.split(","):
            if backend == "postgres" and not postgres_reachable():
                print("PostgreSQL not reachable: SQLite rows only\n")
                continue
            runs = Runs(backend, Path(folder))
            try:
                rows += asyncio.run(bench_backend(runs.new("search"), args.programs,
                                                  Path(folder), shape))
            finally:
                runs.drop()
    print()
    print(markdown_table(rows))
    payload = {"programs": args.programs, "shape": shape.describe(),
               "rows": [row.as_dict() for row in rows]}
    save("search", payload)
    return payload


if __name__ == "__main__":
    main()
