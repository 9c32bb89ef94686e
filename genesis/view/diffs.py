"""Code diffs for the program and compare pages: unified lines and side-by-side rows."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

__all__ = ["Line", "Pair", "metric_rows", "side_by_side", "stored_diff", "unified"]


@dataclass(frozen=True)
class Line:
    """A line of a unified diff: ``kind`` is 'file', 'hunk', 'add', 'del' or 'same'."""

    kind: str
    text: str


@dataclass(frozen=True)
class Pair:
    """A row of a side-by-side diff: line numbers and texts (None where a side has none)."""

    kind: str  # 'same', 'change', 'add', 'del'
    left_no: int | None
    left: str | None
    right_no: int | None
    right: str | None


def _classify(text: str) -> Line:
    if text.startswith(("---", "+++")):
        return Line("file", text)
    if text.startswith("@@"):
        return Line("hunk", text)
    kind = {"+": "add", "-": "del"}.get(text[:1], "same")
    return Line(kind, text)


def unified(old: str, new: str, old_name: str = "parent", new_name: str = "program",
            context: int = 3) -> list[Line]:
    """Return the unified diff from ``old`` to ``new``, one classified line each."""
    return [_classify(text) for text in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, n=context, lineterm="")]


def stored_diff(text: str) -> list[Line]:
    """Classify the lines of a diff stored with the program (shown when its parent is gone)."""
    return [_classify(line) for line in (text or "").splitlines()]


def side_by_side(left: str, right: str) -> list[Pair]:
    """Return aligned rows of two texts, changed lines side by side."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[Pair] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [Pair("same", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k])
                     for k in range(i2 - i1)]
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            li, rj = i1 + k, j1 + k
            has_left, has_right = li < i2, rj < j2
            kind = "change" if has_left and has_right else "del" if has_left else "add"
            rows.append(Pair(kind, li + 1 if has_left else None, a[li] if has_left else None,
                             rj + 1 if has_right else None, b[rj] if has_right else None))
    return rows


def metric_rows(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """Return (name, left value, right value, right - left when both are numbers) rows."""
    rows = []
    for name in sorted(set(left) | set(right), key=str):
        a, b = left.get(name), right.get(name)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        rows.append((name, a, b, b - a if numbers else None))
    return rows
