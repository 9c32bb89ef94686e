"""Scoring of circle packings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genesis.workload import INITIAL_PROGRAM, N_CIRCLES, PackingScore, score_packing, score_result


def grid_packing() -> tuple[np.ndarray, np.ndarray]:
    """A valid packing: a 5x5 grid of touching circles plus one small circle in a gap."""
    ticks = (np.arange(5) + 0.5) / 5
    centers = [(x, y) for y in ticks for x in ticks] + [(0.2, 0.2)]
    radii = [0.1] * 25 + [0.04]
    return np.array(centers), np.array(radii)


def test_valid_packing_scores_exactly_its_sum_of_radii() -> None:
    centers, radii = grid_packing()
    result = score_packing(centers, radii)
    assert result.valid
    assert result.score == math.fsum(radii.tolist())
    assert result.num_circles == N_CIRCLES
    assert result.min_radius == 0.04
    assert result.max_radius == 0.1
    assert "Valid" in result.feedback


def test_lists_are_accepted() -> None:
    centers, radii = grid_packing()
    assert score_packing(centers.tolist(), radii.tolist()).valid


def test_overlap_scores_zero_and_names_the_pair() -> None:
    centers, radii = grid_packing()
    radii[25] = 0.06  # the gap circle now overlaps its four neighbours
    result = score_packing(centers, radii)
    assert not result.valid
    assert result.score == 0.0
    assert result.max_overlap == pytest.approx(0.06 + 0.1 - math.sqrt(0.02))
    assert "4 pair(s) of circles overlap" in result.feedback
    assert "25" in result.feedback


def test_circle_outside_square_scores_zero() -> None:
    centers, radii = grid_packing()
    centers[0] = (0.05, 0.1)  # radius 0.1 sticks out on the left
    result = score_packing(centers, radii)
    assert not result.valid and result.score == 0.0
    assert "outside the unit square" in result.feedback
    assert "circle 0" in result.feedback
    assert result.max_boundary_violation == pytest.approx(0.05)


def test_tolerance_allows_touching_within_1e_9() -> None:
    centers, radii = grid_packing()
    radii[0] += 5e-10
    assert score_packing(centers, radii).valid
    radii[0] += 1e-8
    assert not score_packing(centers, radii).valid


@pytest.mark.parametrize(
    ("centers", "radii", "phrase"),
    [
        (np.full((25, 2), 0.5), np.zeros(25), "shape"),
        (np.full((26, 3), 0.5), np.zeros(26), "shape"),
        (np.full((26, 2), 0.5), np.full(26, np.nan), "NaN"),
        (np.full((26, 2), np.inf), np.zeros(26), "NaN or infinite"),
        (np.full((26, 2), 0.5), np.full(26, -0.1), "negative"),
        ([["a", "b"]] * 26, [0.0] * 26, "numeric"),
    ],
)
def test_malformed_packings_score_zero(centers: object, radii: object, phrase: str) -> None:
    result = score_packing(centers, radii)  # type: ignore[arg-type]
    assert not result.valid
    assert result.score == 0.0
    assert phrase in result.feedback


@pytest.mark.parametrize("value", [None, 3, (1, 2, 3), "ab"])
def test_score_result_requires_a_pair(value: object) -> None:
    result = score_result(value)
    assert not result.valid
    assert "pair" in result.feedback


def test_metrics_are_floats() -> None:
    metrics = score_packing(*grid_packing()).metrics()
    assert set(metrics) == {
        "num_circles",
        "sum_radii",
        "min_radius",
        "max_radius",
        "max_overlap",
        "max_boundary_violation",
    }
    assert all(isinstance(v, float) for v in metrics.values())
    assert PackingScore.invalid("x").metrics()["sum_radii"] == 0.0


def test_initial_program_is_valid_in_process() -> None:
    namespace: dict[str, object] = {}
    exec(INITIAL_PROGRAM, namespace)
    result = score_result(namespace["construct_packing"]())  # type: ignore[operator]
    assert result.valid
    assert 0.9 < result.score < 1.0
