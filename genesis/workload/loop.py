"""The reference evolution loop: what an LLM-driven runner does with the database.

``workers`` tasks share one :class:`~genesis.database.AsyncProgramDatabase`. Each step of a
worker samples a parent and inspirations, asks the mutator for a child (an LLM would go
here), evaluates it, measures its novelty against the parent's island, and adds it with
its metrics, diff, feedback and embedding, then logs a generation event. Generations are
numbered by one counter shared by the workers and continued from the stored run, so
running the loop again extends the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from genesis.database import AsyncProgramDatabase, Program
from genesis.workload.circles import INITIAL_PROGRAM
from genesis.workload.embed import embed_code
from genesis.workload.evaluate import EvalResult
from genesis.workload.mutate import Mutator

__all__ = ["LoopReport", "LoopSettings", "Scorer", "evolve", "seed_run"]

T = TypeVar("T")


class Scorer(Protocol):
    """Anything that evaluates a program's code (the workload's Evaluator, or a stand-in)."""

    async def evaluate(self, code: str) -> EvalResult:
        """Run or score ``code`` and return its result."""
        ...


@dataclass
class LoopSettings:
    """How long and how wide the loop runs."""

    workers: int = 4
    max_programs: int | None = 500
    max_seconds: float | None = 60.0
    embedding_dim: int = 256
    novelty: bool = True
    seed: int = 0


@dataclass
class LoopReport:
    """What a run of the loop did."""

    added: int = 0
    correct: int = 0
    seconds: float = 0.0
    first_generation: int = 0
    last_generation: int = 0
    best_score: float | None = None
    initial_score: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Programs added per second."""
        return self.added / self.seconds if self.seconds > 0 else 0.0


def _child(parent: Program, code: str, generation: int, result: EvalResult,
           inspirations: Sequence[Program], top_k: Sequence[Program],
           embedding: list[float], metadata: dict[str, object], diff: str) -> Program:
    return Program(
        id=str(uuid.uuid4()),
        code=code,
        parent_id=parent.id,
        generation=generation,
        archive_inspiration_ids=[p.id for p in inspirations],
        top_k_inspiration_ids=[p.id for p in top_k],
        code_diff=diff,
        combined_score=result.combined_score,
        public_metrics=result.public_metrics,
        private_metrics=result.private_metrics,
        text_feedback=result.text_feedback,
        correct=result.correct,
        embedding=embedding,
        metadata=metadata,
    )


async def seed_run(db: AsyncProgramDatabase, scorer: Scorer, embedding_dim: int,
                   code: str = INITIAL_PROGRAM) -> Program:
    """Add the initial program if the run is empty; return the run's initial program."""
    async with db.store.read() as reader:
        existing = await reader.earliest_program()
    if existing is not None:
        return existing
    result = await scorer.evaluate(code)
    initial = Program(
        id=str(uuid.uuid4()), code=code, generation=0, combined_score=result.combined_score,
        public_metrics=result.public_metrics, private_metrics=result.private_metrics,
        text_feedback=result.text_feedback, correct=result.correct,
        embedding=embed_code(code, embedding_dim),
        metadata={"patch_type": "init", "patch_name": "initial program"},
    )
    await db.add(initial)
    return initial


async def _unless_halted(work: Awaitable[T], halt: asyncio.Event) -> T | None:
    """Await ``work``, or cancel it and return None once ``halt`` is set."""
    task = asyncio.ensure_future(work)
    halted = asyncio.ensure_future(halt.wait())
    try:
        await asyncio.wait((task, halted), return_when=asyncio.FIRST_COMPLETED)
    finally:
        halted.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def evolve(
    db: AsyncProgramDatabase,
    mutator: Mutator,
    scorer: Scorer,
    settings: LoopSettings | None = None,
    on_step: Callable[[LoopReport], None] | None = None,
    stop: asyncio.Event | None = None,
) -> LoopReport:
    """Run the loop until ``max_programs`` children are added, ``max_seconds`` pass or ``stop``.

    The program budget is taken before a step starts, so exactly ``max_programs`` children
    are added however many workers run. At the time limit (or ``stop``) no new step starts
    and the steps still sampling or evaluating are cancelled; a child whose add has begun
    is stored and counted, so the report matches the database.
    """
    settings = settings or LoopSettings()
    initial = await seed_run(db, scorer, settings.embedding_dim)
    report = LoopReport(initial_score=initial.combined_score)
    next_generation = await db.get_last_iteration() + 1
    report.first_generation = report.last_generation = next_generation
    session = uuid.uuid4().hex[:12]
    started = time.monotonic()
    halt = asyncio.Event()
    budget = settings.max_programs

    def take_step() -> bool:
        nonlocal budget
        if halt.is_set() or budget == 0:
            return False
        if budget is not None:
            budget -= 1
        return True

    async def watch() -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for((stop or asyncio.Event()).wait(), settings.max_seconds)
        halt.set()

    async def propose(rng: random.Random) -> tuple[Program, EvalResult, str]:
        nonlocal next_generation
        generation, next_generation = next_generation, next_generation + 1
        parent, inspirations, top_k, needs_fix = await db.sample_with_fix_mode()
        proposal = await mutator.propose(parent.code, [p.code for p in (*inspirations, *top_k)],
                                         rng)
        result = await scorer.evaluate(proposal.code)
        embedding = embed_code(proposal.code, settings.embedding_dim)
        job = f"{session}-{generation}"
        metadata: dict[str, object] = {
            "source_job_id": job, "patch_type": proposal.patch_type,
            "patch_name": proposal.patch_name, "patch_description": proposal.description,
            "status": result.status, "eval_seconds": result.seconds, "fix_mode": needs_fix,
            "stdout_log": result.stdout,
        }
        if settings.novelty and parent.island_idx is not None:
            similarities = await db.compute_similarity(embedding, parent.island_idx)
            metadata["max_similarity"] = max(similarities, default=0.0)
        child = _child(parent, proposal.code, generation, result, inspirations, top_k,
                       embedding, metadata, proposal.diff)
        return child, result, job

    async def store(child: Program, result: EvalResult, job: str) -> None:
        await db.add(child)
        await db.record_generation_event(child.generation, result.status, job,
                                         {"parent": child.parent_id,
                                          "score": result.combined_score})
        report.last_generation = max(report.last_generation, child.generation)
        report.added += 1
        report.correct += int(result.correct)
        report.statuses[result.status] = report.statuses.get(result.status, 0) + 1
        if result.correct and (report.best_score is None or
                               result.combined_score > report.best_score):
            report.best_score = result.combined_score

    async def worker(index: int) -> None:
        rng = random.Random(settings.seed * 10_007 + index)
        while take_step():
            proposed = await _unless_halted(propose(rng), halt)
            if proposed is None:
                return
            await store(*proposed)
            if on_step is not None:
                on_step(report)

    watcher = asyncio.create_task(watch())
    tasks = [asyncio.create_task(worker(i)) for i in range(settings.workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in (*tasks, watcher):
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
    report.seconds = time.monotonic() - started
    best = await db.get_best_program()
    report.best_score = best.combined_score if best is not None else report.best_score
    return report
