"""The filter language: grammar, type checks, error positions, and what reaches SQL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genesis.database.backends.query_sql import PostgresCompiler, SQLiteCompiler
from genesis.database.query_language import (
    And,
    Compare,
    Field,
    Not,
    Or,
    OrderKey,
    QueryError,
    parse_columns,
    parse_order,
    parse_where,
)

SUM_RADII = Field("public_metrics", ("sum_radii",))


def test_the_issue_example_parses_to_its_tree() -> None:
    node = parse_where('correct and public_metrics.sum_radii > 2.4 and '
                       'metadata.patch_type == "diff"')
    assert node == And((Compare(Field("correct"), "==", True),
                        Compare(SUM_RADII, ">", 2.4),
                        Compare(Field("metadata", ("patch_type",)), "==", "diff")))


def test_precedence_not_then_and_then_or() -> None:
    node = parse_where("not correct or generation < 3 and island_idx == 1")
    assert node == Or((Not(Compare(Field("correct"), "==", True)),
                       And((Compare(Field("generation"), "<", 3),
                            Compare(Field("island_idx"), "==", 1)))))
    grouped = parse_where("not (correct or generation < 3)")
    assert isinstance(grouped, Not) and isinstance(grouped.operand, Or)


def test_a_value_on_the_left_is_flipped() -> None:
    assert parse_where("2.4 < public_metrics.sum_radii") == Compare(SUM_RADII, ">", 2.4)


def test_literals() -> None:
    assert parse_where("generation == -3").value == -3
    assert parse_where("combined_score >= 1e3").value == 1000.0
    assert parse_where("metadata.note == 'it\\'s'").value == "it's"
    assert parse_where('metadata.note == "a \\"b\\""').value == 'a "b"'
    assert parse_where("parent_id == null") == Compare(Field("parent_id"), "==", None)
    assert parse_where("metadata.deep.flag").value is True  # a JSON path alone: == true


@pytest.mark.parametrize(("text", "position", "words"), [
    ("generation >", 12, "expected a field or a value"),
    ("bogus > 1", 0, "unknown field 'bogus'"),
    ("correct and", 11, "expected a field or a value"),
    ("generation > 1 extra", 15, "expected 'and', 'or' or the end"),
    ("(correct", 8, "expected ')'"),
    ("generation = 1", 11, "unexpected character '='"),
    ("generation == 'x'", 14, "generation is int; it cannot be compared with a string"),
    ("id > 3", 5, "id is text; it cannot be compared with a number"),
    ("correct == 1", 11, "correct is bool; it cannot be compared with a number"),
    ("combined_score == true", 18, "combined_score is float; it cannot equal true"),
    ("metadata.x < null", 13, "'<' cannot compare with null"),
    ("generation", 10, "generation is int, not boolean"),
    ("generation == island_idx", 11, "compares two fields"),
    ("1 == 2", 2, "compares two values"),
    ("metadata > 1", 0, "metadata needs a key"),
    ("generation.x == 1", 0, "generation is not a JSON column"),
    ("", 0, "the expression is empty"),
    ("code == 'x'", 0, "unknown field 'code'"),
    ("3", 0, "a value alone is not a condition"),
])
def test_errors_name_the_position(text: str, position: int, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_where(text)
    assert caught.value.position == position
    assert words in caught.value.problem
    assert str(caught.value).startswith("where: ") and "^" in str(caught.value)


def test_orderings_and_column_lists() -> None:
    assert parse_order("public_metrics.sum_radii desc, id") == [
        OrderKey(SUM_RADII, True), OrderKey(Field("id"), False)]
    assert parse_columns("id, code, metadata") == [Field("id"), Field("code"),
                                                   Field("metadata")]
    with pytest.raises(QueryError, match=r"order_by: .*expected 'field"):
        parse_order("id sideways")
    with pytest.raises(QueryError, match="unknown field 'code'"):
        parse_order("code")  # text is listed, not ordered by
    with pytest.raises(QueryError, match="is not a field name"):
        parse_columns(["id; DROP TABLE programs"])


INJECTIONS = [
    "metadata.patch_type == \"x'); DROP TABLE programs; --\"",
    "metadata.patch_type == 'x\" OR 1=1 --'",
    "public_metrics.sum_radii > 1 or metadata.k == \"$.a ? (@ > 0) || true\"",
    "metadata.k == \"%s %(x)s ? ?\"",
]


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize("compiler", [SQLiteCompiler(), PostgresCompiler()],
                         ids=["sqlite", "postgres"])
def test_literals_are_bound_never_written_into_sql(text: str, compiler: object) -> None:
    sql, params = compiler.where(parse_where(text))  # type: ignore[attr-defined]
    assert "DROP" not in sql and "1=1" not in sql and "%(x)s" not in sql
    assert any("DROP" in str(p) or "1=1" in str(p) or "@ > 0" in str(p) or "%(x)s" in str(p)
               for p in params)
    assert sql.count(compiler.q) == len(params)  # type: ignore[attr-defined]


def test_statements_outside_the_grammar_are_refused() -> None:
    for text in ("correct; DROP TABLE programs", "id == 'a' -- comment", "correct /* x */",
                 "metadata.a-b == 1", "metadata.`x` == 1", "public_metrics[0] > 1"):
        with pytest.raises(QueryError):
            parse_where(text)


# Property tests: random trees printed as text parse back to themselves, and compile on
# both dialects with exactly one parameter per placeholder.
_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda k: k not in ("and", "or", "not", "true", "false", "null"))
_numbers = st.one_of(st.integers(-10**6, 10**6),
                     st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)))
_strings = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
_json_field = st.builds(lambda c, k: Field(c, tuple(k)),
                        st.sampled_from(["public_metrics", "private_metrics", "metadata"]),
                        st.lists(_keys, min_size=1, max_size=3))
_comparisons = st.one_of(
    st.builds(Compare, st.sampled_from([Field("generation"), Field("combined_score")]),
              st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _numbers),
    st.builds(Compare, _json_field, st.sampled_from(["==", "!=", "<", ">="]),
              st.one_of(_numbers, _strings)),
    st.builds(Compare, st.just(Field("correct")), st.sampled_from(["==", "!="]),
              st.booleans()),
)
_trees = st.recursive(_comparisons, lambda inner: st.one_of(
    st.builds(Not, inner),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs)))), max_leaves=8)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _text(node: object) -> str:
    if isinstance(node, Compare):
        return f"{node.field.name} {node.op} {_literal(node.value)}"
    if isinstance(node, Not):
        return f"not ({_text(node.operand)})"
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(f"({_text(o)})" for o in node.operands) + ")"  # type: ignore[attr-defined]


@given(_trees)
def test_printed_trees_parse_back_and_compile(tree: object) -> None:
    parsed = parse_where(_text(tree))
    assert parsed == tree
    for compiler in (SQLiteCompiler(), PostgresCompiler()):
        sql, params = compiler.where(parsed)
        assert sql.count(compiler.q) == len(params)


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_with_a_position(text: str) -> None:
    try:
        parse_where(text)
    except QueryError as exc:
        assert 0 <= exc.position <= len(text)

