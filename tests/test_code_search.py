"""How code search cuts queries into words, builds index queries and marks snippets."""

from __future__ import annotations

import pytest

from genesis.database.code_search import MAX_TERMS, search_terms, snippet
from genesis.database.errors import InvalidArgumentError


def test_identifiers_are_cut_at_dots_and_underscores_and_folded() -> None:
    terms = search_terms("SciPy.optimize.minimize snake_case_names")
    assert terms.words == ("scipy", "optimize", "minimize", "snake", "case", "names")
    assert terms.fts5_phrase() == '"scipy optimize minimize snake case names"'
    assert terms.fts5_all().startswith('"scipy" AND "optimize"')
    assert terms.tsquery_phrase() == "scipy <-> optimize <-> minimize <-> snake <-> case <-> names"
    assert search_terms("ü2 — 'x'").words == ("ü2", "x")


def test_queries_without_words_or_with_too_many_are_refused() -> None:
    for query in ("", "... ()", "_"):
        with pytest.raises(InvalidArgumentError, match="query"):
            search_terms(query)
    with pytest.raises(InvalidArgumentError, match=f"at most {MAX_TERMS}"):
        search_terms(" ".join(["w"] * (MAX_TERMS + 1)))
    with pytest.raises(InvalidArgumentError, match="query must be a string"):
        search_terms(3)  # type: ignore[arg-type]


def test_the_snippet_is_the_best_line_with_its_words_marked() -> None:
    terms = search_terms("scipy.optimize.minimize")
    code = "# minimize later\nimport scipy\nres = scipy.optimize.minimize(f)\n"
    assert snippet(code, terms) == "res = [scipy].[optimize].[minimize](f)"
    assert snippet("def f():\n    return needle_value\n", search_terms("needle")) == \
        "return [needle]_value"


def test_a_long_line_is_cut_around_the_first_match() -> None:
    cut = snippet("x = " + "a" * 300 + " needle " + "b" * 300, search_terms("needle"), width=80)
    assert len(cut) == 80 and "[needle]" in cut and cut.startswith("…") and cut.endswith("…")
