"""``genesis view`` vs run size: page times and the database cost of a live update.

    python -m benchmarks.view                              # 1k, 100k, 1M programs, both backends
    python -m benchmarks.view --quick                      # 1k and 20k
    python -m benchmarks.view --sizes 1000 100000 --backend sqlite

Each size gets a fresh run seeded with ``add_many`` (binary COPY on PostgreSQL,
``executemany`` on SQLite) with realistic rows (~3 KB of code, metrics, metadata), a lineage
over two islands, a full archive and the tracked best program. The view then runs in this
process (uvicorn on a thread) and is measured over HTTP on loopback:

- first view: the first run page, which fills the view's in-memory score series (once per
  view process; every later page and update reads only newer rows);
- time to first byte and full download of the run page, the API's newest programs page and
  a keyset page from the middle of the run (medians); the browser's full render of the run
  page (navigation to the load event, in headless Chromium when available);
- one live update: a program is added from another connection while an event stream is
  open; the statements and rows the view read for it (change checks included) and the time
  until the page's event arrived; then the run page once more, its plot redrawn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    POSTGRES_URL,
    Runs,
    machine,
    postgres_reachable,
    realistic_program,
    save,
)
from genesis.database import DatabaseConfig, DatabaseURL, Program, create_store
from genesis.view import create_app
from genesis.view.server import serve_in_thread

BATCH = 5000
TEMPLATES = 200  # distinct realistic programs the seeded rows are cloned from
RATE = 20.0  # programs per second the seeded timestamps imply (the last ones are recent)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def seed(url: DatabaseURL, size: int, seed: int = 5) -> None:
    """Fill a run with ``size`` programs in a lineage over two islands, and its archive."""
    rng = random.Random(seed)
    templates = [realistic_program(rng) for _ in range(TEMPLATES)]
    now = time.time()
    async with create_store(url, DatabaseConfig(pool_max_size=2)) as store:
        recent: list[list[tuple[str, int]]] = [[], []]
        batch: list[Program] = []
        for index in range(size):
            island = index % 2
            pool = recent[island]
            parent = pool[-1 - int(rng.random() ** 3 * len(pool))] if pool else None
            template = templates[index % TEMPLATES]
            score = rng.random() * 1.5 + 1.1 * index / size
            program = replace(
                template, id=str(uuid.UUID(int=rng.getrandbits(128))),
                parent_id=parent[0] if parent else None, island_idx=island,
                generation=parent[1] + 1 if parent else 0, combined_score=score,
                correct=rng.random() < 0.7 or parent is None,
                timestamp=now - (size - index) / RATE,
                metadata={**template.metadata, "source_job_id": uuid.uuid4().hex})
            pool.append((program.id, program.generation))
            del pool[:-2000]
            batch.append(program)
            if len(batch) == BATCH or index == size - 1:
                await store.add_many(batch, count_children=True)
                batch = []
        async with store.write() as writer:
            best = await writer.top_programs(40, correct_only=True)
            await writer.archive_add([p.id for p in best])
            await writer.set_metadata("best_program_id", best[0].id)
        async with store.read() as session:
            if url.is_postgres:
                await session.conn.execute(  # type: ignore[attr-defined]
                    f"VACUUM ANALYZE {store.schema}.programs")  # type: ignore[attr-defined]


def _timed_get(client: httpx.Client, path: str) -> tuple[float, float]:
    """Milliseconds to the first byte and to the last byte of one GET."""
    start = time.perf_counter()
    with client.stream("GET", path) as response:
        first = time.perf_counter()
        response.read()
        end = time.perf_counter()
        response.raise_for_status()
    return (first - start) * 1000, (end - start) * 1000


def _medians(client: httpx.Client, path: str, repeats: int) -> dict[str, float]:
    times = [_timed_get(client, path) for _ in range(repeats)]
    return {"ttfb_ms": statistics.median(t[0] for t in times),
            "full_ms": statistics.median(t[1] for t in times)}


def _browser_load_ms(base: str, path: str, repeats: int) -> float | None:
    """Median time from navigation start to the load event in headless Chromium."""
    executable = os.environ.get("GENESIS_CHROMIUM") or shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if executable is None:
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        loads = []
        for _ in range(repeats):
            page.goto(f"{base}{path}", wait_until="load")
            loads.append(page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n.loadEventEnd - n.startTime; }"))
        browser.close()
    return statistics.median(loads)


async def _live_updates(base: str, url: DatabaseURL, app: Any, updates: int) -> dict[str, float]:
    """Add programs one at a time while an event stream is open; cost and delay of each."""
    run = app.state.catalog.open_runs()[0]
    async with create_store(url, DatabaseConfig(pool_max_size=2)) as store, \
            httpx.AsyncClient(base_url=base, timeout=30) as client, \
            client.stream("GET", f"/api/runs/{run.name}/events") as stream:
        lines = stream.aiter_lines()
        async def next_update(containing: str = "") -> str:
            """The next event's data line (the next one naming ``containing``)."""
            async for line in lines:
                if line.startswith("data: ") and containing in line:
                    return line
            raise RuntimeError("the event stream ended")

        await next_update()  # the state at connection time
        async with store.read() as reader:
            parent = await reader.best_program()
        assert parent is not None
        queries, rows, delays = [], [], []
        for index in range(updates):
            child = replace(parent, id=f"live-{uuid.uuid4().hex}", parent_id=parent.id,
                            generation=parent.generation + 1, timestamp=time.time(),
                            metadata={"update": index})
            before = (run.counter.queries, run.counter.rows)
            start = time.perf_counter()
            await store.add(child)
            await next_update(containing=child.id)
            delays.append((time.perf_counter() - start) * 1000)
            queries.append(run.counter.queries - before[0])
            rows.append(run.counter.rows - before[1])
    return {"queries": statistics.median(queries), "rows": statistics.median(rows),
            "delay_ms": statistics.median(delays)}


def measure(url: DatabaseURL, repeats: int, updates: int) -> dict[str, Any]:
    """Time the view of a seeded run."""
    app = create_app(url)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=600) as client:
        start = time.perf_counter()
        client.get("/", follow_redirects=True).raise_for_status()  # fills the score series
        first_view = time.perf_counter() - start
        run = app.state.catalog.open_runs()[0]
        page = f"/runs/{run.name}/"
        newest = client.get(f"/api/runs/{run.name}/programs", params={"limit": 1}).json()
        middle = newest["programs"][0]["seq"] // 2
        figures = {
            "first_view_s": first_view,
            "run_page": _medians(client, page, repeats),
            "api_newest": _medians(client, f"/api/runs/{run.name}/programs?limit=100", repeats),
            "api_middle": _medians(client, f"/api/runs/{run.name}/programs?limit=100"
                                           f"&before={middle}", repeats),
            "lineage": _medians(client, f"/runs/{run.name}/lineage", repeats),
            "page_bytes": len(client.get(page).content),
            "browser_load_ms": _browser_load_ms(base, page, max(3, repeats // 4)),
            "marks": len(run.series.plot().marks),
        }
        figures["update"] = asyncio.run(_live_updates(base, url, app, updates))
        figures["run_page_after_update_ms"] = _timed_get(client, page)[1]  # plot redrawn
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the view's figures per backend and size."""
    lines = ["| backend | programs | seed s | first view s | run page TTFB / full ms | "
             "run page after an update ms | browser render ms | API page TTFB / full ms | "
             "API middle page ms | lineage ms | update: queries / rows / delay ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        run, api, middle, lin, up = (r["run_page"], r["api_newest"], r["api_middle"],
                                     r["lineage"], r["update"])
        lines.append(
            f"| {r['backend']} | {r['programs']:,} | {r['seed_s']:.0f} | {r['first_view_s']:.2f} "
            f"| {_ms(run['ttfb_ms'])} / {_ms(run['full_ms'])} "
            f"| {_ms(r['run_page_after_update_ms'])} | {_ms(r['browser_load_ms'])} "
            f"| {_ms(api['ttfb_ms'])} / {_ms(api['full_ms'])} | {_ms(middle['full_ms'])} "
            f"| {_ms(lin['full_ms'])} | {up['queries']:.0f} / {up['rows']:.0f} / "
            f"{_ms(up['delay_ms'])} |")
    return "\n".join(lines)


def run_backend(backend: str, sizes: Sequence[int], repeats: int,
                updates: int) -> list[dict[str, Any]]:
    """Seed and measure every size on one backend."""
    records = []
    with tempfile.TemporaryDirectory(prefix="genesis-view-") as folder:
        runs = Runs(backend, Path(folder))
        try:
            for size in sizes:
                url = runs.new(f"v{size}")
                start = time.perf_counter()
                asyncio.run(seed(url, size))
                seeded = time.perf_counter() - start
                figures = measure(url, repeats, updates)
                records.append({"backend": backend, "programs": size, "seed_s": seeded,
                                **figures})
                print(f"  {backend} {size:>9,}: run page {figures['run_page']['full_ms']:.1f} ms, "
                      f"first view {figures['first_view_s']:.2f} s, update "
                      f"{figures['update']['rows']:.0f} rows (seeded in {seeded:.0f} s)",
                      flush=True)
                if url.is_sqlite:
                    for suffix in ("", "-wal", "-shm"):
                        Path(url.path + suffix).unlink(missing_ok=True)
        finally:
            runs.drop()
    return records


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20, help="requests per median (20)")
    parser.add_argument("--updates", type=int, default=5, help="live updates measured (5)")
    parser.add_argument("--quick", action="store_true", help="1k and 20k programs")
    args = parser.parse_args(argv)
    sizes = [1000, 20_000] if args.quick else args.sizes
    print(f"machine: {machine()}")
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    records: list[dict[str, Any]] = []
    for backend in backends:
        if backend == "postgres" and not postgres_reachable():
            print(f"  postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, skipped")
            continue
        records += run_backend(backend, sizes, args.repeats, args.updates)
    print("\n" + table(records))
    save("view", {"records": records})
    return records


if __name__ == "__main__":
    main()
