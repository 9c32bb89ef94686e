"""``genesis demo``: evolve circle-packing programs for about a minute, no LLM needed."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import sys

from genesis.cli.progress import Progress
from genesis.cli.view import view_command
from genesis.database import AsyncProgramDatabase, DatabaseConfig
from genesis.database.display import format_summary
from genesis.workload import Evaluator, ProgrammaticMutator
from genesis.workload.loop import LoopReport, LoopSettings, evolve

__all__ = ["register", "run_demo"]

EXAMPLES = """\
examples:
  genesis demo                                 # ./genesis_data/evolution.db, about a minute
  genesis demo --programs 2000 --seconds 300   # a longer run; rerun to continue it
  DATABASE_URL=postgresql://genesis:pw@localhost:5432/genesis genesis demo --run demo_2
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    parser = commands.add_parser(
        "demo", aliases=["evolve"], help="run the reference evolution loop (no LLM needed)",
        description="Evolve Python programs that pack 26 circles in the unit square, with "
                    "programmatic mutations instead of an LLM. Uses DATABASE_URL when set, "
                    "else embedded SQLite; rerunning continues the same run.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else "
                                      "$GENESIS_DATA_DIR/evolution.db)")
    parser.add_argument("--run", help="run name on PostgreSQL (default: GENESIS_RUN or "
                                      "'default')")
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers (4)")
    parser.add_argument("--programs", type=int, default=3000,
                        help="stop after this many new programs (3000)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="stop after this many seconds (60)")
    parser.add_argument("--eval-workers", type=int, default=2,
                        help="evaluation processes (2)")
    parser.add_argument("--islands", type=int, default=2, help="number of islands (2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(handler=lambda args: asyncio.run(run_demo(args)))


def _progress_note(progress: Progress, report: LoopReport) -> None:
    progress.done = report.added
    best = "-" if report.best_score is None else f"{report.best_score:.4f}"
    progress.note(generation=report.last_generation, correct=report.correct, best=best)


async def run_demo(args: argparse.Namespace) -> int:
    """Run the loop with a live progress line, then print the run's summary."""
    config = DatabaseConfig(database_url=args.url, run_name=args.run, num_islands=args.islands,
                            migration_interval=10, migration_rate=0.1, seed=args.seed)
    settings = LoopSettings(workers=args.workers, max_programs=args.programs,
                            max_seconds=args.seconds, seed=args.seed)
    stream = io.StringIO() if args.quiet else sys.stderr
    async with AsyncProgramDatabase(config) as db, Evaluator(workers=args.eval_workers) as ev:
        print(f"evolving into {db.url}: {db.store.describe()}", file=stream)
        with Progress("evolving", total=args.programs, unit="programs", stream=stream,
                      seconds=args.seconds) as progress:
            report = await evolve(db, ProgrammaticMutator(), ev, settings,
                                  on_step=lambda r: _progress_note(progress, r))
        summary = await db.summary()
        best = await db.get_best_program()
    print(f"\nadded {report.added} programs in {report.seconds:.1f} s "
          f"({report.rate:.1f} programs/s), generations {report.first_generation}-"
          f"{report.last_generation}; initial score {report.initial_score or 0:.4f}, "
          f"best {summary['best']['score'] if summary['best'] else 0:.4f}\n")
    print(format_summary(summary))
    if best is not None:
        print(f"\nbest program ({best.id}, score {best.combined_score:.4f}):\n")
        print(best.code)
    extra = "" if importlib.util.find_spec("starlette") else ' (after pip install ".[view]")'
    print(f"\nsee the run in a browser: {view_command(db.url)}{extra}")
    return 0
