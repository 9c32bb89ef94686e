"""Throughput and memory of ``genesis db copy`` between backends.

    python -m benchmarks.copy_run                       # 100k programs, plus 10k with embeddings
    python -m benchmarks.copy_run --rows 20000 --embedding-rows 0

A SQLite source of realistic programs (``benchmarks.common.realistic_program``) is built
once; each copy then runs in a fresh child process, which reports its elapsed time and its
peak resident memory (VmHWM), so the figures are those of the copying process alone. The
copy reads the source in one snapshot and writes batches with ``add_many`` (COPY on
PostgreSQL). Targets: >= 5,000 programs/s SQLite -> PostgreSQL, peak memory flat with the
number of programs and under 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine, peak_rss_mb, realistic_program, save
from genesis.database import DatabaseURL, create_store
from genesis.ops import copy_run

POSTGRES_URL = os.environ.get("GENESIS_BENCH_DATABASE_URL") or os.environ.get(
    "GENESIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BUILD_BATCH = 2000


@dataclass
class Result:
    """One copy: what was copied where, how fast, with how much memory."""

    name: str
    programs: int
    seconds: float
    peak_mb: float

    @property
    def rate(self) -> float:
        """Programs per second."""
        return self.programs / self.seconds if self.seconds else 0.0


async def build_source(path: Path, rows: int, embedding_dim: int, seed: int) -> None:
    """Write ``rows`` realistic programs into a new SQLite file, parents before children."""
    rng = random.Random(seed)
    async with create_store(DatabaseURL.sqlite(path)) as store:
        recent: list = []
        for start in range(0, rows, BUILD_BATCH):
            batch = []
            for index in range(start, min(rows, start + BUILD_BATCH)):
                parent = rng.choice(recent) if recent and rng.random() < 0.9 else None
                program = realistic_program(rng, embedding_dim=embedding_dim, parent=parent,
                                            generation=index // 100)
                program.in_archive = index % 2500 == 0 and program.correct
                batch.append(program)
            await store.add_many(batch)
            recent = batch[-200:]


def as_argument(url: DatabaseURL) -> str:
    """Name a run on the child's command line without its password: a path or ``run:NAME``."""
    return url.path if url.is_sqlite else f"run:{url.run}"


def from_argument(text: str) -> DatabaseURL:
    """The run named by :func:`as_argument`."""
    if text.startswith("run:"):
        return DatabaseURL.parse(POSTGRES_URL).with_run(text[4:])
    return DatabaseURL.sqlite(text)


def child(source: str, destination: str, batch_size: int) -> None:
    """Run one copy in this (fresh) process and print its figures as JSON."""
    started = time.perf_counter()
    result = asyncio.run(copy_run(from_argument(source), from_argument(destination),
                                  batch_size=batch_size))
    print(json.dumps({"programs": result.programs, "seconds": time.perf_counter() - started,
                      "peak_mb": peak_rss_mb()}))


def measure(name: str, source: DatabaseURL, destination: DatabaseURL, batch_size: int) -> Result:
    """Copy in a child process and return its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.copy_run", "--child", as_argument(source),
         as_argument(destination), "--batch-size", str(batch_size)],
        capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.splitlines()[-1])
    return Result(name, figures["programs"], figures["seconds"], figures["peak_mb"])


def postgres_reachable(url: DatabaseURL) -> bool:
    """True when the benchmark server answers."""
    from genesis.database.backends.postgres_runs import list_runs

    try:
        asyncio.run(list_runs(url))
    except Exception:
        return False
    return True


def table(results: Sequence[Result]) -> str:
    """Render the results as a markdown table."""
    lines = ["| copy | programs | seconds | programs/s | peak RSS MB |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.programs:,} | {r.seconds:.1f} | {r.rate:,.0f} | {r.peak_mb:.0f} |"
              for r in results]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Build the sources, run every copy in a child process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small-rows", type=int, default=10_000,
                        help="a smaller copy, to show that memory does not grow with size")
    parser.add_argument("--embedding-rows", type=int, default=10_000)
    parser.add_argument("--embedding-dim", type=int, default=1536)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, args.batch_size)
        return {}
    print(f"machine: {machine()}\n")
    pg = DatabaseURL.parse(POSTGRES_URL, "GENESIS_BENCH_DATABASE_URL")
    use_pg = postgres_reachable(pg)
    if not use_pg:
        print(f"PostgreSQL not reachable at {pg}: SQLite rows only\n")
    results: list[Result] = []
    runs: list[DatabaseURL] = []

    def new_run() -> DatabaseURL:
        runs.append(pg.with_run(f"bench_copy_{uuid.uuid4().hex[:10]}"))
        return runs[-1]

    with tempfile.TemporaryDirectory(prefix="genesis-copy-bench-") as folder:
        base = Path(folder)
        sources = {"large": (base / "large.db", args.rows, 0),
                   "small": (base / "small.db", args.small_rows, 0),
                   "embedded": (base / "embedded.db", args.embedding_rows, args.embedding_dim)}
        for path, rows, dim in sources.values():
            if rows:
                started = time.perf_counter()
                asyncio.run(build_source(path, rows, dim, args.seed))
                print(f"built {path.name}: {rows:,} programs in "
                      f"{time.perf_counter() - started:.0f} s")
        large, small, embedded = (DatabaseURL.sqlite(path) for path, _, _ in sources.values())
        try:
            plan = [("SQLite -> SQLite", large, DatabaseURL.sqlite(base / "copy.db"))]
            if use_pg:
                pg_large = new_run()
                plan += [("SQLite -> PostgreSQL", large, pg_large),
                         ("PostgreSQL -> SQLite", pg_large, DatabaseURL.sqlite(base / "back.db"))]
                if args.small_rows:
                    plan.append(("SQLite -> PostgreSQL (small)", small, new_run()))
                if args.embedding_rows:
                    plan.append((f"SQLite -> PostgreSQL, {args.embedding_dim}-float embeddings",
                                 embedded, new_run()))
            for name, source, destination in plan:
                results.append(measure(name, source, destination, args.batch_size))
                print(f"  {name}: {results[-1].rate:,.0f} programs/s")
        finally:
            from genesis.database.backends.postgres_runs import drop_run_sync

            for run in runs:
                drop_run_sync(run)
    text = table(results)
    print(f"\n### genesis db copy, batch size {args.batch_size}\n\n{text}\n")
    path = save("copy", {"batch_size": args.batch_size,
                         "results": [{**vars(r), "rate": round(r.rate, 1)} for r in results]})
    print(f"results: {os.path.relpath(path)}")
    return {"results": results}


if __name__ == "__main__":
    main()
