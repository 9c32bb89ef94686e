"""Parent selection within an island: weighted, power_law, beam_search, best_of_n, sequential.

Each strategy reads only the island's archive members (bounded by ``archive_size``) or
one row through an index; none loads the island's programs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from genesis.database.config import DatabaseConfig
from genesis.database.program import Program
from genesis.database.protocol import IslandStats, ProgramSummary, StoreReader
from genesis.database.selection import (
    choose,
    power_law_probabilities,
    weighted_parent_probabilities,
)

__all__ = ["ParentContext", "random_program", "select_parent"]


@dataclass
class ParentContext:
    """What a strategy may consult besides the store: the archive and the best program."""

    reader: StoreReader
    config: DatabaseConfig
    rng: np.random.Generator
    archive: Sequence[ProgramSummary]
    best: Program | None
    set_beam_parent: Callable[[str], Awaitable[None]]

    def members(self, island: int) -> list[ProgramSummary]:
        """The archive's correct members on one island."""
        return [m for m in self.archive if m.island_idx == island]


async def random_program(
    reader: StoreReader, rng: np.random.Generator, island: int | None, count: int,
    correct: bool | None = True,
) -> Program | None:
    """A uniformly random program among ``count`` matching ones, through an index."""
    if count <= 0:
        return None
    return await reader.nth_program(island=island, correct=correct, order="score",
                                    descending=True, offset=int(rng.integers(count)))


async def _best_or_random(ctx: ParentContext, island: IslandStats) -> Program | None:
    best = ctx.best
    if best is not None and best.correct and best.island_idx == island.island_idx:
        return best
    return await random_program(ctx.reader, ctx.rng, island.island_idx, island.correct)


async def _weighted(ctx: ParentContext, island: IslandStats) -> Program | None:
    members = ctx.members(island.island_idx)
    if not members:
        return await _best_or_random(ctx, island)
    probabilities = weighted_parent_probabilities(
        [m.combined_score for m in members], [m.children_count for m in members],
        ctx.config.parent_selection_lambda,
    )
    return await ctx.reader.get(members[choose(ctx.rng, probabilities)].id)


async def _power_law(ctx: ParentContext, island: IslandStats) -> Program | None:
    alpha = ctx.config.exploitation_alpha
    members = sorted(ctx.members(island.island_idx), key=lambda m: -(m.combined_score or 0.0))
    if members:
        rank = choose(ctx.rng, power_law_probabilities(len(members), alpha))
        return await ctx.reader.get(members[rank].id)
    if island.correct > 0:
        rank = choose(ctx.rng, power_law_probabilities(island.correct, alpha))
        return await ctx.reader.nth_program(island=island.island_idx, correct=True,
                                            order="score", descending=True, offset=rank)
    return await _best_or_random(ctx, island)


async def _beam_search(ctx: ParentContext, island: IslandStats) -> Program | None:
    parent = await ctx.reader.program_named_by("beam_search_parent_id")
    if parent is not None and parent.children_count < ctx.config.num_beams:
        return parent
    best = ctx.best
    if best is not None and (parent is None or best.id != parent.id):
        await ctx.set_beam_parent(best.id)
    return best or parent


async def _best_of_n(ctx: ParentContext, island: IslandStats) -> Program | None:
    initial = await ctx.reader.nth_program(island=island.island_idx, correct=True, order="id",
                                           descending=False, generation=0)
    if initial is not None:
        return initial
    return await ctx.reader.nth_program(island=island.island_idx, correct=True,
                                        order="generation", descending=False)


async def _sequential(ctx: ParentContext, island: IslandStats) -> Program | None:
    for correct in (True, None):
        latest = await ctx.reader.nth_program(island=island.island_idx, correct=correct,
                                              order="generation", descending=True)
        if latest is not None:
            return latest
    return None


_STRATEGIES = {
    "weighted": _weighted,
    "power_law": _power_law,
    "beam_search": _beam_search,
    "best_of_n": _best_of_n,
    "sequential": _sequential,
}


async def select_parent(ctx: ParentContext, island: IslandStats) -> Program:
    """Choose a parent on ``island`` with the configured strategy (falling back sensibly)."""
    strategy = _STRATEGIES[ctx.config.parent_selection_strategy]
    parent = await strategy(ctx, island) or await _best_or_random(ctx, island)
    if parent is None:
        raise RuntimeError(f"no parent could be sampled from island {island.island_idx}")
    return parent
