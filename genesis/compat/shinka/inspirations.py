"""``shinka.database.inspirations``: ordering sampled inspirations for a prompt.

ShinkaEvolve's prompt sampler merges the archive and top-k inspirations it was given and
orders them so that the strongest come last in the prompt. Sampling itself is the engine's
(``sample()``); only this ordering step is ShinkaEvolve's own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["InspirationContextBuilder"]

log = logging.getLogger(__name__)
SortOrder = Literal["ascending", "chronological", "none"]


def _score(program: Any) -> float:
    """The combined score, else the mean public metric, else minus infinity."""
    if program.combined_score is not None:
        return program.combined_score
    metrics = program.public_metrics or {}
    if metrics:
        return sum(metrics.values()) / len(metrics)
    return -math.inf


class InspirationContextBuilder:
    """Merge inspirations (first occurrence of each id kept) and order them for a prompt.

    ``sort_order``: ``"ascending"`` by score (best last), ``"chronological"`` by generation
    (newest last), ``"none"`` as given.
    """

    def __init__(self, sort_order: SortOrder = "ascending") -> None:
        self.sort_order = sort_order

    def build_context(
        self, archive_inspirations: Sequence[Any], top_k_inspirations: Sequence[Any]
    ) -> list[Any]:
        """Return the merged, de-duplicated and ordered inspirations."""
        seen: set[str] = set()
        unique = []
        for program in [*archive_inspirations, *top_k_inspirations]:
            if program.id not in seen:
                seen.add(program.id)
                unique.append(program)
        if self.sort_order == "ascending":
            unique.sort(key=_score)
        elif self.sort_order == "chronological":
            unique.sort(key=lambda program: program.generation or 0)
        if unique:
            log.info("built context: %d programs (%s)", len(unique), self.sort_order)
        return unique
