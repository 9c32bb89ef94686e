"""Unit tests of the archive policy (pure functions)."""

from __future__ import annotations

import numpy as np

from genesis.database import Program
from genesis.database.archive import (
    Contender,
    choose_victim,
    criterion_value,
    is_better,
    most_similar,
)

SIMPLE = {"combined_score": 1.0}


def c(pid: str, score: float | None, ts: float = 0.0, correct: bool = True, **values: float):
    """A contender."""
    return Contender(pid, correct, score, ts, values)


def test_is_better_order() -> None:
    assert is_better(c("a", 0.1), c("b", 0.9, correct=False))
    assert is_better(c("a", 0.5), c("b", 0.4))
    assert is_better(c("a", 0.5, ts=2), c("b", 0.5, ts=1))
    assert is_better(c("a", 0.0), c("b", None))
    assert not is_better(c("a", 0.5, ts=1), c("b", 0.5, ts=1))


def test_fitness_replaces_the_worst_only_when_better() -> None:
    members = [c("a", 0.5), c("b", 0.2, ts=5), c("c", 0.2, ts=1), c("d", 0.9)]
    assert choose_victim(members, c("new", 0.3), SIMPLE) == "c"  # oldest of the worst
    assert choose_victim(members, c("new", 0.1), SIMPLE) is None
    assert choose_victim([], c("new", 0.1), SIMPLE) is None


def test_crowding_competes_with_the_nearest() -> None:
    members = [c("a", 0.5), c("b", 0.2), c("d", 0.9)]
    assert choose_victim(members, c("new", 0.7), SIMPLE, nearest=members[2]) is None
    assert choose_victim(members, c("new", 0.7), SIMPLE, nearest=members[0]) == "a"


def test_multi_criteria_ranks() -> None:
    criteria = {"combined_score": 1.0, "loc": -1.0}
    members = [c("short_good", 0.9, loc=10, combined_score=0.9),
               c("long_bad", 0.1, loc=500, combined_score=0.1),
               c("mid", 0.5, loc=100, combined_score=0.5)]
    newcomer = c("new", 0.6, loc=50, combined_score=0.6)
    assert choose_victim(members, newcomer, criteria) == "long_bad"
    worse = c("new", 0.05, loc=900, combined_score=0.05)
    assert choose_victim(members, worse, criteria) is None


def test_criterion_values_come_from_code_metrics() -> None:
    program = Program(id="p", code="a\nb\nc", combined_score=0.4,
                      metadata={"code_analysis_metrics": {"lines_of_code": 42,
                                                          "cyclomatic_complexity": 7}})
    assert criterion_value(program, "combined_score") == 0.4
    assert criterion_value(program, "loc") == 42
    assert criterion_value(program, "complexity") == 7
    assert criterion_value(program, "lloc") == 3  # falls back to the line count
    assert criterion_value(program, "maintainability") == 100.0
    assert Contender.of(program, {"loc": -1.0}).values == {"loc": 42.0}


def test_most_similar_uses_cosine_and_ignores_other_lengths() -> None:
    vectors = {"x": np.array([1.0, 0.0]), "y": np.array([0.6, 0.8]),
               "z": np.array([1.0, 1.0, 1.0]), "zero": np.zeros(2)}
    assert most_similar([0.5, 0.7], vectors) == "y"
    assert most_similar([3.0, 0.1], vectors) == "x"
    assert most_similar([0.0, 0.0], vectors) is None
