"""Helpers shared by the benchmark scripts: realistic records, timing, tables."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import resource
import statistics
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.steps import CONFIG, child_fields
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program

T = TypeVar("T")
RESULTS = Path(__file__).parent / "results"
POSTGRES_URL = os.environ.get("GENESIS_BENCH_DATABASE_URL") or os.environ.get(
    "GENESIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def realistic_program(
    rng: random.Random, *, embedding_dim: int = 0, parent: Program | None = None,
    generation: int = 0, island: int = 0,
) -> Program:
    """Return a program shaped like a real run's: ~3 KB code, 10 metrics, metadata."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
             for _ in range(40)]
    body = "\n".join(
        f"    {rng.choice(words)} = {rng.choice(words)}({rng.random():.6f}, "
        f"{rng.choice(words)})  # {' '.join(rng.choices(words, k=4))}"
        for _ in range(48)
    )
    code = f"def construct_packing():\n{body}\n    return centers, radii\n"
    score = rng.random() * 2.6
    return Program(
        id=str(uuid.UUID(int=rng.getrandbits(128))),
        code=code,
        parent_id=parent.id if parent else None,
        island_idx=parent.island_idx if parent else island,
        generation=generation,
        code_diff=f"--- a/main.py\n+++ b/main.py\n@@ -1,3 +1,3 @@\n-{words[0]}\n+{words[1]}\n",
        combined_score=score,
        correct=rng.random() < 0.7,
        public_metrics={f"metric_{i}": rng.random() for i in range(10)},
        private_metrics={"reported_sum_of_radii": score, "eval_seconds": rng.random()},
        text_feedback="All circles inside the unit square; no overlaps.",
        complexity=rng.random(),
        embedding=[rng.gauss(0.0, 0.05) for _ in range(embedding_dim)],
        metadata={
            "patch_type": rng.choice(["diff", "full", "cross"]),
            "patch_name": " ".join(rng.choices(words, k=3)),
            "model_name": "gpt-test",
            "api_costs": rng.random() / 100,
            "source_job_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "stdout_log": "\n".join(rng.choices(words, k=60)),
            "compute_time": rng.random() * 3,
        },
    )


@dataclass
class Row:
    """One line of a benchmark table."""

    name: str
    ops: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    note: str = ""
    versus_ceiling: bool = False

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds if self.seconds else float("inf")

    def percentile(self, q: float) -> float | None:
        """Latency percentile in milliseconds (None without latencies)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000

    def as_dict(self) -> dict[str, object]:
        """Return the row's figures for JSON output."""
        return {"name": self.name, "ops": self.ops, "seconds": round(self.seconds, 4),
                "ops_per_s": round(self.rate, 1), "p50_ms": self.percentile(0.5),
                "p95_ms": self.percentile(0.95), "p99_ms": self.percentile(0.99),
                "note": self.note}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def markdown_table(rows: Sequence[Row], ceiling: float | None = None) -> str:
    """Render rows as a markdown table with rate, percentiles and % of the ceiling rate."""
    lines = ["| scenario | ops | ops/s | p50 ms | p95 ms | p99 ms | % of ceiling | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        share = "-"
        if ceiling and row.versus_ceiling:
            share = f"{100 * row.rate / ceiling:.0f}%"
        lines.append(f"| {row.name} | {row.ops:,} | {_fmt(row.rate)} | "
                     f"{_fmt(row.percentile(0.5))} | {_fmt(row.percentile(0.95))} | "
                     f"{_fmt(row.percentile(0.99))} | {share} | {row.note} |")
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM, which exec resets on Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """A one-line description of the machine."""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def save(name: str, payload: dict[str, object]) -> Path:
    """Write a benchmark's results as JSON under benchmarks/results/."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    path.write_text(json.dumps(payload, indent=2))
    return path


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return statistics.median(values)


class Runs:
    """Fresh runs on one backend (temporary files, or PostgreSQL runs dropped after)."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self.created: list[DatabaseURL] = []

    def new(self, label: str) -> DatabaseURL:
        """A URL naming an empty run."""
        if self.backend == "sqlite":
            url = DatabaseURL.sqlite(self.folder / f"{label}.db")
        else:
            url = DatabaseURL.parse(POSTGRES_URL).with_run(
                f"bench_{label}_{uuid.uuid4().hex[:6]}")
        self.created.append(url)
        return url

    def drop(self) -> None:
        """Drop the PostgreSQL runs created."""
        if self.backend == "postgres":
            from genesis.database.backends.postgres_runs import drop_run_sync

            for url in self.created:
                drop_run_sync(url)


def postgres_reachable() -> bool:
    """True if the benchmark PostgreSQL server answers."""
    try:
        import psycopg

        with psycopg.connect(DatabaseURL.parse(POSTGRES_URL).conninfo(), connect_timeout=3):
            return True
    except Exception:
        return False


def step_config(url: DatabaseURL, **options: Any) -> DatabaseConfig:
    """The evolution step's configuration (``benchmarks/steps.py``) for the run at ``url``."""
    where: dict[str, Any] = {"db_path": url.path} if url.is_sqlite else {
        "database_url": url.conninfo(), "run_name": url.run}
    return DatabaseConfig(**where, **{"pool_max_size": 8, **CONFIG, **options})


async def evolution_step(db: AsyncProgramDatabase, rng: random.Random,
                         proposals: Sequence[dict[str, Any]],
                         observe: Callable[[str, Awaitable[Any]], Awaitable[Any]] | None = None
                         ) -> None:
    """One evolution step of ``benchmarks/steps.py``: sample, novelty check, add, maintenance.

    ``observe(name, awaitable)``, when given, awaits each engine call (to count or time it).
    """
    async def call(name: str, awaitable: Awaitable[T]) -> T:
        return await (observe(name, awaitable) if observe else awaitable)

    parent, inspirations, top_k, _ = await call("sample_with_fix_mode",
                                                db.sample_with_fix_mode())
    child = Program(**child_fields(parent, [*inspirations, *top_k], rng,
                                   rng.choice(proposals)))
    await call("compute_similarity", db.compute_similarity(child.embedding, parent.island_idx))
    await call("add", db.add(child, defer_maintenance=True))
    await call("run_post_add_maintenance", db.run_post_add_maintenance(child))


async def timed(call: Callable[[], Awaitable[object]], draws: int) -> list[float]:
    """Latencies in milliseconds of ``draws`` sequential calls."""
    latencies = []
    for _ in range(draws):
        start = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies
