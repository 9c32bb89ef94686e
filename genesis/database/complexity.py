"""Static code metrics for ``program.complexity`` and ``metadata["code_analysis_metrics"]``.

The numbers are ShinkaEvolve's, so that the same code gets the same metrics whichever
database stored it:

* **Python**: radon's cyclomatic complexity (sum and mean over its blocks), Halstead
  volume, difficulty and effort of the whole module, and its raw counts (``loc``, ``lloc``,
  comments); the nesting depth counts ``if``/``for``/``while``/``with``/``try``/``def``/
  ``async def``. The source is parsed once (a cached tree, :func:`genesis.parsing.parse_python`)
  and the tree is handed to radon's visitors. Code that does not parse is measured as C.
* **C, C++, CUDA, Go, Rust**: decision keywords counted by regex (``if``, ``else``, ``while``,
  ``for``, ``switch``, ``case``, ``catch``), brace depth as nesting, and a volume estimated
  from the logical lines.
* **Anything else**: non-blank lines only.

Formulas (``log2``, as ShinkaEvolve writes them):
``maintainability_index = 171 - 5.2 log2(volume) - 0.23 cc - 16.2 log2(loc)`` and
``complexity_score = min(1, 0.4 cc/10 + 0.4 log2(volume+1)/10 + 0.1 log2(loc+1)/10
+ 0.1 depth/5)``, rounded to 3 decimals (each term capped at 1 for C-like code).

``analyze_code_metrics`` never raises and returns exactly the keys of ``METRIC_KEYS``.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

from radon.complexity import cc_visit_ast
from radon.metrics import h_visit_ast
from radon.raw import analyze

from genesis.parsing import parse_python

__all__ = ["METRIC_KEYS", "analyze_code_metrics"]

METRIC_KEYS = (
    "cyclomatic_complexity",
    "average_cyclomatic_complexity",
    "halstead_volume",
    "halstead_difficulty",
    "halstead_effort",
    "lines_of_code",
    "logical_lines_of_code",
    "comments",
    "maintainability_index",
    "max_nesting_depth",
    "complexity_score",
)
C_LIKE = frozenset({"cpp", "c", "cuda", "c++", "go", "golang", "rust"})
_NESTING_NODES = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef,
                  ast.AsyncFunctionDef)
_C_DECISIONS = re.compile(r"\bif\b|\belse\b|\bwhile\b|\bfor\b|\bswitch\b|\bcase\b|\bcatch\b"
                          r"|\b\?\b", re.IGNORECASE)
_C_COMMENT_START = ("//", "/*")


def _log2(value: float) -> float:
    return math.log2(value) if value > 0 else 0.0


def _score(cc: float, volume: float, loc: int, depth: int, cap: bool) -> float:
    terms = (cc / 10, math.log2(volume + 1) / 10, math.log2(loc + 1) / 10, depth / 5)
    if cap:
        terms = tuple(min(term, 1.0) for term in terms)
    total = 0.4 * terms[0] + 0.4 * terms[1] + 0.1 * terms[2] + 0.1 * terms[3]
    return round(min(total, 1.0), 3)


def _nesting_depth(tree: ast.AST) -> int:
    """Deepest chain of nested blocks (iterative: deep code cannot overflow the stack)."""
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _NESTING_NODES):
            depth += 1
            deepest = max(deepest, depth)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return deepest


def _python_metrics(code: str) -> dict[str, Any]:
    tree = parse_python(code)
    blocks = cc_visit_ast(tree)
    total_cc = sum(block.complexity for block in blocks)
    halstead = h_visit_ast(tree).total
    volume = halstead.volume if halstead else 1
    raw = analyze(code)
    loc = raw.loc
    depth = _nesting_depth(tree)
    return {
        "cyclomatic_complexity": total_cc,
        "average_cyclomatic_complexity": total_cc / len(blocks) if blocks else 0,
        "halstead_volume": volume,
        "halstead_difficulty": halstead.difficulty if halstead else 0,
        "halstead_effort": halstead.effort if halstead else 0,
        "lines_of_code": loc,
        "logical_lines_of_code": raw.lloc,
        "comments": raw.comments,
        "maintainability_index": 171 - 5.2 * _log2(volume) - 0.23 * total_cc
        - 16.2 * _log2(loc),
        "max_nesting_depth": depth,
        "complexity_score": _score(total_cc, volume, loc, depth, cap=False),
    }


def _c_like_metrics(code: str) -> dict[str, Any]:
    lines = code.split("\n")
    loc = len(lines)
    comments = lloc = 0
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(_C_COMMENT_START) or stripped.endswith("*/"):
            comments += 1
        else:
            lloc += 1
    cc = 1 + len(_C_DECISIONS.findall(code))
    depth = deepest = 0
    for char in code:
        if char == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "}":
            depth = max(0, depth - 1)
    volume = max(1, lloc * math.log2(max(1, cc)))
    mi = 171 - 5.2 * math.log2(max(1, volume)) - 0.23 * cc - 16.2 * math.log2(max(1, loc))
    return {
        "cyclomatic_complexity": cc,
        "average_cyclomatic_complexity": cc,
        "halstead_volume": volume,
        "halstead_difficulty": 1.0,
        "halstead_effort": volume,
        "lines_of_code": loc,
        "logical_lines_of_code": lloc,
        "comments": comments,
        "maintainability_index": max(0, mi),
        "max_nesting_depth": deepest,
        "complexity_score": _score(cc, volume, loc, deepest, cap=True),
    }


def _line_metrics(code: str) -> dict[str, Any]:
    loc = sum(1 for line in code.split("\n") if line.strip())
    return {
        "cyclomatic_complexity": 1,
        "average_cyclomatic_complexity": 1,
        "halstead_volume": max(1, loc),
        "halstead_difficulty": 1.0,
        "halstead_effort": max(1, loc),
        "lines_of_code": loc,
        "logical_lines_of_code": loc,
        "comments": 0,
        "maintainability_index": 100.0,
        "max_nesting_depth": 1,
        "complexity_score": round(min(math.log2(max(1, loc)) / 10, 1.0), 3),
    }


def analyze_code_metrics(code: str, language: str = "python") -> dict[str, Any]:
    """Return the code metrics of ``code`` written in ``language`` (never raises)."""
    if not isinstance(code, str):
        code = code.decode("utf-8", "replace") if isinstance(code, bytes) else str(code or "")
    language = str(language or "python").lower()
    if language == "python":
        try:
            return _python_metrics(code)
        except Exception:  # unparsable (or untokenizable) Python is measured as C, as before
            return _c_like_metrics(code)
    if language in C_LIKE:
        return _c_like_metrics(code)
    return _line_metrics(code)
