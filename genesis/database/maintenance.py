"""Post-add maintenance: archive, best-program tracking, migrations, dynamic islands.

Maintenance for a batch of programs runs in ONE write transaction holding the
``maintenance`` lock (serialised across processes and machines), programs in generation
order. Every decision re-reads the stored state inside that transaction, so the archive
never exceeds ``archive_size``, the best program and ``best_score_ever`` only move
forward, and each migration happens once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from genesis.database.archive import Contender, choose_victim, is_better, most_similar
from genesis.database.config import DatabaseConfig
from genesis.database.islands import LAST_MIGRATION_KEY, migrate, spawn_island
from genesis.database.program import Program
from genesis.database.protocol import SelectionState, StoreWriter

__all__ = ["BEST_KEYS", "default_policy", "due_migration", "maintain", "needs_maintenance",
           "simple_criteria", "update_archive", "update_best"]

log = logging.getLogger("genesis.database")
BEST_KEYS = ("best_program_id", "best_score_ever", "best_score_generation")


def simple_criteria(config: DatabaseConfig) -> bool:
    """Whether the archive ranks by ``combined_score`` alone (the default)."""
    return list(config.archive_criteria) == ["combined_score"] and \
        config.archive_criteria["combined_score"] > 0


async def update_archive(writer: StoreWriter, program: Program, config: DatabaseConfig) -> bool:
    """Offer a correct program to the archive; return True if it entered."""
    if not program.correct or config.archive_size <= 0:
        return False
    members = await writer.archive_members()
    if any(m.id == program.id for m in members):
        return False
    count = len(members)
    if count < config.archive_size:
        await writer.archive_add([program.id])
        return True
    criteria = config.archive_criteria
    if simple_criteria(config):
        contenders = [Contender.of(m) for m in members]
    else:
        contenders = [Contender.of(p, criteria)
                      for p in await writer.get_many([m.id for m in members])]
    order = sorted(contenders, key=lambda c: (c.correct, c.combined_score or -np.inf,
                                              c.timestamp))
    excess = count - config.archive_size  # an archive shrunk by a smaller archive_size
    if excess > 0:
        await writer.archive_remove([c.id for c in order[:excess]])
        contenders = order[excess:]
    nearest = None
    if config.archive_selection_strategy == "crowding" and program.embedding:
        blobs = await writer.embeddings([c.id for c in contenders])
        vectors = {pid: np.frombuffer(blob, dtype="<f8") for pid, blob in blobs.items()}
        nearest_id = most_similar(program.embedding, vectors)
        nearest = next((c for c in contenders if c.id == nearest_id), None)
    victim = choose_victim(contenders, Contender.of(program, criteria), criteria, nearest)
    if victim is None:
        return False
    await writer.archive_remove([victim])
    await writer.archive_add([program.id])
    return True


async def update_best(writer: StoreWriter, program: Program) -> bool:
    """Make ``program`` the best program if it beats the stored one; return True if so.

    A program without a score (None, e.g. a NaN stored as null) is never the best one.
    """
    if not program.correct or program.combined_score is None:
        return False
    current = await writer.program_named_by("best_program_id")
    if current is not None and current.correct and \
            not is_better(Contender.of(program), Contender.of(current)):
        return False
    await writer.set_metadata("best_program_id", program.id)
    if await writer.raise_metadata("best_score_ever", program.combined_score or 0.0):
        await writer.set_metadata("best_score_generation", str(program.generation))
    return True


async def _stagnation(writer: StoreWriter, generation: int, config: DatabaseConfig,
                      rng: np.random.Generator) -> list[Program]:
    stored = await writer.get_metadata("best_score_generation")
    since = int(float(stored)) if stored not in (None, "") else 0
    if generation - since < config.stagnation_threshold:
        return []
    copies = await spawn_island(writer, config, rng)
    await writer.set_metadata("best_score_generation", str(generation))
    return copies


def default_policy(config: DatabaseConfig) -> bool:
    """Whether the archive is ShinkaEvolve's default: fitness on ``combined_score`` alone,
    without dynamic islands (so the archive's worst member and the best only improve)."""
    return (not config.enable_dynamic_islands and config.archive_selection_strategy == "fitness"
            and simple_criteria(config))


def due_migration(program: Program, config: DatabaseConfig) -> bool:
    """Whether adding ``program`` is when a migration is due (its generation's turn)."""
    interval = config.migration_interval
    return interval > 0 and program.generation > 0 and program.generation % interval == 0


def needs_maintenance(state: SelectionState, program: Program, config: DatabaseConfig) -> bool:
    """Decide from the selection state whether maintenance could change anything.

    With the default archive policy the archive's worst member and the best program only
    ever get better, so a program that beats neither in a state (even an older one) beats
    neither later: its maintenance can be skipped. Anything else (a due migration, dynamic
    islands, crowding or weighted criteria) is left to maintenance.
    """
    if not default_policy(config):
        return True
    if due_migration(program, config):
        stored = state.metadata.get(LAST_MIGRATION_KEY)
        if stored in (None, "") or float(stored) < program.generation:
            return True
    if not program.correct:
        return False
    candidate = Contender.of(program)
    best = state.best
    if program.combined_score is not None and (
            best is None or not best.correct or is_better(candidate, Contender.of(best))):
        return True
    if config.archive_size <= 0:
        return False
    members = state.archive
    if any(m.id == program.id for m in members):
        return False
    if len(members) < config.archive_size:
        return True
    worst = min((Contender.of(m) for m in members),
                key=lambda c: (c.correct, c.combined_score or -np.inf, c.timestamp), default=None)
    return worst is None or is_better(candidate, worst)


async def maintain(
    writer: StoreWriter, programs: Sequence[Program], config: DatabaseConfig,
    rng: np.random.Generator,
) -> None:
    """Run post-add maintenance for ``programs`` inside ``writer``'s transaction."""
    stored = {s.id for s in await writer.summaries([p.id for p in programs])}
    for program in sorted((p for p in programs if p.id in stored), key=lambda p: p.generation):
        await update_archive(writer, program, config)
        if await update_best(writer, program):
            log.info("new best program %s (score %s, generation %d)", program.id,
                     program.combined_score, program.generation)
        if due_migration(program, config):
            await migrate(writer, program.generation, config, rng)
        if config.enable_dynamic_islands:
            for copy in await _stagnation(writer, program.generation, config, rng):
                await update_archive(writer, copy, config)
