"""Count the network round trips of engine calls, through ``benchmarks/latency_proxy.py``.

A round trip is a *flight*: a burst the client sends after the server last answered it on
that connection (see the proxy's docstring). Per-call counts need calls one at a time;
with concurrent tasks only the total per step is meaningful.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.common import evolution_step
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.steps import CONFIG, read_seed, write_proposals, write_seed
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program

T = TypeVar("T")
STEP_CALLS = ("sample_with_fix_mode", "compute_similarity", "add", "run_post_add_maintenance")


@dataclass
class Tally:
    """Flights counted per engine call, call by call."""

    proxy: LatencyProxy
    calls: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    async def count(self, name: str, call: Awaitable[T]) -> T:
        """Await ``call`` and note the flights it took under ``name``."""
        before = self.proxy.stats().flights
        result = await call
        self.calls[name].append(self.proxy.stats().flights - before)
        return result

    def mean(self, name: str) -> float:
        """Mean flights of one call."""
        values = self.calls[name]
        return sum(values) / len(values) if values else 0.0

    def summary(self) -> str:
        """One line: mean (max) flights per call."""
        return ", ".join(f"{name} {self.mean(name):.1f} (max {max(values)})"
                         for name, values in self.calls.items() if values)


def through(url: DatabaseURL, proxy: LatencyProxy) -> DatabaseURL:
    """The same run, reached through the proxy."""
    return replace(url, host=proxy.host, port=proxy.port)


def engine_config(url: DatabaseURL, **options: Any) -> DatabaseConfig:
    """The benchmark step's configuration on ``url``."""
    return DatabaseConfig(database_url=url.conninfo(), run_name=url.run,
                          **{"pool_max_size": 4, "seed": 5, **CONFIG, **options})


def write_inputs(folder: Path, programs: int = 60, proposals: int = 40) -> tuple[Path, Path]:
    """Write the seed run and the proposals of ``benchmarks/steps.py``; return their files."""
    seed, proposal_file = folder / "seed.jsonl", folder / "proposals.jsonl"
    write_seed(seed, programs)
    write_proposals(proposal_file, seed, proposals)
    return seed, proposal_file


async def seed_run(url: DatabaseURL, seed_file: Path) -> None:
    """Fill a fresh run with the seed programs (archive and best included)."""
    async with AsyncProgramDatabase(engine_config(url)) as db:
        await db.add_many([Program(**fields) for fields in read_seed(seed_file)])


async def step(db: AsyncProgramDatabase, rng: random.Random,
               proposals: Sequence[dict[str, Any]], tally: Tally | None = None) -> None:
    """One step of ``benchmarks/steps.py``, its calls tallied when ``tally`` is given."""
    await evolution_step(db, rng, proposals, tally.count if tally else None)


async def flights_per_step(db: AsyncProgramDatabase, proxy: LatencyProxy,
                           proposals: Sequence[dict[str, Any]], steps: int, tasks: int = 1,
                           warmup: int = 3) -> tuple[float, Tally | None]:
    """Run ``steps`` steps per task after a warm-up; return (flights per step, per-call tally).

    The tally is only kept with one task (calls one at a time).
    """
    rngs = [random.Random(17 + i) for i in range(tasks)]
    for _ in range(warmup):
        await asyncio.gather(*(step(db, rng, proposals) for rng in rngs))
    tally = Tally(proxy) if tasks == 1 else None
    proxy.reset()

    async def task(rng: random.Random) -> None:
        for _ in range(steps):
            await step(db, rng, proposals, tally)

    await asyncio.gather(*(task(rng) for rng in rngs))
    return proxy.stats().flights / (steps * tasks), tally
