"""A chi-square goodness-of-fit check for the distribution tests (no SciPy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z_999 = 3.0902  # standard normal quantile for p = 0.999


def chi_square(observed: Sequence[int], probabilities: Sequence[float]) -> float:
    """Pearson's statistic of observed counts against expected probabilities."""
    total = sum(observed)
    return sum((o - total * p) ** 2 / (total * p)
               for o, p in zip(observed, probabilities, strict=True) if p > 0)


def critical_value(degrees: int, z: float = Z_999) -> float:
    """Upper chi-square quantile (Wilson-Hilferty approximation), p = 0.001 by default."""
    k = max(degrees, 1)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3


def assert_matches(observed: Sequence[int], probabilities: Sequence[float]) -> None:
    """Fail if the counts are implausible under the probabilities (p < 0.001)."""
    support = [p for p in probabilities if p > 0]
    statistic = chi_square(observed, probabilities)
    limit = critical_value(len(support) - 1)
    assert statistic < limit, (
        f"chi-square {statistic:.1f} >= {limit:.1f}: observed {list(observed)}, "
        f"expected {[round(sum(observed) * p, 1) for p in probabilities]}"
    )
    for o, p in zip(observed, probabilities, strict=True):
        if p == 0:
            assert o == 0, f"an outcome of probability 0 was drawn {o} times"
