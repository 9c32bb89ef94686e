"""Selection maths: pure functions turning scores and counts into probabilities.

Every random choice of the engine goes through these functions and a seeded
``numpy.random.Generator``, so a run with ``DatabaseConfig.seed`` set is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genesis.database.protocol import IslandStats

__all__ = [
    "choose",
    "island_probabilities",
    "num_elites",
    "num_migrants",
    "power_law_probabilities",
    "sigmoid",
    "weighted_parent_probabilities",
]

_MAD_FLOOR = 1e-6


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large positive and negative inputs."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def _normalise(weights: np.ndarray) -> np.ndarray:
    total = float(weights.sum())
    if not np.isfinite(total) or total <= 0.0:
        return np.full(len(weights), 1.0 / len(weights))
    return weights / total


def weighted_parent_probabilities(
    scores: Sequence[float | None], children: Sequence[int], lam: float
) -> np.ndarray:
    """p_i ~ sigmoid(lambda*(s_i - median)/MAD) / (1 + children_i); uniform if all are 0.

    MAD is the median absolute deviation of the scores (floored at 1e-6), which makes the
    sharpness lambda independent of the problem's score scale. Missing scores count as 0.
    """
    if len(scores) == 0:
        raise ValueError("no candidates to weigh")
    s = np.array([0.0 if v is None else float(v) for v in scores])
    median = float(np.median(s))
    mad = max(float(np.median(np.abs(s - median))), _MAD_FLOOR)
    novelty = 1.0 / (1.0 + np.asarray(children, dtype=np.float64))
    return _normalise(sigmoid(lam * (s - median) / mad) * novelty)


def power_law_probabilities(n: int, alpha: float) -> np.ndarray:
    """p_rank ~ rank**(-alpha) for ranks 1..n (best first); alpha = 0 is uniform."""
    if n <= 0:
        raise ValueError("no candidates to rank")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return _normalise(ranks ** (-float(alpha)))


def island_probabilities(
    strategy: str, islands: Sequence[IslandStats], temperature: float = 1.0
) -> np.ndarray:
    """Probabilities of choosing each island under an island-selection strategy.

    ``uniform``: equal. ``equal``: uniform over the islands with the fewest correct
    programs. ``proportional``: softmax of each island's best score at ``temperature``.
    ``weighted``: best score / number of correct programs (scores below 0 count as 0;
    uniform when every weight is 0).
    """
    n = len(islands)
    if n == 0:
        raise ValueError("no islands to choose from")
    best = np.array([0.0 if i.best_score is None else i.best_score for i in islands])
    correct = np.array([max(i.correct, 1) for i in islands], dtype=np.float64)
    if strategy == "uniform":
        return np.full(n, 1.0 / n)
    if strategy == "equal":
        counts = np.array([i.correct for i in islands])
        return _normalise((counts == counts.min()).astype(np.float64))
    if strategy == "proportional":
        logits = best / temperature
        return _normalise(np.exp(logits - logits.max()))
    if strategy == "weighted":
        return _normalise(np.clip(best, 0.0, None) / correct)
    raise ValueError(f"unknown island selection strategy {strategy!r}")


def choose(rng: np.random.Generator, probabilities: np.ndarray) -> int:
    """Draw one index according to ``probabilities``."""
    return int(rng.choice(len(probabilities), p=probabilities))


def num_elites(n: int, ratio: float) -> int:
    """Number of elite inspirations among ``n``."""
    return max(0, int(n * ratio))


def num_migrants(island_size: int, rate: float) -> int:
    """Number of programs an island sends away in one migration."""
    return max(1, int(island_size * rate))
