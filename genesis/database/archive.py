"""Archive policy: which member a correct newcomer replaces once the archive is full.

Pure functions over small records; the engine fetches the (bounded) archive and applies
the decision inside one serialised write transaction.

* ``fitness`` — the newcomer replaces the worst member if it is better.
* ``crowding`` — the newcomer replaces the member most similar to it (cosine of
  embeddings) if it is better; without embeddings it falls back to ``fitness``.

"Better" with the default criteria (``{"combined_score": 1.0}``) is ShinkaEvolve's rule:
correct beats incorrect, then the higher score, then the newer program. With several
weighted criteria each program gets, per criterion, its percentile rank within the archive
plus the newcomer (negative weights mean lower is better), and the weighted sum decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genesis.database.program import Program
from genesis.database.protocol import ProgramSummary

__all__ = ["Contender", "choose_victim", "criterion_value", "is_better", "most_similar"]


@dataclass(frozen=True)
class Contender:
    """An archive member or newcomer, with the values of the archive criteria."""

    id: str
    correct: bool
    combined_score: float | None
    timestamp: float
    values: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, item: Program | ProgramSummary,
           criteria: Mapping[str, float] | None = None) -> Contender:
        """Build a contender from a program (criterion values filled) or a summary."""
        values = {}
        if isinstance(item, Program) and criteria:
            values = {name: criterion_value(item, name) for name in criteria}
        return cls(item.id, bool(item.correct), item.combined_score, item.timestamp, values)


_METRIC_KEYS = {
    "loc": "lines_of_code",
    "lloc": "logical_lines_of_code",
    "complexity": "cyclomatic_complexity",
    "maintainability": "maintainability_index",
    "nesting": "max_nesting_depth",
}
_METRIC_DEFAULTS = {"complexity": 1.0, "maintainability": 100.0, "nesting": 1.0}


def criterion_value(program: Program, criterion: str) -> float:
    """Value of one archive criterion for a program (code metrics from its metadata)."""
    if criterion == "combined_score":
        return float(program.combined_score or 0.0)
    metrics: Any = (program.metadata or {}).get("code_analysis_metrics") or {}
    value = metrics.get(_METRIC_KEYS[criterion]) if isinstance(metrics, Mapping) else None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if criterion in ("loc", "lloc"):
        return float(len(program.code.split("\n")) if program.code else 1)
    return _METRIC_DEFAULTS[criterion]


def _score(item: Contender) -> float:
    return -math.inf if item.combined_score is None else item.combined_score


def is_better(a: Contender, b: Contender) -> bool:
    """ShinkaEvolve's comparison: correctness, then score, then the newer program."""
    if a.correct != b.correct:
        return a.correct
    if _score(a) != _score(b):
        return _score(a) > _score(b)
    return a.timestamp > b.timestamp


def _simple(criteria: Mapping[str, float]) -> bool:
    return list(criteria) == ["combined_score"] and criteria["combined_score"] > 0


def ranked_scores(items: Sequence[Contender], criteria: Mapping[str, float]) -> list[float]:
    """Weighted sum of per-criterion percentile ranks (share of items strictly worse)."""
    n = len(items)
    totals = np.zeros(n)
    for name, weight in criteria.items():
        values = np.array([item.values[name] for item in items])
        worse = values[None, :] < values[:, None] if weight > 0 else \
            values[None, :] > values[:, None]
        totals += abs(weight) * worse.sum(axis=1) / n
    return totals.tolist()


def _beats(candidate: Contender, member: Contender, ranks: Mapping[str, float]) -> bool:
    if candidate.correct != member.correct:
        return candidate.correct
    if ranks[candidate.id] != ranks[member.id]:
        return ranks[candidate.id] > ranks[member.id]
    return candidate.timestamp > member.timestamp


def choose_victim(
    members: Sequence[Contender],
    candidate: Contender,
    criteria: Mapping[str, float],
    nearest: Contender | None = None,
) -> str | None:
    """Return the id of the member the candidate replaces, or None if it does not get in.

    ``nearest`` (crowding) is the member the candidate competes with; without it the
    candidate competes with the worst member.
    """
    if not members:
        return None
    if _simple(criteria):
        rival = nearest or min(members, key=lambda m: (m.correct, _score(m), m.timestamp))
        return rival.id if is_better(candidate, rival) else None
    pool = [*members, candidate]
    ranks = dict(zip([m.id for m in pool], ranked_scores(pool, criteria), strict=True))
    rival = nearest or min(members, key=lambda m: (m.correct, ranks[m.id], m.timestamp))
    return rival.id if _beats(candidate, rival, ranks) else None


def most_similar(query: Sequence[float], vectors: Mapping[str, np.ndarray]) -> str | None:
    """Id of the vector with the highest cosine similarity to ``query`` (same length only)."""
    q = np.asarray(query, dtype=np.float64)
    q_norm = float(np.linalg.norm(q))
    if q_norm < 1e-12:
        return None
    best_id, best = None, -math.inf
    for pid, vector in vectors.items():
        norm = float(np.linalg.norm(vector))
        if len(vector) != len(q) or norm < 1e-12:
            continue
        similarity = float(vector @ q) / (norm * q_norm)
        if similarity > best:
            best_id, best = pid, similarity
    return best_id
