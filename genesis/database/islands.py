"""Islands: where a new program lives, elitist migration, and spawning on stagnation.

All functions run inside a write transaction the engine holds, so their read-then-write
steps cannot interleave with another worker's.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid

import numpy as np

from genesis.database.config import DatabaseConfig
from genesis.database.program import Program
from genesis.database.protocol import StoreWriter
from genesis.database.selection import num_migrants

__all__ = ["assign_root_island", "island_copies", "migrate", "spawn_island"]

log = logging.getLogger("genesis.database")

LAST_MIGRATION_KEY = "last_migration_generation"


def configured_islands(config: DatabaseConfig) -> int:
    """Number of islands the run starts with (0 in old configs means one island)."""
    return max(1, config.num_islands)


async def assign_root_island(
    writer: StoreWriter, program: Program, config: DatabaseConfig, rng: np.random.Generator
) -> bool:
    """Place a program that has no stored parent; return True if it is the run's first.

    The first program goes to island 0 (and gets copies on the other islands); later ones
    go to the lowest island without a correct program, else to a random island.
    """
    if await writer.count() == 0:
        program.island_idx = 0
        return True
    initialized = {s.island_idx for s in await writer.island_stats() if s.correct > 0}
    empty = [i for i in range(configured_islands(config)) if i not in initialized]
    program.island_idx = min(empty) if empty else int(rng.integers(configured_islands(config)))
    return False


def island_copies(program: Program, config: DatabaseConfig) -> list[Program]:
    """Copies of the first program for islands 1..n-1, marked as island copies.

    Correct copies enter the (still empty) archive directly, as in ShinkaEvolve, as far as
    ``archive_size`` allows; the original is offered to the archive by maintenance.
    """
    copies = []
    for island in range(1, configured_islands(config)):
        twin = copy.deepcopy(program)
        twin.id = str(uuid.uuid4())
        twin.island_idx = island
        twin.in_archive = bool(program.correct) and island <= config.archive_size
        twin.metadata = {**(program.metadata or {}), "_is_island_copy": True,
                         "_original_program_id": program.id}
        twin.metadata.pop("source_job_id", None)
        copies.append(twin)
    return copies


async def migrate(
    writer: StoreWriter, generation: int, config: DatabaseConfig, rng: np.random.Generator
) -> int:
    """Run the migration due at ``generation`` once across all workers; return moves made.

    From each configured island, ``max(1, int(size * rate))`` correct programs of
    generation > 0 move to another random island; with ``island_elitism`` the island's
    best such program stays. Each move appends {generation, from, to, timestamp} to the
    program's migration history.
    """
    islands = configured_islands(config)
    if islands < 2 or config.migration_rate <= 0:
        return 0
    if not await writer.raise_metadata(LAST_MIGRATION_KEY, generation):
        return 0  # another worker already migrated for this generation (or a later one)
    sizes = {s.island_idx: s.programs for s in await writer.island_stats()}
    sources = [source for source in range(islands) if sizes.get(source, 0) > 1]
    found = await writer.migration_candidates(sources) if sources else {}
    moved: set[str] = set()
    for source in sources:
        size, candidates = sizes[source], found[source]
        if config.island_elitism and candidates:
            elite = max(candidates, key=lambda c: (c.combined_score is not None,
                                                   c.combined_score or 0.0, c.id))
            candidates = [c for c in candidates if c.id != elite.id]
        candidates = [c for c in candidates if c.id not in moved]
        count = min(num_migrants(size, config.migration_rate), len(candidates))
        if count == 0:
            continue
        destinations = [i for i in range(islands) if i != source]
        for index in rng.choice(len(candidates), size=count, replace=False):
            migrant = candidates[int(index)]
            target = destinations[int(rng.integers(len(destinations)))]
            await writer.move_program(migrant.id, target, {
                "generation": generation, "from": source, "to": target,
                "timestamp": time.time(),
            })
            moved.add(migrant.id)
    if moved:
        log.info("migration at generation %d moved %d programs", generation, len(moved))
    return len(moved)


async def _spawn_source(
    writer: StoreWriter, config: DatabaseConfig, rng: np.random.Generator
) -> Program | None:
    strategy = config.island_spawn_strategy
    if strategy == "best":
        tracked = await writer.get_metadata("best_program_id")
        program = await writer.get(tracked) if tracked else None
        return program if program is not None and program.correct else \
            await writer.best_program()
    if strategy == "archive_random":
        members = await writer.archive_summaries()
        if members:
            return await writer.get(members[int(rng.integers(len(members)))].id)
        return None
    return await writer.earliest_program()


async def spawn_island(
    writer: StoreWriter, config: DatabaseConfig, rng: np.random.Generator
) -> list[Program]:
    """Seed a new island with a copy of a program (or its best correct subtree).

    Returns the inserted copies (empty when there is nothing to copy); the caller offers
    the correct ones to the archive.
    """
    source = await _spawn_source(writer, config, rng)
    if source is None:
        return []
    stats = await writer.island_stats()
    island = max([configured_islands(config), *[s.island_idx + 1 for s in stats]])
    chosen = [source]
    frontier = [source]
    while frontier and len(chosen) < config.island_spawn_subtree_size:
        parent = frontier.pop(0)
        kids = await writer.children(parent.id, limit=config.island_spawn_subtree_size)
        for kid in kids[: config.island_spawn_subtree_size - len(chosen)]:
            chosen.append(kid)
            frontier.append(kid)
    new_ids = {p.id: str(uuid.uuid4()) for p in chosen}
    copies = []
    for index, original in enumerate(chosen):
        twin = copy.deepcopy(original)
        twin.id = new_ids[original.id]
        twin.parent_id = new_ids.get(original.parent_id or "") if index else None
        twin.island_idx = island
        twin.timestamp = time.time()
        twin.children_count = 0
        twin.code_diff = None
        twin.in_archive = False
        twin.metadata = {**(original.metadata or {}), "_spawned_island": True,
                         "_spawned_from_program_id": original.id, "_spawn_island_idx": island,
                         "_spawn_strategy": config.island_spawn_strategy}
        twin.metadata.pop("source_job_id", None)
        if index:
            twin.metadata["_spawned_as_child"] = True
        copies.append(twin)
    await writer.insert(copies)
    log.info("spawned island %d from program %s (%d programs)", island, source.id,
             len(copies))
    return copies
