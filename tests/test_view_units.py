"""The view's pure parts: the score series and its buckets, diffs, figure geometry."""

from __future__ import annotations

import random

from genesis.view.diffs import metric_rows, side_by_side, stored_diff, unified
from genesis.view.queries import ProgramRow
from genesis.view.scores import ScoreSeries
from genesis.view.svg import bars, plot_figure, tree


def _rows(count: int, start: int = 1, seed: int = 1) -> list[ProgramRow]:
    rng = random.Random(seed)
    return [ProgramRow(seq, f"p{seq}", None, seq % 3, seq // 10,
                       None if seq % 97 == 0 else rng.random() + seq / 1000,
                       rng.random() < 0.7, 0, 1000.0 + seq) for seq in range(start, start + count)]


def test_the_series_keeps_each_program_once_and_buckets_add_up() -> None:
    series = ScoreSeries()
    rows = _rows(5000)
    series.extend(rows[:3000])
    series.extend(rows[2000:])  # overlapping rows are not counted twice
    assert len(series) == 5000 and series.last_seq == 5000
    scored = sum(r.score is not None for r in rows)
    points = series.plot(max_points=10_000)
    assert points.mode == "points" and len(points.marks) == scored == points.programs
    assert points.unscored == 5000 - scored
    buckets = series.plot(max_points=300)
    assert buckets.mode == "buckets" and 0 < len(buckets.marks) <= 300
    assert sum(m.count for m in buckets.marks) == scored
    for island in (0, 1, 2):
        assert sum(m.count for m in buckets.marks if m.island == island) == sum(
            r.score is not None and r.island == island for r in rows)
    best = [score for _, score in buckets.best]
    assert best == sorted(best)
    expected = max(r.score for r in rows if r.correct and r.score is not None)
    assert best[-1] == expected


def test_rate_counts_programs_per_minute() -> None:
    series = ScoreSeries()
    now = 10_000.0
    series.extend([ProgramRow(i + 1, f"p{i}", None, 0, 0, 1.0, True, 0, now - 30 * i)
                   for i in range(30)])  # one every 30 s over the last 15 minutes
    counts = series.rate(now, minutes=10)
    assert len(counts) == 10 and sum(counts) == 20 and counts[-1] == 2


def test_diffs_and_metric_rows() -> None:
    lines = unified("a\nb\nc\n", "a\nB\nc\nd\n")
    kinds = [line.kind for line in lines]
    assert kinds[:3] == ["file", "file", "hunk"] and kinds.count("add") == 2
    assert [line.kind for line in stored_diff("@@ -1 +1 @@\n-x\n+y")] == ["hunk", "del", "add"]
    pairs = side_by_side("a\nb\nc", "a\nc\nd")
    assert [p.kind for p in pairs] == ["same", "del", "same", "add"]
    rows = metric_rows({"x": 1, "s": "a", "ok": True}, {"x": 3.5, "ok": False})
    assert rows == [("ok", True, False, None), ("s", "a", None, None), ("x", 1, 3.5, 2.5)]


def test_figures_stay_inside_their_box() -> None:
    series = ScoreSeries()
    series.extend(_rows(400))
    figure = plot_figure(series.plot())
    assert all(figure.left <= d.x <= figure.right and figure.top <= d.y <= figure.bottom
               for d in figure.dots)
    assert figure.best and figure.x_ticks and figure.y_ticks
    assert [b.count for b in bars([0, 4, 2])] == [0, 4, 2]
    chain, children = _rows(3), _rows(8, start=10)
    drawn = tree(chain, children)
    assert len(drawn.nodes) == 11 and len(drawn.edges) == 2 + 8
    assert all(0 < n.x < drawn.width and 0 < n.y < drawn.height for n in drawn.nodes)
