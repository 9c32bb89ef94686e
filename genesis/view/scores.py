"""Every program's score by generation, kept in memory and downsampled for the plot.

A :class:`ScoreSeries` holds five small columns per program (generation, island, score,
correct, timestamp; about 30 bytes a program, 30 MB at a million). The view fills it once
by a keyset scan and then extends it with the rows each live update reads, so drawing the
plot or the rate never reads the table again. A plot of up to ``max_points`` programs
holds one point per program; a bigger one is binned into (generation, score, island)
buckets whose counts add up to the number of programs drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from genesis.view.queries import ProgramRow

__all__ = ["Mark", "Plot", "ScoreSeries"]

_NO_ISLAND = -1
_FINEST = (240, 120)  # (generation, score) bins of the finest bucketed plot
_MERGE = (1, 2, 3, 4, 6, 8, 12, 20, 40)  # coarser grids: cells merged per side


@dataclass(frozen=True)
class Mark:
    """One point of the plot: a program (``count`` 1, with its ``seq``) or a bucket."""

    generation: float
    score: float
    island: int
    correct: bool
    count: int
    seq: int | None = None


@dataclass(frozen=True)
class Plot:
    """The score-by-generation plot in data coordinates."""

    mode: str  # "points" or "buckets"
    programs: int  # programs drawn (those with a score)
    unscored: int
    marks: list[Mark]
    best: list[tuple[int, float]]  # best correct score so far, at each generation it rose
    generations: tuple[int, int]
    scores: tuple[float, float]
    islands: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Return the plot as a JSON-ready dict."""
        return {"mode": self.mode, "programs": self.programs, "unscored": self.unscored,
                "generations": list(self.generations), "scores": list(self.scores),
                "islands": self.islands, "best": [list(b) for b in self.best],
                "marks": [vars(m) for m in self.marks]}


class ScoreSeries:
    """The plot's columns of every program seen so far, in insertion order."""

    def __init__(self) -> None:
        self.last_seq = 0
        self._size = 0
        self._seq = np.zeros(0, np.int64)
        self._generation = np.zeros(0, np.float64)  # float: it is averaged and binned
        self._island = np.zeros(0, np.int64)
        self._score = np.zeros(0, np.float64)
        self._correct = np.zeros(0, np.int64)  # 0 or 1: it enters bucket keys
        self._timestamp = np.zeros(0, np.float64)
        self._best_by_generation: dict[int, float] = {}
        self._cache: tuple[tuple[int, int], Plot] | None = None

    def __len__(self) -> int:
        return self._size

    def _reserve(self, extra: int) -> None:
        needed = self._size + extra
        if needed <= len(self._seq):
            return
        capacity = max(needed, 2 * len(self._seq), 1024)
        for name in ("_seq", "_generation", "_island", "_score", "_correct", "_timestamp"):
            old = getattr(self, name)
            grown = np.zeros(capacity, old.dtype)
            grown[:self._size] = old[:self._size]
            setattr(self, name, grown)

    def extend(self, rows: Sequence[ProgramRow]) -> None:
        """Append rows newer than every row seen so far (older ones are ignored)."""
        rows = [r for r in rows if r.seq > self.last_seq]
        if not rows:
            return
        self._reserve(len(rows))
        start, end = self._size, self._size + len(rows)
        seq = [r.seq for r in rows]
        generation = [r.generation for r in rows]
        island = [r.island for r in rows]
        score = [r.score for r in rows]
        correct = [r.correct for r in rows]
        self._seq[start:end] = seq
        self._generation[start:end] = generation
        self._island[start:end] = [_NO_ISLAND if i is None else i for i in island]
        self._score[start:end] = [math.nan if s is None else s for s in score]
        self._correct[start:end] = correct
        self._timestamp[start:end] = [r.timestamp for r in rows]
        for g, s, ok in zip(generation, score, correct, strict=True):
            if ok and s is not None and s > self._best_by_generation.get(g, -math.inf):
                self._best_by_generation[g] = s
        self._size = end
        self.last_seq = int(seq[-1])

    def rate(self, now: float, minutes: int = 10) -> list[int]:
        """Programs added in each of the last ``minutes`` minutes, oldest minute first."""
        stamps = self._timestamp[:self._size]
        ages = (now - stamps[stamps > now - 60 * minutes]) // 60
        counts = np.bincount(ages.astype(np.int64).clip(0, minutes - 1), minlength=minutes)
        return [int(c) for c in counts[::-1]]

    def best_line(self) -> list[tuple[int, float]]:
        """The best correct score so far, at each generation where it rose."""
        line: list[tuple[int, float]] = []
        for generation in sorted(self._best_by_generation):
            score = self._best_by_generation[generation]
            if not line or score > line[-1][1]:
                line.append((generation, score))
        return line

    def plot(self, max_points: int = 2000) -> Plot:
        """Return the plot, with one mark per program or per bucket (memoised per size).

        Buckets are made coarser until there are at most ``max_points`` of them.
        """
        key = (self._size, max_points)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        n = self._size
        generation, score = self._generation[:n], self._score[:n]
        island, correct, seq = self._island[:n], self._correct[:n], self._seq[:n]
        scored = ~np.isnan(score)
        if not scored.all():
            generation, score, island, correct, seq = (
                a[scored] for a in (generation, score, island, correct, seq))
        if len(score):
            generations = (int(generation.min()), int(generation.max()))
            scores = (float(score.min()), float(score.max()))
        else:
            generations, scores = (0, 0), (0.0, 0.0)
        if len(score) <= max_points:
            marks = [Mark(float(g), float(s), int(i), bool(c), 1, int(q)) for g, s, i, c, q
                     in zip(generation, score, island, correct, seq, strict=True)]
            mode = "points"
        else:
            marks = _buckets(generation, score, island, correct, generations, scores, max_points)
            mode = "buckets"
        plot = Plot(mode, len(score), int(n - len(score)), marks, self.best_line(),
                    generations, scores, sorted({m.island for m in marks}))
        self._cache = (key, plot)
        return plot


def _bin(values: np.ndarray, low: float, high: float, count: int) -> np.ndarray:
    if high <= low:
        return np.zeros(len(values), np.int64)
    return ((values - low) * (count / (high - low))).astype(np.int64).clip(0, count - 1)


def _buckets(generation: np.ndarray, score: np.ndarray, island: np.ndarray,
             correct: np.ndarray, generations: tuple[int, int], scores: tuple[float, float],
             max_marks: int) -> list[Mark]:
    """Bin programs by (generation, score, island, correct); one mark per non-empty bin.

    Programs are binned once on the finest grid; coarser grids merge its non-empty cells,
    until at most ``max_marks`` remain.
    """
    span = generations[1] - generations[0] + 1
    columns = min(_FINEST[0], span)
    gx = _bin(generation, generations[0], generations[0] + span, columns)
    sy = _bin(score, scores[0], scores[1] + 1e-12 * max(1.0, abs(scores[1])), _FINEST[1])
    low, high = int(island.min()), int(island.max())
    if high - low < 64:  # island numbers are small: index them directly
        codes, island_index = np.arange(low, high + 1), island - low
    else:
        codes, island_index = np.unique(island, return_inverse=True)
    key = ((gx * _FINEST[1] + sy) * len(codes) + island_index) * 2 + correct
    size = columns * _FINEST[1] * len(codes) * 2
    all_counts = np.bincount(key, minlength=size)
    cells = np.flatnonzero(all_counts)
    counts = all_counts[cells]
    generation_sums = np.bincount(key, weights=generation, minlength=size)[cells]
    score_sums = np.bincount(key, weights=score, minlength=size)[cells]
    ok, rest = cells % 2, cells // 2
    isl, rest = rest % len(codes), rest // len(codes)
    cell_sy, cell_gx = rest % _FINEST[1], rest // _FINEST[1]
    for factor in _MERGE:
        merged = (((cell_gx // factor) * _FINEST[1] + cell_sy // factor) * len(codes) + isl) * 2 \
            + ok
        groups, inverse = np.unique(merged, return_inverse=True)
        if len(groups) <= max_marks or factor == _MERGE[-1]:
            break
    n = np.bincount(inverse, weights=counts)
    g = np.bincount(inverse, weights=generation_sums) / n
    s = np.bincount(inverse, weights=score_sums) / n
    return [Mark(gi, si, int(codes[(k // 2) % len(codes)]), bool(k % 2), int(ni))
            for gi, si, k, ni in zip(g.tolist(), s.tolist(), groups.tolist(), n.tolist(),
                                     strict=True)]
