"""Unit tests of the selection maths, including distribution checks of the draws."""

from __future__ import annotations

import numpy as np
import pytest

from genesis.database.protocol import IslandStats
from genesis.database.selection import (
    choose,
    island_probabilities,
    num_elites,
    num_migrants,
    power_law_probabilities,
    sigmoid,
    weighted_parent_probabilities,
)
from tests.stats import assert_matches, chi_square, critical_value

DRAWS = 5000


def draw_counts(probabilities: np.ndarray, seed: int = 3) -> list[int]:
    """Draw DRAWS indices through ``choose`` and count them."""
    rng = np.random.default_rng(seed)
    counts = [0] * len(probabilities)
    for _ in range(DRAWS):
        counts[choose(rng, probabilities)] += 1
    return counts


def test_sigmoid_is_stable_and_symmetric() -> None:
    x = np.array([-1e6, -30.0, 0.0, 30.0, 1e6])
    y = sigmoid(x)
    assert np.all(np.isfinite(y))
    assert y[2] == 0.5 and y[0] == 0.0 and y[-1] == 1.0
    assert np.allclose(sigmoid(-x), 1 - y)


def test_weighted_probabilities_follow_the_formula() -> None:
    scores = [0.2, 0.5, 0.9, 0.5]
    children = [0, 3, 1, 0]
    lam = 1.0
    p = weighted_parent_probabilities(scores, children, lam)
    median = np.median(scores)
    mad = np.median(np.abs(np.array(scores) - median))
    raw = 1 / (1 + np.exp(-lam * (np.array(scores) - median) / mad)) / (1 + np.array(children))
    assert np.allclose(p, raw / raw.sum())
    assert p[3] > p[1] and p[2] > p[0]  # fewer children wins at equal score


def test_weighted_probabilities_are_scale_free_and_robust() -> None:
    base = weighted_parent_probabilities([1, 2, 3], [0, 0, 0], 5.0)
    scaled = weighted_parent_probabilities([100, 200, 300], [0, 0, 0], 5.0)
    assert np.allclose(base, scaled)
    flat = weighted_parent_probabilities([0.7, 0.7, 0.7], [0, 1, 3], 10.0)
    assert np.allclose(flat, np.array([1, 1 / 2, 1 / 4]) / 1.75)
    assert np.allclose(weighted_parent_probabilities([None, 1.0], [0, 0], 1.0).sum(), 1.0)


def test_power_law_probabilities() -> None:
    assert np.allclose(power_law_probabilities(4, 0.0), 0.25)
    p = power_law_probabilities(3, 1.0)
    assert np.allclose(p, np.array([1, 1 / 2, 1 / 3]) / (11 / 6))
    assert power_law_probabilities(5, 2.0)[0] > 0.6
    with pytest.raises(ValueError):
        power_law_probabilities(0, 1.0)


def islands(*rows: tuple[int, int, float | None]) -> list[IslandStats]:
    """Island stats from (correct, programs, best) rows."""
    return [IslandStats(i, programs, correct, best)
            for i, (correct, programs, best) in enumerate(rows)]


def test_island_strategies() -> None:
    stats = islands((4, 10, 0.5), (2, 3, 1.5), (2, 8, None))
    assert np.allclose(island_probabilities("uniform", stats), 1 / 3)
    assert np.allclose(island_probabilities("equal", stats), [0, 0.5, 0.5])
    soft = np.exp([0.5, 1.5, 0.0])
    assert np.allclose(island_probabilities("proportional", stats), soft / soft.sum())
    weights = np.array([0.5 / 4, 1.5 / 2, 0.0])
    assert np.allclose(island_probabilities("weighted", stats), weights / weights.sum())
    negative = islands((1, 1, -2.0), (1, 1, -1.0))
    assert np.allclose(island_probabilities("weighted", negative), 0.5)
    big = islands((1, 1, 1e6), (1, 1, 1e6 - 1))
    assert np.all(np.isfinite(island_probabilities("proportional", big)))
    with pytest.raises(ValueError):
        island_probabilities("random", stats)


@pytest.mark.parametrize(
    "probabilities",
    [
        weighted_parent_probabilities([0.1, 0.4, 0.5, 0.8, 0.3], [0, 2, 1, 5, 0], 3.0),
        power_law_probabilities(6, 1.2),
        island_probabilities("proportional", islands((1, 1, 0.2), (1, 1, 1.0), (1, 1, 0.7))),
        island_probabilities("equal", islands((3, 3, 0.2), (1, 1, 1.0), (1, 4, 0.7))),
    ],
    ids=["weighted", "power_law", "proportional", "equal"],
)
def test_draws_match_the_formula(probabilities: np.ndarray) -> None:
    assert_matches(draw_counts(probabilities), probabilities)


def test_chi_square_detects_a_wrong_distribution() -> None:
    counts = draw_counts(np.array([0.5, 0.3, 0.2]))
    assert chi_square(counts, [1 / 3] * 3) > critical_value(2)


def test_counts() -> None:
    assert num_elites(5, 0.3) == 1 and num_elites(1, 0.3) == 0
    assert num_migrants(2, 0.0) == 1 and num_migrants(100, 0.15) == 15
