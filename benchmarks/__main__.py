"""Run every benchmark of the project; write a markdown report and a chart.

    python -m benchmarks              # everything, full sizes (about an hour)
    python -m benchmarks --quick      # everything, small sizes (a few minutes)

Each benchmark prints its own tables (SQLite always, PostgreSQL when reachable,
ShinkaEvolve when ``benchmarks/setup_shinka.sh`` has been run); they are collected into
``benchmarks/results/report.md``, and ``benchmarks/results/chart.png`` plots the
evolution-step throughput and the ``sample`` latency against run size.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from benchmarks.common import RESULTS, machine

# (title, module, full arguments, quick arguments)
SUITE: list[tuple[str, str, list[str], list[str]]] = [
    ("Storage primitives vs the raw driver", "benchmarks.storage", [],
     ["--rows", "1000", "--sequential-rows", "200", "--embedding-dim", "0"]),
    ("Evolution queries vs run size", "benchmarks.evolution", [],
     ["--sizes", "1000", "5000", "--draws", "60", "--no-similarity"]),
    ("Sync facade overhead", "benchmarks.facade", [], ["--calls", "500"]),
    ("Copy throughput", "benchmarks.copy_run", [],
     ["--rows", "3000", "--small-rows", "1000", "--embedding-rows", "300"]),
    ("Evolution-step throughput vs ShinkaEvolve", "benchmarks.workload", [], ["--quick"]),
    ("The view vs run size", "benchmarks.view", [], ["--quick"]),
    ("PostgreSQL at scale: workers and network round trips", "benchmarks.scaling", [],
     ["--quick"]),
    ("Big runs: 10k vs 1M programs", "benchmarks.bigrun", [], ["--quick"]),
    ("Failover and reads on a standby", "benchmarks.failover", [], ["--steps", "150"]),
    ("Asking a run questions: search, filters, lineage, export", "benchmarks.search", [],
     ["--programs", "10000"]),
]
# ShinkaEvolve 0.0.7's sample() latency measured on this machine (DESIGN.md).
SHINKA_SAMPLE_MS = {1000: 29.0, 10_000: 214.0}


class _Tee(io.StringIO):
    """Keep a copy of everything written while still showing it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(text)
        self._stream.flush()
        return super().write(text)


def run(title: str, module: str, args: list[str]) -> str:
    """Run one benchmark's main() and return what it printed."""
    print(f"\n## {title}\n\n$ python -m {module} {' '.join(args)}".rstrip(), flush=True)
    tee = _Tee(sys.stdout)
    start = time.monotonic()
    with contextlib.redirect_stdout(tee):
        importlib.import_module(module).main(args)
    seconds = time.monotonic() - start
    return (f"## {title}\n\n`python -m {module} {' '.join(args)}`".replace(" `", "`")
            + f" ({seconds:.0f} s)\n\n{tee.getvalue().strip()}\n")


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def chart() -> str | None:
    """Plot throughput and sample latency from the saved results; return the PNG's path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    workload, evolution = _load("workload"), _load("evolution")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {("genesis", "sqlite"): "Genesis, SQLite", ("genesis", "postgres"):
              "Genesis, PostgreSQL", ("shinka", "sqlite"): "ShinkaEvolve 0.0.7, SQLite"}
    for (engine, backend), label in styles.items():
        points = sorted((r["workers"], r["steps_per_s"]) for r in workload.get("records", [])
                        if (r["engine"], r["backend"]) == (engine, backend))
        if points:
            left.plot(*zip(*points, strict=True), marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="workers", ylabel="evolution steps / s",
             title="Evolution-step throughput")
    left.legend()
    for backend in ("sqlite", "postgres"):
        points = sorted((r["programs"], r["sample"]["p50"]) for r in evolution.get("records", [])
                        if r.get("backend") == backend and "sample" in r)
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=f"Genesis, {backend}")
    right.plot(list(SHINKA_SAMPLE_MS), list(SHINKA_SAMPLE_MS.values()), marker="s",
               linestyle="--", label="ShinkaEvolve 0.0.7 (measured separately)")
    right.set(xscale="log", yscale="log", xlabel="programs in the run",
              ylabel="sample() median, ms", title="sample() latency vs run size")
    right.legend()
    figure.suptitle(machine(), fontsize=9)
    figure.tight_layout()
    path = RESULTS / "chart.png"
    figure.savefig(path, dpi=110)
    return str(path)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the suite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    args = parser.parse_args(argv)
    started = time.monotonic()
    sections = [run(title, module, quick if args.quick else full)
                for title, module, full, quick in SUITE]
    png = chart()
    mode = "quick" if args.quick else "full"
    header = (f"# Genesis benchmarks ({mode})\n\nMachine: {machine()}. "
              f"Produced by `python -m benchmarks{' --quick' if args.quick else ''}` "
              f"in {time.monotonic() - started:.0f} s on {time.strftime('%Y-%m-%d')}.\n")
    if png:
        header += "\n![benchmarks](chart.png)\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.md").write_text(header + "\n" + "\n".join(sections))
    print(f"\nreport: {RESULTS / 'report.md'}" + (f", chart: {png}" if png else ""))


if __name__ == "__main__":
    main()
