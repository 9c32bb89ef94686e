"""Inspirations shown to the LLM next to the parent: archive picks and the archive's top-k.

Archive inspirations, in order: the best program (if correct, and on the parent's island
when ``enforce_island_separation``), the island's elites (``elite_selection_ratio``), random
members of the island's archive, then — only without island separation — random members
of the whole archive. Top-k: the best archive members (of the parent's island when
separation is enforced) other than the parent and the archive inspirations. Everything is
chosen from the archive's summaries, which hold at most ``archive_size`` programs, so the
choice needs no query: the engine fetches the chosen programs with the parent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genesis.database.config import DatabaseConfig
from genesis.database.protocol import ProgramSummary, SelectionState
from genesis.database.selection import num_elites

__all__ = ["Drawn", "draw_inspirations", "plan_inspirations"]

Drawn = tuple[list[str], list[str]]  # ids of (archive inspirations, top-k inspirations)


def _by_score(members: list[ProgramSummary]) -> list[ProgramSummary]:
    return sorted(members, key=lambda m: (-(m.combined_score if m.combined_score is not None
                                            else -np.inf), m.id))


def _shuffled(members: list[ProgramSummary], rng: np.random.Generator
              ) -> list[ProgramSummary]:
    return [members[int(i)] for i in rng.permutation(len(members))]


def plan_inspirations(
    parent_id: str,
    island: int | None,
    config: DatabaseConfig,
    rng: np.random.Generator,
    best: ProgramSummary | None,
    archive: Sequence[ProgramSummary],
) -> Drawn:
    """Return the ids of (archive inspirations, top-k inspirations) for a parent.

    ``archive`` is the archive's correct members; ``island`` is the parent's.
    """
    separate = config.enforce_island_separation
    local = [m for m in archive if island is not None and m.island_idx == island]
    chosen: list[str] = []
    taken = {parent_id}

    def take(candidates: list[ProgramSummary], limit: int) -> None:
        for member in candidates:
            if len(chosen) >= limit:
                return
            if member.id not in taken:
                chosen.append(member.id)
                taken.add(member.id)

    n = config.num_archive_inspirations
    if n > 0:
        if best is not None and best.correct and best.id not in taken and \
                (not separate or best.island_idx == island):
            chosen.append(best.id)
            taken.add(best.id)
        elites = num_elites(n, config.elite_selection_ratio)
        if elites > 0 and island is not None:
            take(_by_score(local)[: elites + len(taken)], n)
        take(_shuffled(local, rng), n)
        if len(chosen) < n and not separate:
            take(_shuffled(list(archive), rng), n)
    k = config.num_top_k_inspirations
    top: list[str] = []
    if k > 0 and not (separate and island is None):
        pool = local if separate else list(archive)
        top = [m.id for m in _by_score(pool) if m.id not in taken][:k]
    return chosen, top


def draw_inspirations(parent_id: str, island: int | None, state: SelectionState,
                      config: DatabaseConfig, rng: np.random.Generator) -> Drawn:
    """Draw a parent's inspirations from the archive and best program of ``state``."""
    members = [m for m in state.archive if m.correct]
    return plan_inspirations(parent_id, island, config, rng, state.best, members)
