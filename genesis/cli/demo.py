"""``genesis demo``: evolve circle-packing programs for about a minute, no LLM needed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from genesis.cli import EXIT_INTERRUPTED
from genesis.cli.progress import Progress
from genesis.cli.view import view_command
from genesis.database import AsyncProgramDatabase, DatabaseConfig
from genesis.database.display import format_summary
from genesis.database.url import DatabaseURL, validate_run_name
from genesis.workload import Evaluator, ProgrammaticMutator
from genesis.workload.loop import LoopReport, LoopSettings, evolve

__all__ = ["MAX_EVAL_WORKERS", "MAX_WORKERS", "at_least", "positive_seconds", "register",
           "run_demo"]

MAX_WORKERS = 256  # beyond this, workers only queue for the evaluators and hold memory
MAX_EVAL_WORKERS = 32  # evaluation processes

EXAMPLES = """\
examples:
  genesis demo                                 # ./genesis_data/evolution.db, about a minute
  genesis demo --programs 2000 --seconds 300   # a longer run; rerun to continue it
  DATABASE_URL=postgresql://genesis:pw@localhost:5432/genesis genesis demo --run demo_2
"""


def at_least(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that accepts integers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def positive_seconds(text: str) -> float:
    """Parse a number of seconds greater than zero (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    parser = commands.add_parser(
        "demo", aliases=["evolve"], help="run the reference evolution loop (no LLM needed)",
        description="Evolve Python programs that pack 26 circles in the unit square, with "
                    "programmatic mutations instead of an LLM. Uses DATABASE_URL when set, "
                    "else embedded SQLite; rerunning continues the same run. The run ends "
                    "at --programs new programs or after --seconds, whichever comes first; "
                    "Ctrl-C ends it early and still prints the summary.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else "
                                      "$GENESIS_DATA_DIR/evolution.db)")
    parser.add_argument("--run", help="run name on PostgreSQL (default: GENESIS_RUN or "
                                      "'default')")
    parser.add_argument("--workers", type=at_least(1), default=4,
                        help=f"concurrent workers (4; at most {MAX_WORKERS})")
    parser.add_argument("--programs", type=at_least(1), default=3000,
                        help="stop after exactly this many new programs (3000)")
    parser.add_argument("--seconds", type=positive_seconds, default=60.0,
                        help="stop after this many seconds (60)")
    parser.add_argument("--eval-workers", type=at_least(1), default=2,
                        help=f"evaluation processes (2; at most {MAX_EVAL_WORKERS})")
    parser.add_argument("--islands", type=at_least(1), default=2, help="number of islands (2)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (0)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the summary (no progress, no best program)")
    parser.set_defaults(handler=lambda args: asyncio.run(run_demo(args)))


def _capped(value: int, limit: int, option: str, stream: TextIO) -> int:
    """Return ``value``, or ``limit`` (saying so) when it is larger."""
    if value <= limit:
        return value
    print(f"genesis: {option} {value} is more than {limit}; using {limit}", file=stream)
    return limit


@contextlib.contextmanager
def _ctrl_c_sets(event: asyncio.Event) -> Iterator[None]:
    """While the block runs, the first Ctrl-C sets ``event``; a second one interrupts."""
    loop = asyncio.get_running_loop()

    def first_interrupt() -> None:
        event.set()
        loop.remove_signal_handler(signal.SIGINT)

    installed = True
    try:
        loop.add_signal_handler(signal.SIGINT, first_interrupt)
    except (NotImplementedError, RuntimeError):  # no signal handlers here: Ctrl-C interrupts
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


def _progress_note(progress: Progress, report: LoopReport) -> None:
    progress.done = report.added
    best = "-" if report.best_score is None else f"{report.best_score:.4f}"
    progress.note(generation=report.last_generation, correct=report.correct, best=best)


async def run_demo(args: argparse.Namespace) -> int:
    """Run the loop with a live progress line, then print the run's summary."""
    if args.url is not None:
        DatabaseURL.parse(args.url, "--url")
    if args.run is not None:
        validate_run_name(args.run, "--run")
    stream = io.StringIO() if args.quiet else sys.stderr
    settings = LoopSettings(workers=_capped(args.workers, MAX_WORKERS, "--workers", stream),
                            max_programs=args.programs, max_seconds=args.seconds,
                            seed=args.seed)
    eval_workers = _capped(args.eval_workers, MAX_EVAL_WORKERS, "--eval-workers", stream)
    config = DatabaseConfig(database_url=args.url, run_name=args.run, num_islands=args.islands,
                            migration_interval=10, migration_rate=0.1, seed=args.seed)
    stop = asyncio.Event()
    async with AsyncProgramDatabase(config) as db, Evaluator(workers=eval_workers) as ev:
        print(f"evolving into {db.url}: {db.store.describe()}", file=stream)
        with Progress("evolving", total=args.programs, unit="programs", stream=stream,
                      seconds=args.seconds) as progress, _ctrl_c_sets(stop):
            report = await evolve(db, ProgrammaticMutator(), ev, settings,
                                  on_step=lambda r: _progress_note(progress, r), stop=stop)
        summary = await db.summary()
        best = await db.get_best_program()
    outcome = "interrupted: added" if stop.is_set() else "added"
    print(f"\n{outcome} {report.added} programs in {report.seconds:.1f} s "
          f"({report.rate:.1f} programs/s), generations {report.first_generation}-"
          f"{report.last_generation}; initial score {report.initial_score or 0:.4f}, "
          f"best {summary['best']['score'] if summary['best'] else 0:.4f}\n")
    print(format_summary(summary))
    if best is not None and not args.quiet:
        print(f"\nbest program ({best.id}, score {best.combined_score:.4f}):\n")
        print(best.code)
    extra = "" if importlib.util.find_spec("starlette") else ' (after pip install ".[view]")'
    print(f"\nsee the run in a browser: {view_command(db.url)}{extra}")
    return EXIT_INTERRUPTED if stop.is_set() else 0
