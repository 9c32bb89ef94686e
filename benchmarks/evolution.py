"""Evolution queries vs run size: sample, best, top-k, similarity, memory.

    python -m benchmarks.evolution                          # 1k, 10k, 100k on both backends
    python -m benchmarks.evolution --sizes 1000 10000 --backend sqlite --draws 200

Each size gets a fresh run filled the way an evolution run fills it (two islands, lineage,
70% correct, a full archive of 40, the tracked best program), then the engine's calls are
timed one at a time. Similarity is timed over 10,000 embeddings of 1,536 floats on one
island: cold (first call, reading every blob) and warm (a program added between calls).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    POSTGRES_URL,
    Runs,
    machine,
    peak_rss_mb,
    postgres_reachable,
    realistic_program,
    save,
    timed,
)
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.database.program import Program

OPTIONS: dict[str, Any] = dict(num_islands=2, archive_size=40, seed=11, pool_max_size=4)


async def populate(url: DatabaseURL, size: int, embedding_dim: int = 0,
                   islands: int = OPTIONS["num_islands"], seed: int = 3) -> None:
    """Fill a run with ``size`` programs shaped like an evolution run's, with its archive."""
    rng = random.Random(seed)
    config = DatabaseConfig(**OPTIONS)
    async with create_store(url, config) as store:
        roots = [realistic_program(rng, embedding_dim=embedding_dim, island=i)
                 for i in range(islands)]
        for root in roots:
            root.correct = True
        await store.add_many(roots)
        pool: list[list[Program]] = [[root] for root in roots]
        batch: list[Program] = []
        for index in range(size - len(roots)):
            island = index % len(pool)
            parent = pool[island][int(rng.random() ** 2 * len(pool[island]))]
            child = realistic_program(rng, embedding_dim=embedding_dim, parent=parent,
                                      generation=1 + index // 50)
            pool[island].insert(0, child)
            batch.append(child)
            if len(batch) == 2000:
                await store.add_many(batch)
                batch = []
        if batch:
            await store.add_many(batch)
        async with store.write() as writer:
            best = await writer.top_programs(OPTIONS["archive_size"], correct_only=True)
            await writer.archive_add([p.id for p in best])
            await writer.set_metadata("best_program_id", best[0].id)


def summary(latencies: Sequence[float]) -> dict[str, float]:
    """Median and p95 of latencies."""
    ordered = sorted(latencies)
    return {"p50": statistics.median(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))]}


def open_db(url: DatabaseURL) -> AsyncProgramDatabase:
    """An engine on ``url`` with the benchmark's options."""
    config = DatabaseConfig(**OPTIONS)
    return AsyncProgramDatabase(config, store=create_store(url, config))


async def measure_queries(url: DatabaseURL, draws: int) -> dict[str, Any]:
    """Time sample(), get_best_program() and get_top_programs(10) on a populated run."""
    async with open_db(url) as db:
        await timed(db.sample, 20)  # warm caches and connections
        return {
            "sample": summary(await timed(db.sample, draws)),
            "get_best_program": summary(await timed(db.get_best_program, draws)),
            "get_top_programs(10)": summary(await timed(lambda: db.get_top_programs(10),
                                                        draws)),
        }


async def measure_similarity(url: DatabaseURL, calls: int = 20) -> dict[str, Any]:
    """Cold and warm compute_similarity over an island of 1,536-float embeddings."""
    rng = random.Random(5)
    query = [rng.gauss(0, 1) for _ in range(1536)]
    async with open_db(url) as db:
        start = time.perf_counter()
        cold = await db.compute_similarity(query, 0)
        cold_ms = (time.perf_counter() - start) * 1000
        warm = []
        for _ in range(calls):
            parent = (await db.sample())[0]
            await db.add(realistic_program(rng, embedding_dim=1536, parent=parent,
                                           generation=parent.generation + 1))
            start = time.perf_counter()
            await db.compute_similarity(query, 0)
            warm.append((time.perf_counter() - start) * 1000)
    return {"embeddings": len(cold), "cold_ms": cold_ms, **{
        f"warm_{k}_ms": v for k, v in summary(warm).items()}}


def _in_fresh_process(measure: str, url: DatabaseURL, *args: Any) -> dict[str, Any]:
    """Run a measurement in this child process and add its peak memory."""
    figures = asyncio.run(globals()[measure](url, *args))
    return {**figures, "peak_rss_mb": peak_rss_mb()}


def isolated(measure: str, url: DatabaseURL, *args: Any) -> dict[str, Any]:
    """Run a measurement in a fresh process, so its peak memory is the engine's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_in_fresh_process, (measure, url, *args))


def run_backend(backend: str, sizes: Sequence[int], draws: int,
                similarity: bool) -> list[dict[str, Any]]:
    """Every size on one backend; returns one record per size (plus similarity)."""
    records = []
    with tempfile.TemporaryDirectory(prefix="genesis-evo-") as folder:
        runs = Runs(backend, Path(folder))
        try:
            for size in sizes:
                url = runs.new(f"n{size}")
                start = time.perf_counter()
                asyncio.run(populate(url, size))
                fill = time.perf_counter() - start
                figures = isolated("measure_queries", url, draws)
                records.append({"backend": backend, "programs": size, "fill_s": fill,
                                **figures})
                print(f"  {backend} {size:>7,}: sample p50 {figures['sample']['p50']:.2f} ms, "
                      f"best p50 {figures['get_best_program']['p50']:.2f} ms "
                      f"(filled in {fill:.0f} s)", flush=True)
            if similarity:
                url = runs.new("similarity")
                asyncio.run(populate(url, 10_000, embedding_dim=1536, islands=1))
                figures = isolated("measure_similarity", url)
                records.append({"backend": backend, "similarity": figures,
                                "peak_rss_mb": figures["peak_rss_mb"]})
        finally:
            runs.drop()
    return records


def table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the query latencies per backend and size."""
    lines = ["| backend | programs | sample p50 ms | sample p95 ms | get_best_program p50 ms "
             "| get_top_programs(10) p50 ms | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if "sample" not in r:
            continue
        lines.append(f"| {r['backend']} | {r['programs']:,} | {r['sample']['p50']:.2f} | "
                     f"{r['sample']['p95']:.2f} | {r['get_best_program']['p50']:.2f} | "
                     f"{r['get_top_programs(10)']['p50']:.2f} | {r['peak_rss_mb']:.0f} |")
    similarity = [r for r in records if "similarity" in r]
    if similarity:
        lines += ["", "| backend | embeddings | cold ms | warm p50 ms | warm p95 ms "
                      "| peak RSS MB |", "|---|---:|---:|---:|---:|---:|"]
        for r in similarity:
            s = r["similarity"]
            lines.append(f"| {r['backend']} | {s['embeddings']:,} x 1536 | {s['cold_ms']:.0f} "
                         f"| {s['warm_p50_ms']:.1f} | {s['warm_p95_ms']:.1f} "
                         f"| {s['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--no-similarity", action="store_true")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    records: list[dict[str, Any]] = []
    for backend in backends:
        if backend == "postgres" and not postgres_reachable():
            print(f"  postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, skipped")
            continue
        records += run_backend(backend, args.sizes, args.draws, not args.no_similarity)
    print("\n" + table(records))
    save("evolution", {"records": records})
    return records


if __name__ == "__main__":
    main()
