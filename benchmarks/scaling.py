"""PostgreSQL at scale: evolution steps vs workers and network round-trip time.

    python -m benchmarks.scaling                  # 1/4/16/64/256 workers; RTT 0, 1, 5 ms
    python -m benchmarks.scaling --quick          # 1 and 16 workers, 3 s, 200 programs
    python -m benchmarks.scaling --workers 64 --rtt-ms 0 5 --seconds 10

Every configuration starts from the same seeded run (``benchmarks/steps.py``) and runs the
step of ``benchmarks/steps.py`` (``sample_with_fix_mode``, ``compute_similarity``,
``add(defer_maintenance=True)``, ``run_post_add_maintenance``) for a fixed time. Workers are
async tasks spread over up to 4 processes, each with its own engine and pool, as separate
machines would be. PostgreSQL runs directly and through ``benchmarks/latency_proxy.py``
(a separate process) at each RTT; SQLite at the same worker counts is the reference.

By default everything shares this machine's CPUs: the server's backends compete with the
workers. ``--server-cpus 1`` lays the run out as a database host and a worker host would be:
a PostgreSQL server of the benchmark's own (``initdb`` in a temporary folder; ``fsync`` on and
128 MB of shared buffers, as on the shared one) runs pinned to CPU 1, with the latency
proxies (so the network's CPU stays off the workers' core); the workers of every column,
SQLite's included, run on the remaining CPUs. Its results go to
``benchmarks/results/scaling_server_cpus.json``.

``--repeats N`` sweeps every configuration N times, one whole sweep after the other, so that
a slow stretch of the machine falls on every worker count alike; the tables give each
configuration's median (steps/s, round trips and CPU, each its own median) and the steps/s
of every sweep.

For each configuration: steps/s, round trips per step (flights the proxy counted / steps;
the direct column repeats the 0 ms count), client CPU ms per step (user + system time of
the worker processes while stepping) and server CPU ms per step (the run's backends, from
``/proc``; see ``benchmarks/server_cpu.py``). Counters cover the stepping window only:
opening, warm-up and closing are outside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import (
    POSTGRES_URL,
    evolution_step,
    machine,
    postgres_reachable,
    save,
    step_config,
)
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.replication import Replication, server_binaries
from benchmarks.server_cpu import ServerCPU
from benchmarks.steps import read_seed, write_proposals, write_seed
from genesis.database import AsyncProgramDatabase, DatabaseURL, Program

WORKERS = (1, 4, 16, 64, 256)
RTTS = (0.0, 1.0, 5.0)
MAX_PROCESSES = 4
PROPOSALS = 400
WARMUP_STEPS = 2  # per task, before counting: connections, similarity caches
# The server of --server-cpus: fsync on and 128 MB, as on the shared server (Replication's
# own settings turn fsync off).
OWN_SERVER_SETTINGS = "fsync = on\nshared_buffers = '128MB'\nmax_connections = 200\n"


def layout(workers: int, max_processes: int = MAX_PROCESSES) -> tuple[int, int]:
    """Return (processes, tasks per process) for a worker count."""
    processes = max(1, min(max_processes, workers))
    return processes, max(1, workers // processes)


@dataclass(frozen=True)
class Column:
    """Where the workers' database is: SQLite, PostgreSQL directly, or through the proxy."""

    backend: str
    rtt_ms: float | None = None  # None: no proxy

    @property
    def label(self) -> str:
        """The column's name in the tables."""
        if self.backend == "sqlite":
            return "SQLite"
        return "PG direct" if self.rtt_ms is None else f"PG {self.rtt_ms:g} ms"


@dataclass
class Outcome:
    """What one worker process measured while stepping."""

    steps: int
    cpu_seconds: float
    latencies: list[float]


def _worker(url: DatabaseURL, tasks: int, seconds: float, seed: int, proposal_file: Path,
            pool_max_size: int, ready: Any, go: Any, results: Any, release: Any) -> None:
    """One worker process: open, warm up, step between the parent's signals, report, close."""
    proposals = read_seed(proposal_file)

    async def main() -> None:
        async with AsyncProgramDatabase(step_config(url, pool_max_size=pool_max_size)) as db:
            rngs = [random.Random(seed * 1000 + i) for i in range(tasks)]
            for _ in range(WARMUP_STEPS):
                await asyncio.gather(*(evolution_step(db, rng, proposals) for rng in rngs))
            await asyncio.to_thread(ready.wait)
            await asyncio.to_thread(go.wait)
            latencies: list[float] = []
            before = os.times()
            deadline = time.monotonic() + seconds

            async def task(rng: random.Random) -> None:
                while time.monotonic() < deadline:
                    start = time.perf_counter()
                    await evolution_step(db, rng, proposals)
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(task(rng) for rng in rngs))
            after = os.times()
            cpu = (after.user - before.user) + (after.system - before.system)
            results.put(Outcome(len(latencies), cpu, latencies))
            await asyncio.to_thread(release.wait)  # closing is not part of the window

    try:
        asyncio.run(main())
    except BaseException as exc:
        ready.abort()  # the parent stops waiting, and learns why from the queue
        results.put(f"worker {seed} failed: {type(exc).__name__}: {exc}")
        raise


async def _seed(url: DatabaseURL, seed_file: Path) -> None:
    async with AsyncProgramDatabase(step_config(url, pool_max_size=4)) as db:
        await db.add_many([Program(**fields) for fields in read_seed(seed_file)])


class Bench:
    """The seeded inputs and the proxies of one benchmark run."""

    def __init__(self, folder: Path, seed_programs: int, seconds: float, pool_max_size: int,
                 proxies: dict[float, LatencyProxy], server: DatabaseURL) -> None:
        self.folder = folder
        self.server = server
        self.seconds = seconds
        self.pool_max_size = pool_max_size
        self.proxies = proxies
        self.seed_file = folder / "seed.jsonl"
        self.proposals = folder / "proposals.jsonl"
        write_seed(self.seed_file, seed_programs)
        write_proposals(self.proposals, self.seed_file, PROPOSALS)
        self._sqlite_template: Path | None = None

    @contextlib.contextmanager
    def fresh_run(self, column: Column, label: str) -> Iterator[DatabaseURL]:
        """A freshly seeded run for one configuration, dropped afterwards."""
        if column.backend == "sqlite":
            if self._sqlite_template is None:
                self._sqlite_template = self.folder / "template.db"
                asyncio.run(_seed(DatabaseURL.sqlite(self._sqlite_template), self.seed_file))
            path = self.folder / f"{label}.db"
            shutil.copyfile(self._sqlite_template, path)
            try:
                yield DatabaseURL.sqlite(path)
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        from genesis.database.backends.postgres_runs import drop_run_sync

        url = self.server.with_run(f"bench_sc_{uuid.uuid4().hex[:8]}")
        asyncio.run(_seed(url, self.seed_file))
        try:
            yield url
        finally:
            drop_run_sync(url)

    def measure(self, column: Column, workers: int) -> dict[str, Any]:
        """Run one configuration; return its record."""
        processes, tasks = layout(workers)
        proxy = self.proxies.get(column.rtt_ms) if column.rtt_ms is not None else None
        with self.fresh_run(column, f"{column.backend}-{workers}") as url:
            target = url if proxy is None else replace(url, host=proxy.host, port=proxy.port)
            server = None
            if url.is_postgres:
                server = ServerCPU(url.conninfo(), f"genesis/{url.run}")
            record = self._run_workers(target, processes, tasks, proxy, server)
        return {"column": column.label, "backend": column.backend, "rtt_ms": column.rtt_ms,
                "workers": processes * tasks, "processes": processes, **record}

    def _run_workers(self, url: DatabaseURL, processes: int, tasks: int,
                     proxy: LatencyProxy | None, server: ServerCPU | None) -> dict[str, Any]:
        context = multiprocessing.get_context("spawn")
        ready, go, release = context.Barrier(processes + 1), context.Event(), context.Event()
        results = context.Queue()
        procs = [context.Process(target=_worker, args=(
            url, tasks, self.seconds, p + 1, self.proposals, self.pool_max_size, ready, go,
            results, release)) for p in range(processes)]
        for proc in procs:
            proc.start()
        try:
            try:
                ready.wait(timeout=600)
            except threading.BrokenBarrierError:
                raise RuntimeError(results.get(timeout=10)) from None
            if proxy is not None:
                proxy.reset()
            if server is not None:
                server.start()
            started = time.perf_counter()
            go.set()
            outcomes = [results.get(timeout=self.seconds + 600) for _ in procs]
            failures = [o for o in outcomes if not isinstance(o, Outcome)]
            if failures:
                raise RuntimeError("; ".join(map(str, failures)))
            elapsed = time.perf_counter() - started
            flights = proxy.stats().flights if proxy is not None else None
            server_seconds = server.stop() if server is not None else None
        finally:
            release.set()
            for proc in procs:
                proc.join(60)
                if proc.is_alive():
                    proc.terminate()
        steps = sum(o.steps for o in outcomes)
        latencies = [x for o in outcomes for x in o.latencies]
        per_step = 1000 / steps if steps else float("nan")
        return {
            "steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed,
            "round_trips_per_step": flights / steps if flights is not None and steps else None,
            "client_cpu_ms_per_step": sum(o.cpu_seconds for o in outcomes) * per_step,
            "server_cpu_ms_per_step": server_seconds * per_step
            if server_seconds is not None else None,
            "step_p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        }


def run(workers: Sequence[int], rtts: Sequence[float], seconds: float, seed_programs: int,
        backends: Sequence[str], pool_max_size: int = 8, server: DatabaseURL | None = None,
        proxy_cpus: set[int] | None = None, repeats: int = 1) -> list[dict[str, Any]]:
    """Measure every column at every worker count (interleaved, so noise hits all alike).

    ``server``: the PostgreSQL to use (the shared one by default); ``proxy_cpus``: the CPUs
    the latency proxies run on (all by default); ``repeats``: whole sweeps, one after the
    other (each record says which).
    """
    columns = [Column("sqlite")] if "sqlite" in backends else []
    if "postgres" in backends:
        columns += [Column("postgres"), *(Column("postgres", rtt) for rtt in rtts)]
    target = server or DatabaseURL.parse(POSTGRES_URL)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="genesis-scaling-") as name, \
            contextlib.ExitStack() as stack:
        proxies = {rtt: stack.enter_context(LatencyProxy(
            (target.host or "127.0.0.1", target.port or 5432), rtt))
            for rtt in (rtts if "postgres" in backends else ())}
        for proxy in proxies.values():
            if proxy_cpus and proxy.pid is not None:
                os.sched_setaffinity(proxy.pid, proxy_cpus)
        bench = Bench(Path(name), seed_programs, seconds, pool_max_size, proxies, target)
        for repeat, count, column in itertools.product(range(repeats), workers, columns):
            record = {**bench.measure(column, count), "repeat": repeat}
            records.append(record)
            print(f"  {column.label:>10} {count:>3} workers"
                  f"{f' (sweep {repeat + 1})' if repeats > 1 else ''}: "
                  f"{record['steps_per_s']:7.1f} steps/s, "
                  f"{_cell(record['round_trips_per_step'])} round trips/step, "
                  f"client {_cell(record['client_cpu_ms_per_step'])} ms, "
                  f"server {_cell(record['server_cpu_ms_per_step'])} ms CPU/step",
                  flush=True)
    fill_direct_round_trips(records)
    return records


def fill_direct_round_trips(records: list[dict[str, Any]]) -> None:
    """The direct column's round trips are the 0 ms proxy's count at the same workers, in
    the same sweep."""
    zero = {(r["workers"], r["repeat"]): r["round_trips_per_step"] for r in records
            if r["backend"] == "postgres" and r["rtt_ms"] == 0}
    for record in records:
        if record["backend"] == "postgres" and record["rtt_ms"] is None:
            record["round_trips_per_step"] = zero.get((record["workers"], record["repeat"]))
            record["round_trips_from"] = "PG 0 ms"


_FIGURES = ("steps_per_s", "round_trips_per_step", "client_cpu_ms_per_step",
            "server_cpu_ms_per_step", "step_p50_ms")


def medians(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per configuration: each figure's median over the sweeps, and every
    sweep's steps/s (``sweeps``)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["column"], record["workers"]), []).append(record)
    summary = []
    for group in groups.values():
        merged = {**group[0], "sweeps": [r["steps_per_s"] for r in group]}
        for figure in _FIGURES:
            values = [r[figure] for r in group if r[figure] is not None]
            merged[figure] = statistics.median(values) if values else None
        merged.pop("repeat", None)
        summary.append(merged)
    return summary


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def tables(records: Sequence[dict[str, Any]]) -> str:
    """Markdown tables: steps/s by workers and column, then every figure per configuration."""
    columns = list(dict.fromkeys(r["column"] for r in records))
    workers = sorted({r["workers"] for r in records})
    by = {(r["column"], r["workers"]): r for r in records}
    lines = ["| workers | " + " | ".join(f"{c} steps/s" for c in columns) + " |",
             "|---:|" + "---:|" * len(columns)]
    for count in workers:
        cells = [_cell(by[(c, count)]["steps_per_s"]) if (c, count) in by else "-"
                 for c in columns]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    lines += ["", "| column | workers | processes | steps/s | round trips/step | client CPU "
              "ms/step | server CPU ms/step | step p50 ms | steps/s of each sweep |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in records:
        note = " (0 ms count)" if r.get("round_trips_from") else ""
        sweeps = ", ".join(map(_cell, r["sweeps"]))
        lines.append(f"| {r['column']} | {r['workers']} | {r['processes']} | "
                     f"{_cell(r['steps_per_s'])} | {_cell(r['round_trips_per_step'])}{note} | "
                     f"{_cell(r['client_cpu_ms_per_step'], 2)} | "
                     f"{_cell(r['server_cpu_ms_per_step'], 2)} | {_cell(r['step_p50_ms'])} | "
                     f"{sweeps} |")
    return "\n".join([*lines, "", *targets(records)])


def targets(records: Sequence[dict[str, Any]]) -> list[str]:
    """Lines stating the issue's targets against these figures."""
    rate = {(r["column"], r["workers"]): r["steps_per_s"] for r in records}
    lines = []
    trips = [r["round_trips_per_step"] for r in records
             if r["backend"] == "postgres" and r["rtt_ms"] is not None]
    if trips:
        lines.append(f"- round trips per step: {min(trips):.1f} to {max(trips):.1f} "
                     "(target <= 4)")
    slow, fast = rate.get(("PG 5 ms", 64)), rate.get(("PG 0 ms", 64))
    if slow and fast:
        lines.append(f"- 64 workers at 5 ms / at 0 ms: {100 * slow / fast:.0f}% (target >= 75%)")
    for column in ("PG direct", "PG 5 ms"):
        series = [rate[(column, w)] for w in sorted({r["workers"] for r in records})
                  if (column, w) in rate]
        if len(series) > 1:
            ratios = ", ".join(f"{b / a:.2f}x" for a, b in itertools.pairwise(series))
            monotone = all(b >= a for a, b in itertools.pairwise(series))
            lines.append(f"- {column} steps/s from each worker count to the next: {ratios} "
                         f"({'monotone' if monotone else 'NOT monotone'}; target monotone)")
    pg, lite = rate.get(("PG direct", 64)), rate.get(("SQLite", 64))
    if pg and lite:
        lines.append(f"- PG direct / SQLite at 64 workers: {pg / lite:.2f}x (target >= 0.8x)")
    return lines


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    parser.add_argument("--rtt-ms", type=float, nargs="*", default=list(RTTS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed-programs", type=int, default=1000)
    parser.add_argument("--pool-max-size", type=int, default=8, help="per process")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--quick", action="store_true",
                        help="1 and 16 workers, 3 s each, 200 seeded programs")
    parser.add_argument("--repeats", type=int, default=1,
                        help="whole sweeps, one after the other; the tables give medians")
    parser.add_argument("--server-cpus", type=int, nargs="+", metavar="CPU",
                        help="run a PostgreSQL server of its own on these CPUs, and the "
                             "workers of every column on the others")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1, got {args.repeats}")
    if args.quick:
        args.workers, args.seconds, args.seed_programs = [1, 16], 3.0, 200
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    with contextlib.ExitStack() as stack:
        server, layout_note = None, "the server shares every CPU with the workers"
        server_cpus: set[int] = set()
        if args.server_cpus:
            server_cpus, worker_cpus = split_cpus(args.server_cpus)
            if "postgres" in backends:
                server = stack.enter_context(own_server(server_cpus))
            os.sched_setaffinity(0, worker_cpus)  # the spawned workers inherit it
            layout_note = (f"server and proxies on CPU {_cpus(server_cpus)}, workers on "
                           f"CPU {_cpus(worker_cpus)}")
        elif "postgres" in backends and not postgres_reachable():
            print(f"  postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, left out")
            backends.remove("postgres")
        print(f"machine: {machine()}; {args.seed_programs} seeded programs, {args.seconds:g} s "
              f"per configuration, up to {MAX_PROCESSES} processes; {layout_note}", flush=True)
        records = run(args.workers, args.rtt_ms, args.seconds, args.seed_programs, backends,
                      args.pool_max_size, server, server_cpus, args.repeats)
    summary = medians(records)
    print("\n" + tables(summary))
    save("scaling_server_cpus" if args.server_cpus else "scaling",
         {"records": summary, "sweeps": records, "seconds": args.seconds,
          "seed_programs": args.seed_programs, "repeats": args.repeats,
          "layout": layout_note})
    return summary


def _cpus(cpus: set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def split_cpus(server: Sequence[int]) -> tuple[set[int], set[int]]:
    """The server's CPUs and the workers' (the rest of this process's), checked."""
    available, wanted = os.sched_getaffinity(0), set(server)
    if not wanted <= available:
        raise SystemExit(f"--server-cpus: CPU {_cpus(wanted - available)} is not one this "
                         f"process may use ({_cpus(available)})")
    if not available - wanted:
        raise SystemExit(f"--server-cpus: {_cpus(wanted)} leaves no CPU for the workers")
    return wanted, available - wanted


@contextlib.contextmanager
def own_server(cpus: set[int]) -> Iterator[DatabaseURL]:
    """A PostgreSQL server of the benchmark's own, pinned to ``cpus``, removed afterwards."""
    binaries = server_binaries()
    if binaries is None:
        raise SystemExit("--server-cpus: the PostgreSQL server binaries (initdb, pg_ctl) "
                         "are missing")
    server = Replication(binaries, synchronous=False, standby=False, cpus=cpus,
                         settings=OWN_SERVER_SETTINGS).start()
    try:
        yield server.primary_url()
    finally:
        server.close()


if __name__ == "__main__":
    main()
