"""Geometry of the server-drawn SVG figures: the score plot, the rate bars, the lineage tree.

Functions here turn data into pixel positions; the templates draw them (and escape every
label), so no figure needs JavaScript or anything from the network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from genesis.view.queries import ProgramRow
from genesis.view.scores import Plot

__all__ = ["Bar", "Figure", "Node", "Tree", "bars", "plot_figure", "tree"]

WIDTH, HEIGHT = 760, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 14, 34


@dataclass(frozen=True)
class Dot:
    """A circle of the score plot."""

    x: float
    y: float
    r: float
    island: int
    correct: bool
    count: int
    seq: int | None
    title: str


@dataclass(frozen=True)
class Tick:
    """An axis tick: its position and label."""

    at: float
    label: str


@dataclass(frozen=True)
class Figure:
    """The score plot ready to draw."""

    width: int
    height: int
    dots: list[Dot]
    best: str  # polyline points
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    left: int
    right: int
    top: int
    bottom: int
    plot: Plot


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def plot_figure(plot: Plot, width: int = WIDTH, height: int = HEIGHT) -> Figure:
    """Place the plot's marks and best-so-far line in a ``width`` x ``height`` box."""
    g0, g1 = plot.generations
    s0, s1 = plot.scores
    if g1 <= g0:
        g0, g1 = g0 - 0.5, g1 + 0.5
    if s1 <= s0:
        s0, s1 = s0 - 0.5, s1 + 0.5
    inner_w, inner_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def x(g: float) -> float:
        return round(_LEFT + (g - g0) / (g1 - g0) * inner_w, 1)

    def y(s: float) -> float:
        return round(_TOP + (s1 - s) / (s1 - s0) * inner_h, 1)

    dots = []
    for m in plot.marks:
        if m.count == 1:
            title = f"generation {m.generation:.0f}, score {m.score:.4f}, island {m.island}"
            r = 3.0
        else:
            title = (f"{m.count} programs, generation ~{m.generation:.0f}, "
                     f"score ~{m.score:.4f}, island {m.island}")
            r = min(9.0, 2.0 + 1.1 * math.log2(m.count))
        if not m.correct:
            title += ", incorrect"
        dots.append(Dot(x(m.generation), y(m.score), r, m.island, m.correct, m.count, m.seq,
                        title))
    points: list[str] = []
    for i, (g, s) in enumerate(plot.best):
        points.append(f"{x(g)},{y(s)}")
        end = plot.best[i + 1][0] if i + 1 < len(plot.best) else plot.generations[1]
        points.append(f"{x(end)},{y(s)}")
    return Figure(width, height, dots, " ".join(points),
                  [Tick(x(t), _label(t)) for t in _ticks(g0, g1)],
                  [Tick(y(t), _label(t)) for t in _ticks(s0, s1)],
                  _LEFT, width - _RIGHT, _TOP, height - _BOTTOM, plot)


@dataclass(frozen=True)
class Bar:
    """A bar of the rate chart."""

    x: float
    y: float
    height: float
    count: int


def bars(counts: Sequence[int], width: int = 160, height: int = 36) -> list[Bar]:
    """Lay out per-minute counts as bars, oldest on the left."""
    top = max(counts, default=0) or 1
    step = width / max(1, len(counts))
    return [Bar(round(i * step, 1), round(height - c / top * height, 1),
                round(c / top * height, 1), c) for i, c in enumerate(counts)]


@dataclass(frozen=True)
class Node:
    """A program in the lineage tree."""

    row: ProgramRow
    x: float
    y: float
    role: str  # "ancestor", "focus" or "child"


@dataclass(frozen=True)
class Tree:
    """The lineage tree: nodes and the parent-child edges between them."""

    width: int
    height: int
    nodes: list[Node]
    edges: list[tuple[float, float, float, float]]


_ROW_H, _NODE_W, _PER_ROW = 64, 132, 6


def tree(chain: Sequence[ProgramRow], children: Sequence[ProgramRow]) -> Tree:
    """Lay out an ancestry (oldest first, the focus last) with the focus' children below."""
    width = max(_NODE_W * min(_PER_ROW, max(1, len(children))) + 40, 420)
    middle = width / 2
    nodes = [Node(row, middle, 32 + i * _ROW_H, "focus" if i == len(chain) - 1 else "ancestor")
             for i, row in enumerate(chain)]
    edges = [(a.x, a.y, b.x, b.y) for a, b in itertools.pairwise(nodes)]
    focus = nodes[-1] if nodes else None
    top = 32 + len(chain) * _ROW_H + 24
    for i, row in enumerate(children):
        in_row = min(_PER_ROW, len(children) - (i // _PER_ROW) * _PER_ROW)
        x = middle + (i % _PER_ROW - (in_row - 1) / 2) * _NODE_W
        node = Node(row, x, top + (i // _PER_ROW) * _ROW_H, "child")
        nodes.append(node)
        if focus is not None:
            edges.append((focus.x, focus.y, node.x, node.y))
    rows_of_children = math.ceil(len(children) / _PER_ROW)
    height = int(top + rows_of_children * _ROW_H) if children else int(top)
    return Tree(int(width), height, nodes, edges)
