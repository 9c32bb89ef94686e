"""Maintenance that commutes: offering programs to the archive and to the best program.

Under the default policy (fitness archive on ``combined_score``, no dynamic islands) the
archive after any sequence of offers is the best ``archive_size`` of everything offered
(correct programs, ordered by score and then by age), the best program is the best of
everything offered, and ``best_score_generation`` the first generation that reached the
best score: the result does not depend on the order in which concurrent workers' offers
arrive. Such maintenance needs no compare-and-set against the selection
state: the store applies an :class:`Offer` in one flight, comparing with what is stored
on the server, and concurrent workers never refuse each other's decisions. Migrations,
dynamic islands and other archive policies keep the optimistic path
(:mod:`genesis.database.optimistic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genesis.database.archive import Contender, is_better
from genesis.database.config import DatabaseConfig
from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.maintenance import default_policy, due_migration
from genesis.database.program import Program
from genesis.database.protocol import SelectionState

__all__ = ["Offer", "commutes", "offer_of"]


@dataclass(frozen=True)
class Offer:
    """What a batch offers: archive candidates, and its best program if it has a score."""

    archive: tuple[str, ...]
    best: Program | None
    best_generation: int | None  # the first generation of the batch at ``best``'s score


def commutes(config: DatabaseConfig, programs: Sequence[Program],
             state: SelectionState | None) -> bool:
    """Whether maintaining ``programs`` is only offers: the default policy, and no migration
    due that ``state`` does not already show done (migrations only move forward)."""
    if not default_policy(config):
        return False
    stored = None if state is None else state.metadata.get(LAST_MIGRATION_KEY)
    done = float(stored) if stored not in (None, "") else -1.0
    return not any(due_migration(p, config) and p.generation > done for p in programs)


def offer_of(programs: Sequence[Program], config: DatabaseConfig) -> Offer:
    """The offer of a batch: its correct programs, and the best of those with a score."""
    correct = [p for p in programs if p.correct]
    archive = tuple(dict.fromkeys(p.id for p in correct)) if config.archive_size > 0 else ()
    scored = [p for p in correct if p.combined_score is not None]
    if not scored:
        return Offer(archive, None, None)
    best = scored[0]
    for program in scored[1:]:
        if is_better(Contender.of(program), Contender.of(best)):
            best = program
    top = max(p.combined_score for p in scored)  # type: ignore[type-var]
    first = min(p.generation for p in scored if p.combined_score == top)
    return Offer(archive, best, first)
