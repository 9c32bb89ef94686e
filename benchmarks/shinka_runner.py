"""The evolution step through ShinkaEvolve 0.0.7's own ProgramDatabase (sync API).

Run by ``benchmarks/workload.py`` with the interpreter of the virtual environment made by
``benchmarks/setup_shinka.sh`` and the repository on PYTHONPATH:

    python -m benchmarks.shinka_runner seed DB_PATH SEED_JSONL
    python -m benchmarks.shinka_runner work DB_PATH SECONDS WORKER_SEED PROPOSALS_JSONL
                                                                        # prints steps
"""

from __future__ import annotations

import logging
import random
import sys
import time
from pathlib import Path

from shinka.database import DatabaseConfig, Program, ProgramDatabase
from shinka.database.display import DatabaseDisplay
from shinka.database.islands import ElitistMigrationStrategy

from benchmarks.steps import CONFIG, child_fields, read_seed

# Its rich console tables are switched off: only database work is compared.
DatabaseDisplay.print_sampling_summary = lambda *args, **kwargs: None  # type: ignore
DatabaseDisplay.print_program_summary = lambda *args, **kwargs: None  # type: ignore
ElitistMigrationStrategy._print_migration_summary = lambda *args, **kwargs: None  # type: ignore


def step(db: ProgramDatabase, rng: random.Random, proposals: list[dict]) -> None:
    """One evolution step with ShinkaEvolve's API, as its runner uses it."""
    parent, inspirations, top_k, _ = db.sample_with_fix_mode()
    child = Program(**child_fields(parent, [*inspirations, *top_k], rng,
                                   rng.choice(proposals)))
    db.compute_similarity(child.embedding, parent.island_idx)
    db.add(child, defer_maintenance=True)
    db.run_post_add_maintenance(child)


def main(argv: list[str]) -> None:
    """Seed a run or work on it for a while."""
    logging.disable(logging.CRITICAL)
    mode, path = argv[0], argv[1]
    db = ProgramDatabase(DatabaseConfig(db_path=path, **CONFIG), embedding_model="")
    if mode == "seed":
        for fields in read_seed(Path(argv[2])):
            program = Program(**fields)
            db.add(program, defer_maintenance=True)
            db.run_post_add_maintenance(program)
    else:
        seconds, rng = float(argv[2]), random.Random(int(argv[3]))
        proposals = read_seed(Path(argv[4]))
        deadline, steps = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            step(db, rng, proposals)
            steps += 1
        print(steps)
    db.close()


if __name__ == "__main__":
    main(sys.argv[1:])
