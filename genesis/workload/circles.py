"""The circle-packing problem: 26 circles in the unit square, maximise the sum of radii."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_CIRCLES = 26
TOLERANCE = 1e-9
ENTRY_POINT = "construct_packing"
_MAX_REPORTED = 3

INITIAL_PROGRAM = '''\
"""Pack 26 circles into the unit square so that the sum of their radii is maximal."""

import numpy as np

N_CIRCLES = 26


def wall_distances(centers):
    """Distance from each centre to the nearest side of the unit square."""
    return np.minimum(centers, 1.0 - centers).min(axis=1)


def pairwise_distances(centers):
    """Matrix of distances between centres, with infinity on the diagonal."""
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    return dist


def place_centers():
    """One circle in the middle, surrounded by two concentric rings."""
    inner_count = 8
    inner_radius = 0.1
    outer_radius = 0.2
    outer_count = N_CIRCLES - 1 - inner_count
    points = [(0.5, 0.5)]
    for count, ring in ((inner_count, inner_radius), (outer_count, outer_radius)):
        for k in range(count):
            angle = 2.0 * np.pi * k / count
            points.append((0.5 + ring * np.cos(angle), 0.5 + ring * np.sin(angle)))
    return np.clip(np.array(points), 0.01, 0.99)


def compute_radii(centers):
    """Shrink every circle to half the gap to its nearest neighbour, or to the wall."""
    nearest = pairwise_distances(centers).min(axis=1)
    return np.maximum(np.minimum(wall_distances(centers), 0.5 * nearest), 0.0)


def construct_packing():
    """Return the circle centres, shape (26, 2), and radii, shape (26,)."""
    centers = place_centers()
    radii = compute_radii(centers)
    return centers, radii
'''


@dataclass(frozen=True)
class PackingScore:
    """Validity, score and diagnostics of one packing."""

    valid: bool
    score: float
    sum_radii: float
    num_circles: int
    min_radius: float
    max_radius: float
    max_overlap: float
    max_boundary_violation: float
    feedback: str

    @classmethod
    def invalid(cls, feedback: str, num_circles: int = 0) -> PackingScore:
        """A zero-score result for output that could not be checked geometrically."""
        return cls(False, 0.0, 0.0, num_circles, 0.0, 0.0, 0.0, 0.0, feedback)

    def metrics(self) -> dict[str, float]:
        """Numeric diagnostics as a flat dict of floats."""
        return {
            "num_circles": float(self.num_circles),
            "sum_radii": self.sum_radii,
            "min_radius": self.min_radius,
            "max_radius": self.max_radius,
            "max_overlap": self.max_overlap,
            "max_boundary_violation": self.max_boundary_violation,
        }


def score_result(result: object, n_circles: int = N_CIRCLES) -> PackingScore:
    """Score the raw return value of construct_packing(), expected (centers, radii)."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        kind = type(result).__name__
        size = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        return PackingScore.invalid(
            f"construct_packing() must return a pair (centers, radii); got {kind}{size}."
        )
    return score_packing(result[0], result[1], n_circles)


def score_packing(
    centers: Sequence[Sequence[float]] | np.ndarray,
    radii: Sequence[float] | np.ndarray,
    n_circles: int = N_CIRCLES,
) -> PackingScore:
    """Check a packing; the score is the sum of radii when valid and 0.0 otherwise."""
    try:
        c = np.asarray(centers, dtype=np.float64)
        r = np.asarray(radii, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        return PackingScore.invalid(
            f"centers and radii must be numeric arrays ({type(exc).__name__}: {exc})."
        )
    if c.shape != (n_circles, 2) or r.shape != (n_circles,):
        return PackingScore.invalid(
            f"Expected centers of shape ({n_circles}, 2) and radii of shape ({n_circles},); "
            f"got {c.shape} and {r.shape}.",
            num_circles=int(r.shape[0]) if r.ndim == 1 else 0,
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(r))):
        bad = np.flatnonzero(~np.isfinite(c).all(axis=1) | ~np.isfinite(r))
        return PackingScore.invalid(
            f"{bad.size} circle(s) have NaN or infinite centre/radius (indices {_indices(bad)}).",
            num_circles=n_circles,
        )
    with np.errstate(all="ignore"):  # huge finite values may overflow: still just invalid
        return _check_geometry(c, r)


def _indices(idx: np.ndarray) -> str:
    """Render the first few indices of an index array."""
    shown = ", ".join(str(int(i)) for i in idx[:_MAX_REPORTED])
    return shown + (", ..." if idx.size > _MAX_REPORTED else "")


def _check_geometry(c: np.ndarray, r: np.ndarray) -> PackingScore:
    """Geometric checks for finite arrays of the right shape."""
    n = r.shape[0]
    messages: list[str] = []
    negative = np.flatnonzero(r < 0)
    if negative.size:
        messages.append(
            f"{negative.size} circle(s) have a negative radius (indices {_indices(negative)})."
        )
    # Boundary: how far each circle sticks out of [0, 1]^2.
    out = np.maximum(r[:, None] - c, c + r[:, None] - 1.0).max(axis=1)
    outside = np.flatnonzero(out > TOLERANCE)
    if outside.size:
        worst = int(np.argmax(out))
        messages.append(
            f"{outside.size} circle(s) extend outside the unit square; worst is circle "
            f"{worst} (centre ({c[worst, 0]:.4g}, {c[worst, 1]:.4g}), radius {r[worst]:.4g}) "
            f"by {out[worst]:.3e}."
        )
    # Overlap: positive when two circles intersect.
    diff = c[:, None, :] - c[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=-1))
    overlap = r[:, None] + r[None, :] - dist
    iu, ju = np.triu_indices(n, k=1)
    pair_overlap = overlap[iu, ju]
    bad_pairs = np.flatnonzero(pair_overlap > TOLERANCE)
    if bad_pairs.size:
        order = bad_pairs[np.argsort(-pair_overlap[bad_pairs], kind="stable")][:_MAX_REPORTED]
        worst_pairs = "; ".join(
            f"circles {iu[k]} and {ju[k]} by {pair_overlap[k]:.3e}" for k in order
        )
        messages.append(f"{bad_pairs.size} pair(s) of circles overlap; worst: {worst_pairs}.")
    valid = not messages
    # Valid radii are at most 0.5 each, so the exact sum cannot overflow.
    total = math.fsum(r.tolist()) if valid else float(np.sum(r))
    if valid:
        feedback = f"Valid packing of {n} circles; sum of radii = {total:.6f}."
    else:
        feedback = "Invalid packing (score 0): " + " ".join(messages)
    return PackingScore(
        valid=valid,
        score=total if valid else 0.0,
        sum_radii=total,
        num_circles=n,
        min_radius=float(r.min()) if n else 0.0,
        max_radius=float(r.max()) if n else 0.0,
        max_overlap=float(pair_overlap.max(initial=0.0)),
        max_boundary_violation=float(out.max(initial=0.0)),
        feedback=feedback,
    )
