"""Export's CSV lines are byte for byte what the csv module writes, for any row."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from genesis.ops.csv_lines import csv_lines

_CELLS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                   st.text(alphabet=st.sampled_from(list('ab ,"\r\n\t\'\\é\x00'))),
                   st.text())


def _reference(rows: list[list[Any]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue()


@given(st.lists(st.lists(_CELLS, min_size=1, max_size=6), max_size=5))
def test_lines_are_what_the_csv_module_writes(rows: list[list[Any]]) -> None:
    assert csv_lines(rows) == _reference(rows)


@given(st.integers(1, 5).flatmap(lambda width: st.lists(
    st.lists(_CELLS, min_size=width, max_size=width), min_size=1, max_size=6)))
def test_rows_of_one_width_are_written_a_column_at_a_time(rows: list[list[Any]]) -> None:
    assert csv_lines(rows) == _reference(rows)


def test_lone_empty_fields_and_long_code() -> None:
    code = 'def f(x):\n    return "a, b"\r\n' * 500
    rows: list[list[Any]] = [[None], [""], ["", ""], [code, 1.5, True, None, -0.0, 10**30]]
    assert csv_lines(rows) == _reference(rows)
    for same_width in ([[None], [""], ["x"]], [["a", 1], ["b\n", None]], [[]], [[], ["x"]]):
        assert csv_lines(same_width) == _reference(same_width)
    assert csv_lines([]) == ""
