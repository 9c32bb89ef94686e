"""Parent selection within an island: weighted, power_law, beam_search, best_of_n, sequential.

A strategy decides from the selection state (the archive's summaries, the islands' counts,
the best program), never from a query of its own: it returns a :class:`ParentPlan`, the
lookups that name the parent, which the engine sends in the same flight as everything
else a sample needs. Lookups are by id, or one indexed row of an island's ordering; none
loads the island's programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genesis.database.config import DatabaseConfig
from genesis.database.program import Program
from genesis.database.protocol import IslandStats, ProgramSummary, SelectionState
from genesis.database.selection import (
    choose,
    power_law_probabilities,
    weighted_parent_probabilities,
)

__all__ = ["ParentPlan", "PlanContext", "best_or_random", "plan_parent"]


@dataclass(frozen=True)
class PlanContext:
    """What a strategy decides from: the selection state, the settings and the RNG."""

    state: SelectionState
    config: DatabaseConfig
    rng: np.random.Generator

    def members(self, island: int) -> list[ProgramSummary]:
        """The archive's correct members on one island."""
        return [m for m in self.state.archive if m.correct and m.island_idx == island]


@dataclass(frozen=True)
class ParentPlan:
    """The parent is the first found of ``ids``, else of the indexed lookups ``nth``.

    ``max_children`` (beam search) skips a first candidate that already has that many
    children; ``beam`` says the choice is the beam-search parent, to be recorded when it
    changes.
    """

    ids: tuple[str, ...] = ()
    nth: tuple[dict[str, Any], ...] = ()
    max_children: int | None = None
    beam: bool = False

    def resolve(self, by_id: dict[str, Program], nth: list[Program | None]) -> Program | None:
        """Pick the parent from what the flight found."""
        for index, pid in enumerate(self.ids):
            program = by_id.get(pid)
            if program is None:
                continue
            if index == 0 and self.max_children is not None and \
                    program.children_count >= self.max_children and len(self.ids) > 1:
                continue
            return program
        return next((program for program in nth if program is not None), None)


def _random_in(island: IslandStats, ctx: PlanContext) -> dict[str, Any]:
    """An indexed lookup of a uniformly random correct program of the island."""
    return dict(island=island.island_idx, correct=True, order="score", descending=True,
                offset=int(ctx.rng.integers(max(1, island.correct))))


def best_or_random(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    """The best program when it lives on the island, else a random correct one there."""
    best = ctx.state.best
    if best is not None and best.correct and best.island_idx == island.island_idx:
        return ParentPlan(ids=(best.id,))
    if island.correct <= 0:
        return ParentPlan()
    return ParentPlan(nth=(_random_in(island, ctx),))


def _weighted(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    members = ctx.members(island.island_idx)
    if not members:
        return best_or_random(ctx, island)
    probabilities = weighted_parent_probabilities(
        [m.combined_score for m in members], [m.children_count for m in members],
        ctx.config.parent_selection_lambda,
    )
    return ParentPlan(ids=(members[choose(ctx.rng, probabilities)].id,))


def _power_law(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    alpha = ctx.config.exploitation_alpha
    members = sorted(ctx.members(island.island_idx), key=lambda m: -(m.combined_score or 0.0))
    if members:
        rank = choose(ctx.rng, power_law_probabilities(len(members), alpha))
        return ParentPlan(ids=(members[rank].id,))
    if island.correct > 0:
        rank = choose(ctx.rng, power_law_probabilities(island.correct, alpha))
        return ParentPlan(nth=(dict(island=island.island_idx, correct=True, order="score",
                                    descending=True, offset=rank),))
    return best_or_random(ctx, island)


def _beam_search(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    beam = ctx.state.metadata.get("beam_search_parent_id")
    best = ctx.state.best
    ids = tuple(dict.fromkeys(pid for pid in (beam, best.id if best else None) if pid))
    return ParentPlan(ids=ids, max_children=ctx.config.num_beams, beam=True)


def _best_of_n(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    return ParentPlan(nth=(
        dict(island=island.island_idx, correct=True, order="id", descending=False,
             generation=0),
        dict(island=island.island_idx, correct=True, order="generation", descending=False),
    ))


def _sequential(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    return ParentPlan(nth=(
        dict(island=island.island_idx, correct=True, order="generation", descending=True),
        dict(island=island.island_idx, correct=None, order="generation", descending=True),
    ))


_STRATEGIES = {
    "weighted": _weighted,
    "power_law": _power_law,
    "beam_search": _beam_search,
    "best_of_n": _best_of_n,
    "sequential": _sequential,
}


def plan_parent(ctx: PlanContext, island: IslandStats) -> ParentPlan:
    """The lookups naming a parent on ``island`` with the configured strategy."""
    return _STRATEGIES[ctx.config.parent_selection_strategy](ctx, island)
