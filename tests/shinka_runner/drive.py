"""Run ShinkaEvolve 0.0.7's own evolution runner end to end on the harness task.

Run with the interpreter of the virtual environment made by ``benchmarks/setup_shinka.sh``
(the repository on PYTHONPATH only when Genesis is to be swapped in), against a fake LLM
(``fake_llm.py``) whose base URL is given:

    python tests/shinka_runner/drive.py --mode sync|async --results-dir DIR \\
        --llm-url http://127.0.0.1:PORT/v1 [--generations 12] [--preload MODULE]

The runner gets two islands, the novelty judge (every proposal is compared by the LLM),
system-prompt evolution, meta summaries and local evaluation. The run itself uses nothing
but ``shinka.*``; afterwards the outcome is read back through ``shinka.database``'s API and
printed as one line ``RESULT {json}`` on stdout. Everything else that the runner prints
(rich tables, its log) goes to ``DIR/console.log``, or to stderr with ``--show-console``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, TextIO

TASK = Path(__file__).resolve().parent / "task"
ERROR_MARK = " - ERROR - "
TASK_SYS_MSG = (
    "You are an expert in numerical optimisation. The program returns a point; its score is "
    "higher the closer the point is to a hidden target. Improve the program's score."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("sync", "async"), required=True,
                        help="runner.run() or asyncio.run(runner.run_async())")
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--llm-url", required=True, help="the fake LLM's base URL, .../v1")
    parser.add_argument("--generations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the runner's random and numpy.random draws")
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE",
                        help="import MODULE before ShinkaEvolve (e.g. an import hook)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="exit with status 3 if the run takes longer (seconds)")
    parser.add_argument("--show-console", action="store_true",
                        help="send the runner's console output to stderr, not console.log")
    return parser.parse_args(argv)


def divert_stdout(target: Path | None) -> TextIO:
    """Point file descriptor 1 at target (stderr if None); return the original stdout."""
    sys.stdout.flush()
    original = os.fdopen(os.dup(1), "w", buffering=1)
    if target is None:
        os.dup2(2, 1)
    else:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.close(fd)
    return original


def start_watchdog(seconds: float) -> None:
    """End the process with status 3 if it is still running after seconds."""
    def expire() -> None:
        sys.stderr.write(f"drive.py: run exceeded {seconds:.0f} s, exiting\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def build_runner(args: argparse.Namespace) -> Any:
    """Configure ShinkaEvolveRunner for a short run against the fake LLM."""
    from shinka.core import EvolutionConfig, ShinkaEvolveRunner
    from shinka.database import DatabaseConfig
    from shinka.launch import LocalJobConfig

    def model(name: str) -> str:
        return f"local/{name}@{args.llm_url.rstrip('/')}"

    evo_config = EvolutionConfig(
        task_sys_msg=TASK_SYS_MSG,
        patch_types=["diff", "full", "cross"],
        patch_type_probs=[0.5, 0.3, 0.2],
        num_generations=args.generations,
        max_patch_resamples=2,
        max_patch_attempts=2,
        job_type="local",
        language="python",
        llm_models=[model("coder")],
        llm_dynamic_selection="ucb",
        llm_kwargs={"temperatures": [0.0, 0.7], "max_tokens": 2048},
        meta_rec_interval=4,
        meta_llm_models=[model("meta")],
        embedding_model=model("embed"),
        init_program_path=str(TASK / "initial.py"),
        results_dir=str(args.results_dir),
        max_novelty_attempts=3,
        code_embed_sim_threshold=0.5,
        novelty_llm_models=[model("judge")],
        use_text_feedback=True,
        evolve_prompts=True,
        prompt_llm_models=[model("prompter")],
        prompt_evolution_interval=3,
        prompt_archive_size=5,
        prompt_percentile_recompute_interval=4,
    )
    db_config = DatabaseConfig(
        num_islands=2,
        archive_size=20,
        migration_interval=4,
        migration_rate=0.25,
        num_archive_inspirations=1,
        num_top_k_inspirations=1,
    )
    job_config = LocalJobConfig(eval_program_path=str(TASK / "evaluate.py"), time="00:01:00")
    return ShinkaEvolveRunner(
        evo_config=evo_config,
        job_config=job_config,
        db_config=db_config,
        banner_style="minimal",
        verbose=True,
        max_evaluation_jobs=2,
        max_proposal_jobs=2,
        max_db_workers=2,
    )


def fake_counts(llm_url: str) -> dict[str, int] | None:
    """Ask the fake LLM for its request counts, if it is one."""
    try:
        with urllib.request.urlopen(f"{llm_url.rstrip('/')}/_fake/counts", timeout=5) as reply:
            return json.load(reply)
    except (OSError, ValueError):
        return None


def summarize(results_dir: Path) -> dict[str, Any]:
    """Read the run back through shinka.database's API."""
    from shinka.database import (
        DatabaseConfig,
        ProgramDatabase,
        SystemPromptConfig,
        SystemPromptDatabase,
    )

    db = ProgramDatabase(DatabaseConfig(db_path=str(results_dir / "programs.sqlite")),
                         read_only=True)
    try:
        programs = db.get_all_programs()
    finally:
        db.close()
    prompt_db = SystemPromptDatabase(
        SystemPromptConfig(db_path=str(results_dir / "prompts.sqlite")), read_only=True
    )
    try:
        prompts = prompt_db.get_all_prompts()
    finally:
        prompt_db.close()

    ids = {p.id for p in programs}
    initial = [p.combined_score for p in programs if p.generation == 0]
    correct = [p.combined_score for p in programs if p.correct]
    return {
        "generations": sorted({p.generation for p in programs}),
        "program_count": len(programs),
        "island_copies": sum(bool((p.metadata or {}).get("_is_island_copy")) for p in programs),
        "islands": sorted({p.island_idx for p in programs if p.island_idx is not None}),
        "correct_count": len(correct),
        "parents_exist": all(p.parent_id in ids for p in programs if p.parent_id),
        "initial_score": max(initial) if initial else None,
        "best_score": max(correct) if correct else None,
        "novelty_checks": sum(
            int((p.metadata or {}).get("novelty_checks_performed") or 0) for p in programs
        ),
        "prompt_count": len(prompts),
        "evolved_prompts": sum(p.generation > 0 for p in prompts),
    }


def log_errors(log_file: Path) -> list[str]:
    """Return the lines of the runner's log written at ERROR level."""
    if not log_file.exists():
        return []
    text = log_file.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if ERROR_MARK in line]


def main(argv: list[str] | None = None) -> int:
    """Run the evolution, then print its outcome as ``RESULT {json}``."""
    args = parse_args(argv)
    args.results_dir = args.results_dir.resolve()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("COLUMNS", "120")
    for name in ("NO_PROXY", "no_proxy"):  # the fake LLM is local, whatever the proxy
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"]))
    out = divert_stdout(None if args.show_console else args.results_dir / "console.log")
    start_watchdog(args.timeout)
    for module in args.preload:
        importlib.import_module(module)

    import numpy

    random.seed(args.seed)
    numpy.random.seed(args.seed)
    started = time.monotonic()
    runner = build_runner(args)
    if args.mode == "sync":
        runner.run()
    else:
        asyncio.run(runner.run_async())
    elapsed = time.monotonic() - started

    log_file = args.results_dir / "evolution_run.log"
    errors = log_errors(log_file)
    result = {
        "mode": args.mode,
        "target_generations": args.generations,
        **summarize(args.results_dir),
        "log_file": str(log_file),
        "log_error_count": len(errors),
        "log_errors": errors[:20],
        "llm_counts": fake_counts(args.llm_url),
        "elapsed_seconds": round(elapsed, 2),
    }
    out.write("RESULT " + json.dumps(result, sort_keys=True) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
