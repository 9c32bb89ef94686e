"""Evolution-step throughput: Genesis on SQLite and PostgreSQL vs ShinkaEvolve 0.0.7.

    python -m benchmarks.workload                       # 1/4/16/64 workers, 15 s each
    python -m benchmarks.workload --quick               # 1 and 16 workers, 3 s each

Every configuration starts from the same seeded run (1,000 programs by default) and
performs the step of ``benchmarks/steps.py`` for a fixed time: sample a parent with
inspirations, take a pre-generated proposal (a real mutation with its 1,536-float
embedding, standing in for the LLM and embedding API calls), simulated evaluation, novelty
against the island, add with deferred maintenance, maintenance. Genesis workers are async
tasks spread over a few processes (the way a deployment runs them); ShinkaEvolve workers
are processes using its synchronous ProgramDatabase on one file (its multi-worker mode).
The ShinkaEvolve column needs ``benchmarks/setup_shinka.sh``; without it, it is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
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
from benchmarks.steps import read_seed, write_proposals, write_seed
from genesis.database import AsyncProgramDatabase, DatabaseURL, Program

ROOT = Path(__file__).resolve().parent.parent
SHINKA_PYTHON = ROOT / "benchmarks" / ".venv-shinka" / "bin" / "python"
LAYOUT = {1: (1, 1), 4: (2, 2), 16: (2, 8), 64: (4, 16)}  # workers: processes x tasks
PROPOSALS = 400  # pre-generated children replayed by both engines


async def _seed(url: str, seed_file: Path) -> None:
    async with AsyncProgramDatabase(step_config(DatabaseURL.parse(url))) as db:
        await db.add_many([Program(**fields) for fields in read_seed(seed_file)])


def _work(url: str, tasks: int, seconds: float, seed: int, proposal_file: Path) -> int:
    """One worker process: ``tasks`` tasks stepping until the deadline; returns steps."""
    proposals = read_seed(proposal_file)

    async def main() -> int:
        steps = 0
        async with AsyncProgramDatabase(step_config(DatabaseURL.parse(url))) as db:
            deadline = time.monotonic() + seconds

            async def task(index: int) -> None:
                nonlocal steps
                rng = random.Random(seed * 1000 + index)
                while time.monotonic() < deadline:
                    await evolution_step(db, rng, proposals)
                    steps += 1

            await asyncio.gather(*(task(i) for i in range(tasks)))
        return steps

    return asyncio.run(main())


def genesis_rate(url: str, workers: int, seconds: float, proposals: Path) -> float:
    """Steps per second of Genesis with ``workers`` workers on a seeded run.

    Each process steps for ``seconds`` once its database is open, so start-up (imports,
    connections) is not counted, for either engine.
    """
    processes, tasks = LAYOUT[workers]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        steps = sum(pool.starmap(_work, [(url, tasks, seconds, p, proposals)
                                         for p in range(processes)]))
    return steps / seconds


def shinka_rate(path: Path, workers: int, seconds: float, proposals: Path) -> float:
    """Steps per second of ShinkaEvolve with ``workers`` processes on a seeded file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([str(SHINKA_PYTHON), "-m", "benchmarks.shinka_runner", "work",
                               str(path), str(seconds), str(w), str(proposals)],
                              cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for w in range(workers)]
    steps = sum(int(p.communicate()[0].strip().splitlines()[-1]) for p in procs)
    return steps / seconds


def run(workers: Sequence[int], seconds: float, seed_programs: int,
        backends: Sequence[str]) -> list[dict[str, Any]]:
    """Measure every engine/backend and worker count; one record each."""
    records = []
    with tempfile.TemporaryDirectory(prefix="genesis-workload-") as name:
        folder = Path(name)
        seed_file, proposals = folder / "seed.jsonl", folder / "proposals.jsonl"
        write_seed(seed_file, seed_programs)
        write_proposals(proposals, seed_file, PROPOSALS)
        if "sqlite" in backends:
            template = folder / "genesis-seed.db"
            asyncio.run(_seed(f"sqlite:///{template}", seed_file))
            for count in workers:
                copy = folder / f"genesis-{count}.db"
                shutil.copyfile(template, copy)
                rate = genesis_rate(f"sqlite:///{copy}", count, seconds, proposals)
                records.append({"engine": "genesis", "backend": "sqlite", "workers": count,
                                "steps_per_s": rate})
                print(f"  genesis sqlite   {count:>2} workers: {rate:7.1f} steps/s", flush=True)
        if "postgres" in backends:
            for count in workers:
                base = DatabaseURL.parse(POSTGRES_URL).conninfo()
                run_name = f"bench_wl_{uuid.uuid4().hex[:8]}"
                url = f"{base}{'&' if '?' in base else '?'}run={run_name}"
                asyncio.run(_seed(url, seed_file))
                try:
                    rate = genesis_rate(url, count, seconds, proposals)
                finally:
                    from genesis.database.backends.postgres_runs import drop_run_sync

                    drop_run_sync(DatabaseURL.parse(url))
                records.append({"engine": "genesis", "backend": "postgres", "workers": count,
                                "steps_per_s": rate})
                print(f"  genesis postgres {count:>2} workers: {rate:7.1f} steps/s", flush=True)
        if "shinka" in backends:
            template = folder / "shinka-seed.sqlite"
            subprocess.run([str(SHINKA_PYTHON), "-m", "benchmarks.shinka_runner", "seed",
                            str(template), str(seed_file)], cwd=ROOT, check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for count in [w for w in workers if w <= 16]:
                copy = folder / f"shinka-{count}.sqlite"
                shutil.copyfile(template, copy)
                rate = shinka_rate(copy, count, seconds, proposals)
                records.append({"engine": "shinka", "backend": "sqlite", "workers": count,
                                "steps_per_s": rate})
                print(f"  shinka  sqlite   {count:>2} workers: {rate:7.1f} steps/s", flush=True)
    return records


def table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table: steps/s per worker count, with the ratio to ShinkaEvolve."""
    workers = sorted({r["workers"] for r in records})
    columns = [("genesis", "sqlite"), ("genesis", "postgres"), ("shinka", "sqlite")]
    present = [c for c in columns if any((r["engine"], r["backend"]) == c for r in records)]
    rate = {(r["engine"], r["backend"], r["workers"]): r["steps_per_s"] for r in records}
    head = ["workers", *[f"{e} {b} steps/s" for e, b in present]]
    if ("shinka", "sqlite") in present:
        head.append("genesis sqlite / shinka")
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for count in workers:
        cells = [str(count)] + [f"{rate[(e, b, count)]:.1f}" if (e, b, count) in rate else "-"
                                for e, b in present]
        if ("shinka", "sqlite") in present:
            ours, theirs = rate.get(("genesis", "sqlite", count)), rate.get(
                ("shinka", "sqlite", count))
            cells.append(f"{ours / theirs:.1f}x" if ours and theirs else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 64],
                        choices=sorted(LAYOUT))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--seed-programs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true",
                        help="1 and 16 workers, 3 s, 200 seeded programs")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.seconds, args.seed_programs = [1, 16], 3.0, 200
    backends = ["sqlite"]
    if postgres_reachable():
        backends.append("postgres")
    else:
        print(f"  postgres: not reachable at {DatabaseURL.parse(POSTGRES_URL)}, left out")
    if SHINKA_PYTHON.exists():
        backends.append("shinka")
    else:
        print("  ShinkaEvolve: benchmarks/.venv-shinka missing (run benchmarks/setup_shinka.sh)"
              ", column left out")
    print(f"machine: {machine()}; {args.seed_programs} seeded programs, {args.seconds:.0f} s "
          "per configuration", flush=True)
    records = run(args.workers, args.seconds, args.seed_programs, backends)
    print("\n" + table(records))
    save("workload", {"records": records, "seconds": args.seconds,
                      "seed_programs": args.seed_programs})
    return records


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
