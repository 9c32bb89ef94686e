"""Big runs: evolution calls and memory at 10k vs 1M programs, and sizes per million.

    python -m benchmarks.bigrun                          # 10k and 1M, both backends
    python -m benchmarks.bigrun --sizes 10000 100000 --backend postgres --draws 100

Each size gets a fresh run seeded fast (``benchmarks/bulk_seed.py``: binary COPY on
PostgreSQL, ``executemany`` on SQLite, into the schema the store created). Then a fresh
process opens the engine and times ``sample``, ``get_best_program``,
``get_top_programs(10)`` and ``add`` (a child of a sampled parent, maintenance included),
one call at a time, and reports its resident memory. The last table gives the table and
index sizes of the largest run, per million programs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bulk_seed import SeedShape, seed_programs
from benchmarks.common import (
    POSTGRES_URL,
    Runs,
    machine,
    peak_rss_mb,
    postgres_reachable,
    save,
    timed,
)
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database import create_store as open_store

OPTIONS: dict[str, Any] = dict(num_islands=2, archive_size=40, seed=11, pool_max_size=4)
_SHOWN_BYTES = 2**20  # per million programs: smaller relations are summed up in one line
CALLS = ("sample", "get_best_program", "get_top_programs(10)", "add")


def _rss_mb() -> float:
    """Current resident memory of this process in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(url: DatabaseURL, draws: int) -> dict[str, Any]:
    config = DatabaseConfig(**OPTIONS)
    rng = random.Random(3)
    async with AsyncProgramDatabase(config, store=open_store(url, config)) as db:

        async def add() -> None:
            parent = (await db.sample())[0]
            child = Program(id=f"added-{rng.getrandbits(64):016x}", parent_id=parent.id,
                            code=f"def solve(x):\n    return x[:{rng.randint(1, 9)}]\n",
                            generation=parent.generation + 1,
                            combined_score=rng.random() * 2.6, correct=rng.random() < 0.7,
                            public_metrics={"sum_radii": rng.random()}, complexity=0.25)
            start = time.perf_counter()
            await db.add(child)
            add_latencies.append((time.perf_counter() - start) * 1000)

        await timed(db.sample, 20)  # warm connections and caches
        figures = {
            "sample": await timed(db.sample, draws),
            "get_best_program": await timed(db.get_best_program, draws),
            "get_top_programs(10)": await timed(lambda: db.get_top_programs(10), draws),
        }
        add_latencies: list[float] = []
        await timed(add, max(20, draws // 2))
        figures["add"] = add_latencies
    return {"p50_ms": {name: statistics.median(values) for name, values in figures.items()},
            "rss_mb": _rss_mb(), "peak_rss_mb": peak_rss_mb()}


def _measure_here(url: DatabaseURL, draws: int) -> dict[str, Any]:
    return asyncio.run(_measure(url, draws))


def measure(url: DatabaseURL, draws: int) -> dict[str, Any]:
    """Time the calls in a fresh process, so its memory is the engine's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_here, (url, draws))


async def _postgres_sizes(url: DatabaseURL) -> dict[str, int]:
    config = DatabaseConfig(**OPTIONS)
    async with open_store(url, config) as store:
        stats = await store.stats()
    sizes = {f"table {name} (heap, TOAST, indexes)": info["total_bytes"]
             for name, info in stats["tables"].items()}
    sizes.update({f"index {name}": size for name, size in stats["indexes"].items()})
    sizes["heap of programs"] = stats["tables"]["programs"]["heap_bytes"]
    return sizes


def sizes(url: DatabaseURL) -> dict[str, int]:
    """Bytes per table (indexes and TOAST included) and per index; SQLite: the file too."""
    if url.is_postgres:
        return asyncio.run(_postgres_sizes(url))
    with sqlite3.connect(url.path) as conn:
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master"))
        found = {f"{kinds.get(name, 'table')} {name}": int(size) for name, size in conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")}
    found["file (everything)"] = sum(os.path.getsize(f"{url.path}{s}") for s in ("", "-wal")
                        if os.path.exists(f"{url.path}{s}"))
    return found


def run_backend(backend: str, sizes_wanted: Sequence[int], draws: int) -> list[dict[str, Any]]:
    """Seed and measure every size on one backend; the largest also gets its sizes."""
    records = []
    config = DatabaseConfig(**OPTIONS)
    with tempfile.TemporaryDirectory(prefix="genesis-bigrun-") as folder:
        runs = Runs(backend, Path(folder))
        try:
            for count in sizes_wanted:
                url = runs.new(f"big{count}")
                seconds = seed_programs(url, count, config)
                figures = measure(url, draws)
                record = {"backend": backend, "programs": count, "seed_s": seconds, **figures}
                if count == max(sizes_wanted):
                    record["bytes"] = sizes(url)
                records.append(record)
                p50 = figures["p50_ms"]
                print(f"  {backend:>8} {count:>9,}: seeded in {seconds:.0f} s "
                      f"({count / seconds:,.0f}/s); " + ", ".join(
                          f"{name} {p50[name]:.2f} ms" for name in CALLS)
                      + f"; RSS {figures['rss_mb']:.0f} MB", flush=True)
        finally:
            runs.drop()
    return records


def tables(records: Sequence[dict[str, Any]]) -> str:
    """Markdown tables: p50 per call and size, the ratio to the smallest, then sizes."""
    lines = ["| backend | programs | " + " | ".join(f"`{c}` p50 ms" for c in CALLS)
             + " | RSS MB | peak RSS MB | seeded/s |", "|---|---:|" + "---:|" * (len(CALLS) + 3)]
    for r in records:
        lines.append(f"| {r['backend']} | {r['programs']:,} | "
                     + " | ".join(f"{r['p50_ms'][c]:.2f}" for c in CALLS)
                     + f" | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
                       f"{r['programs'] / r['seed_s']:,.0f} |")
    lines += ["", "| backend | largest / smallest | " + " | ".join(f"`{c}`" for c in CALLS)
              + " | RSS |", "|---|---|" + "---:|" * (len(CALLS) + 1)]
    for backend in dict.fromkeys(r["backend"] for r in records):
        mine = sorted((r for r in records if r["backend"] == backend),
                      key=lambda r: r["programs"])
        if len(mine) < 2:
            continue
        small, big = mine[0], mine[-1]
        lines.append(f"| {backend} | {big['programs']:,} / {small['programs']:,} | "
                     + " | ".join(f"{big['p50_ms'][c] / small['p50_ms'][c]:.2f}x"
                                  for c in CALLS)
                     + f" | {big['rss_mb'] / small['rss_mb']:.2f}x |")
    lines.append("\n(target: every ratio within 1.5x)")
    for r in records:
        if "bytes" in r:
            per = 1_000_000 / r["programs"]
            lines += ["", f"{r['backend']}, {r['programs']:,} programs: MB per million programs",
                      "", "| relation | MB per 1M programs |", "|---|---:|"]
            shown = sorted(r["bytes"].items(), key=lambda item: -item[1])
            small = [size for _, size in shown if size * per < _SHOWN_BYTES]
            for name, size in shown:
                if size * per >= _SHOWN_BYTES:
                    lines.append(f"| {name} | {size * per / 2**20:,.1f} |")
            if small:
                lines.append(f"| {len(small)} smaller relations together | "
                             f"{sum(small) * per / 2**20:,.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and print its tables."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="10k and 100k, 60 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.draws = [10_000, 100_000], 60
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    if "postgres" in backends and not postgres_reachable():
        print(f"  postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, left out")
        backends.remove("postgres")
    print(f"machine: {machine()}; {SeedShape(OPTIONS['num_islands']).describe()}", flush=True)
    records = [r for backend in backends for r in run_backend(backend, args.sizes, args.draws)]
    print("\n" + tables(records))
    save("bigrun", {"records": records, "sizes": args.sizes, "draws": args.draws})
    return records


if __name__ == "__main__":
    main()
