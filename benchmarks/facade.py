"""Per-call overhead of the synchronous facade over awaiting the async API directly.

    python -m benchmarks.facade [--calls 3000]

The same calls run on the same SQLite run: ``await AsyncProgramDatabase.<method>()`` in an
event loop, then ``ProgramDatabase.<method>()`` from plain synchronous code (which hands
each call to the background loop and waits). The difference of the medians is the
facade's cost per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import machine, realistic_program, save
from genesis.database import AsyncProgramDatabase, DatabaseConfig, ProgramDatabase

METHODS = ("get", "get_best_program", "count")


def _args(method: str, program_id: str) -> tuple[Any, ...]:
    return (program_id,) if method == "get" else ()


async def time_async(config: DatabaseConfig, program_id: str, calls: int) -> dict[str, float]:
    """Median microseconds per awaited call, per method."""
    medians = {}
    async with AsyncProgramDatabase(config) as db:
        for method in METHODS:
            call = getattr(db, method)
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                await call(*_args(method, program_id))
                samples.append(time.perf_counter() - start)
            medians[method] = statistics.median(samples) * 1e6
    return medians


def time_sync(config: DatabaseConfig, program_id: str, calls: int) -> dict[str, float]:
    """Median microseconds per facade call, per method."""
    medians = {}
    db = ProgramDatabase(config)
    try:
        for method in METHODS:
            call: Callable[..., Any] = getattr(db, method)
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                call(*_args(method, program_id))
                samples.append(time.perf_counter() - start)
            medians[method] = statistics.median(samples) * 1e6
    finally:
        db.close()
    return medians


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    import random

    with tempfile.TemporaryDirectory(prefix="genesis-facade-") as folder:
        config = DatabaseConfig(db_path=str(Path(folder) / "run.db"))
        program = realistic_program(random.Random(1))
        program.correct = True
        seed_db = ProgramDatabase(config)
        seed_db.add(program)
        seed_db.close()
        direct = asyncio.run(time_async(config, program.id, args.calls))
        facade = time_sync(config, program.id, args.calls)
    lines = [f"machine: {machine()}", "",
             "| method | await async API p50 µs | sync facade p50 µs | overhead µs |",
             "|---|---:|---:|---:|"]
    for method in METHODS:
        lines.append(f"| {method} | {direct[method]:.0f} | {facade[method]:.0f} | "
                     f"{facade[method] - direct[method]:.0f} |")
    print("\n".join(lines))
    results = {"async_us": direct, "facade_us": facade,
               "overhead_us": {m: facade[m] - direct[m] for m in METHODS}}
    save("facade", results)
    return results


if __name__ == "__main__":
    main()
