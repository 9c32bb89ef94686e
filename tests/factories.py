"""Builders of realistic programs for tests."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid

from genesis.database import DatabaseURL, Program, create_store

_counter = itertools.count()


def make_program(
    *,
    parent: Program | None = None,
    score: float | None = None,
    correct: bool = True,
    island: int | None = 0,
    generation: int | None = None,
    embedding_dim: int = 0,
    job: str | None = None,
    rng: random.Random | None = None,
    **fields: object,
) -> Program:
    """Return a program with plausible code, metrics and metadata."""
    rng = rng or random.Random(next(_counter))
    pid = fields.pop("id", None) or str(uuid.uuid4())
    metadata = {"patch_type": rng.choice(["diff", "full", "cross"]), "model": "test-model"}
    if job is not None:
        metadata["source_job_id"] = job
    values: dict[str, object] = {
        "code": f"def solve():\n    return {rng.random()!r}\n" * 3,
        "parent_id": parent.id if parent else None,
        "island_idx": island if parent is None else parent.island_idx,
        "generation": generation if generation is not None else (
            parent.generation + 1 if parent else 0),
        "combined_score": rng.random() if score is None else score,
        "correct": correct,
        "public_metrics": {f"m{i}": rng.random() for i in range(5)},
        "private_metrics": {"seed": rng.randint(0, 100)},
        "metadata": metadata,
        "embedding": [rng.uniform(-1, 1) for _ in range(embedding_dim)],
        "text_feedback": "looks fine",
    }
    values.update(fields)
    return Program(id=pid, **values)  # type: ignore[arg-type]


def store_parents(url: DatabaseURL, count: int) -> list[Program]:
    """Store ``count`` generation-0 programs over islands 0 and 1 (for worker processes to
    add children to); return them."""
    parents = [make_program(island=i % 2, generation=0) for i in range(count)]

    async def store() -> None:
        async with create_store(url) as opened:
            await opened.add_many(parents)

    asyncio.run(store())
    return parents
