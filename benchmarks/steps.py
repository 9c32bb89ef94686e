"""One evolution step, shared by the Genesis and the ShinkaEvolve side of the benchmark.

A step is what a runner does with its database per LLM call: sample a parent with
inspirations, receive the child's code and embedding, measure its novelty against the
parent's island, then add it with deferred maintenance and run that maintenance, as
ShinkaEvolve's runner does. In a real run the proposal comes from an LLM and the
embedding from an embedding API, both over the network, and the evaluation runs in
other processes; so here proposals (real mutations of the seed run's programs, made by the
workload's mutator, with their 1,536-float embeddings) are generated before timing and
replayed, and the evaluation is simulated. The runner's own CPU then goes where a real
runner's goes: to the database.

This module imports no database code, so the ShinkaEvolve side can run it in its own
virtual environment (with only the repository on PYTHONPATH).
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from genesis.workload.embed import embed_code
from genesis.workload.mutate import ProgrammaticMutator

EMBEDDING_DIM = 1536
CONFIG: dict[str, Any] = dict(num_islands=2, archive_size=40, num_archive_inspirations=2,
                              num_top_k_inspirations=1, migration_interval=10,
                              migration_rate=0.1)
_MUTATOR = ProgrammaticMutator()


def simulated_score(parent_score: float | None, rng: random.Random) -> tuple[float, bool]:
    """A child's (score, correct): mostly correct, drifting from the parent's score."""
    correct = rng.random() < 0.85
    score = max(0.0, (parent_score or 0.0) + rng.gauss(0.005, 0.05)) if correct else 0.0
    return score, correct


def propose(parent_code: str, inspirations: list[str], rng: random.Random) -> dict[str, Any]:
    """A real mutation of ``parent_code`` with its diff, patch names and embedding."""
    proposal = _MUTATOR.mutate(parent_code, inspirations, rng)
    return {"code": proposal.code, "code_diff": proposal.diff,
            "patch_type": proposal.patch_type, "patch_name": proposal.patch_name,
            "embedding": embed_code(proposal.code, EMBEDDING_DIM)}


def child_fields(parent: Any, inspirations: list[Any], rng: random.Random,
                 proposal: dict[str, Any]) -> dict[str, Any]:
    """Fields of a child of ``parent`` made from ``proposal``, with simulated metrics."""
    score, correct = simulated_score(parent.combined_score, rng)
    return dict(
        id=str(uuid.uuid4()),
        code=proposal["code"],
        parent_id=parent.id,
        generation=parent.generation + 1,
        archive_inspiration_ids=[p.id for p in inspirations],
        code_diff=proposal["code_diff"],
        combined_score=score,
        correct=correct,
        public_metrics={"sum_radii": score, "num_circles": 26.0, "valid": float(correct)},
        private_metrics={"seed": rng.random()},
        text_feedback="" if correct else "circles overlap",
        embedding=list(proposal["embedding"]),
        metadata={"patch_type": proposal["patch_type"], "patch_name": proposal["patch_name"],
                  "source_job_id": uuid.uuid4().hex},
    )


def initial_fields() -> dict[str, Any]:
    """Fields of the run's initial program."""
    from genesis.workload.circles import INITIAL_PROGRAM

    return dict(id=str(uuid.uuid4()), code=INITIAL_PROGRAM, generation=0,
                combined_score=0.98, correct=True, public_metrics={"sum_radii": 0.98},
                embedding=embed_code(INITIAL_PROGRAM, EMBEDDING_DIM))


def write_seed(path: Path, programs: int, seed: int = 1) -> None:
    """Write a run's worth of programs (a lineage from the initial one) as JSON lines.

    Both engines load the same file, so every configuration starts from identical data.
    """
    rng = random.Random(seed)
    lineage = [initial_fields()]
    for _ in range(programs - 1):
        parent = SimpleNamespace(**lineage[int(len(lineage) * rng.random() ** 0.5)])
        lineage.append(child_fields(parent, [], rng, propose(parent.code, [], rng)))
    _write_lines(path, lineage)


def write_proposals(path: Path, seed_path: Path, count: int, seed: int = 2) -> None:
    """Write ``count`` proposals: mutations of random programs of the seed run."""
    rng = random.Random(seed)
    codes = [fields["code"] for fields in read_seed(seed_path)]
    _write_lines(path, [propose(rng.choice(codes), [rng.choice(codes)], rng)
                        for _ in range(count)])


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def read_seed(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (seed programs, parents first, or proposals)."""
    with path.open() as lines:
        return [json.loads(line) for line in lines]
