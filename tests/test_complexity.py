"""Tests of ``genesis.database.complexity.analyze_code_metrics``."""

from __future__ import annotations

import json
import math
import textwrap
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis.database.complexity import METRIC_KEYS, analyze_code_metrics

BRACE_LANGUAGES = (
    "c",
    "cpp",
    "c++",
    "cuda",
    "go",
    "golang",
    "rust",
    "java",
    "javascript",
    "typescript",
)
ALL_LANGUAGES = ("python", *BRACE_LANGUAGES, "ruby", "", "text")
INT_KEYS = (
    "cyclomatic_complexity",
    "lines_of_code",
    "logical_lines_of_code",
    "comments",
    "max_nesting_depth",
)


def metrics(code: str, language: str = "python") -> dict[str, float | int]:
    """Analyse dedented code and check the invariants every result must satisfy."""
    result = analyze_code_metrics(textwrap.dedent(code), language)
    assert_well_formed(result)
    return result


def assert_well_formed(result: dict[str, float | int]) -> None:
    """Assert the exact key set, finite JSON-safe numbers and the score range."""
    assert tuple(result) == METRIC_KEYS
    json.dumps(result, allow_nan=False)
    for key, value in result.items():
        assert type(value) in (int, float), key
        assert math.isfinite(value), key
        assert value >= 0, key
    for key in INT_KEYS:
        assert type(result[key]) is int, key
    assert 0.0 <= result["complexity_score"] <= 1.0
    assert result["complexity_score"] == round(result["complexity_score"], 3)
    assert 0.0 <= result["maintainability_index"] <= 171.0
    assert result["cyclomatic_complexity"] >= 1


# --- Python: cyclomatic complexity -------------------------------------------------------


def test_straight_line_function_has_complexity_one() -> None:
    result = metrics(
        """\
        def f(x):
            y = x + 1
            return y
        """
    )
    assert result["cyclomatic_complexity"] == 1
    assert result["average_cyclomatic_complexity"] == 1.0
    assert result["max_nesting_depth"] == 1
    assert result["lines_of_code"] == 3
    assert result["logical_lines_of_code"] == 3


def test_each_function_counts_one() -> None:
    result = metrics(
        """\
        def f():
            return 1

        def g():
            return 2

        class A:
            def m(self):
                return 3
        """
    )
    assert result["cyclomatic_complexity"] == 3
    assert result["average_cyclomatic_complexity"] == 1.0


def test_straight_line_module_has_complexity_one() -> None:
    result = metrics("x = 1\ny = x * 2\n")
    assert result["cyclomatic_complexity"] == 1
    assert result["average_cyclomatic_complexity"] == 1.0
    assert result["max_nesting_depth"] == 0


def test_for_if_and_add_one_each_and_nest_three_deep() -> None:
    result = metrics(
        """\
        def f(xs, limit):
            total = 0
            for x in xs:
                if x > 0 and x < limit:
                    total += x
            return total
        """
    )
    assert result["cyclomatic_complexity"] == 4
    assert result["max_nesting_depth"] == 3
    assert result["logical_lines_of_code"] == 6  # def, =, for, if, +=, return


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return a", 1),
        ("return a or b", 2),
        ("return a or b or c", 3),
        ("return a and b or c", 3),
        ("return 1 if a else 2", 2),
        ("return [x for x in a]", 2),
        ("return [x for x in a if x if b]", 4),
        ("return {x: y for x in a for y in b}", 3),
        ("return any(x for x in a)", 2),
        ("assert a", 2),
        ("while a:\n    a -= 1", 2),
        ("for x in a:\n    pass\nelse:\n    pass", 2),
        ("if a:\n    pass\nelif b:\n    pass\nelif c:\n    pass\nelse:\n    pass", 4),
        ("try:\n    pass\nexcept ValueError:\n    pass\nexcept Exception:\n    pass", 3),
        ("try:\n    pass\nfinally:\n    pass", 1),
        ("with a as b:\n    pass", 1),
        ("match a:\n    case 1:\n        pass\n    case _:\n        pass", 3),
        ("match a:\n    case int(x) if x > 0:\n        pass", 3),
        ("g = lambda x: x or a\nreturn g", 2),
    ],
)
def test_decision_points(body: str, expected: int) -> None:
    code = "def f(a, b, c):\n" + textwrap.indent(body, "    ") + "\n"
    result = metrics(code)
    assert result["cyclomatic_complexity"] == expected
    assert result["average_cyclomatic_complexity"] == float(expected)


def test_async_constructs_count_like_sync_ones() -> None:
    result = metrics(
        """\
        async def f(xs):
            async for x in xs:
                async with x:
                    await x
        """
    )
    assert result["cyclomatic_complexity"] == 2
    assert result["max_nesting_depth"] == 3


def test_module_level_decisions_form_their_own_block() -> None:
    result = metrics(
        """\
        def main():
            return 1

        if __name__ == "__main__":
            main()
        """
    )
    assert result["cyclomatic_complexity"] == 3  # main: 1, module: 1 + if
    assert result["average_cyclomatic_complexity"] == 1.5


def test_module_level_expression_decision_forms_a_block() -> None:
    result = metrics("def f():\n    pass\n\nx = a or b\n")
    assert result["cyclomatic_complexity"] == 3
    assert result["average_cyclomatic_complexity"] == 1.5


def test_decorator_and_default_decisions_belong_to_module_level() -> None:
    result = metrics("def f(x=a or b):\n    return x\n")
    assert result["cyclomatic_complexity"] == 3
    assert result["average_cyclomatic_complexity"] == 1.5


def test_keywords_inside_strings_and_comments_are_not_decisions() -> None:
    result = metrics(
        '''\
        def f():
            """if this and that or for while"""
            # if x: for y in z
            return "if a and b or c"
        '''
    )
    assert result["cyclomatic_complexity"] == 1


# --- Python: nesting, lines, comments, Halstead ---------------------------------------------


def test_elif_chain_does_not_deepen_nesting_but_else_if_does() -> None:
    chain = metrics("if a:\n    x = 1\nelif b:\n    x = 2\nelif c:\n    x = 3\n")
    assert chain["max_nesting_depth"] == 1
    nested = metrics("if a:\n    x = 1\nelse:\n    if b:\n        x = 2\n")
    assert nested["max_nesting_depth"] == 2


def test_nesting_counts_classes_with_try_and_match() -> None:
    result = metrics(
        """\
        class A:
            def m(self, v):
                with open(v) as fh:
                    try:
                        match fh:
                            case _:
                                if v:
                                    pass
                    except OSError:
                        pass
        """
    )
    # class, def, with, try, match, if
    assert result["max_nesting_depth"] == 6


def test_comment_tokens_are_counted_but_not_hashes_in_strings() -> None:
    result = metrics(
        """\
        # header comment
        x = 1  # trailing comment
        s = "# not a comment"
        t = '''
        # not a comment either
        '''
        #
        """
    )
    assert result["comments"] == 3


def test_logical_lines_count_statements_not_lines() -> None:
    result = metrics(
        """\
        x = 1; y = 2
        total = (x +
                 y)

        if total:
            z = [
                1,
                2,
            ]
        """
    )
    assert result["lines_of_code"] == 9
    assert result["logical_lines_of_code"] == 5  # x, y, total, if, z


def test_lines_of_code_counts_last_line_without_newline() -> None:
    assert metrics("x = 1\ny = 2")["lines_of_code"] == 2
    assert metrics("x = 1\ny = 2\n")["lines_of_code"] == 2
    assert metrics("\n\n")["lines_of_code"] == 2


def test_halstead_and_derived_numbers_for_a_tiny_program() -> None:
    # Operators {=}: n1 = 1, N1 = 1. Operands {x, 1}: n2 = 2, N2 = 2.
    result = metrics("x = 1\n")
    volume = 3 * math.log2(3)
    difficulty = 1 / 2 * 2 / 2
    assert result["halstead_volume"] == round(volume, 3)
    assert result["halstead_difficulty"] == difficulty
    assert result["halstead_effort"] == round(volume * difficulty, 3)
    mi = 171 - 5.2 * math.log(volume) - 0.23 * 1 - 16.2 * math.log(1)
    assert result["maintainability_index"] == round(mi, 3)
    score = 0.4 * 1 / 10 + 0.4 * math.log2(volume + 1) / 10 + 0.1 * math.log2(2) / 10
    assert result["complexity_score"] == round(score, 3)


def test_halstead_keywords_are_operators_and_literals_operands() -> None:
    # Operators: def ( ) : return + (n1 = 6, N1 = 6);
    # operands: f x 1 "s" (n2 = 4, N2 = 5: x twice).
    result = metrics('def f(x):\n    return x + 1 + "s"\n')
    assert result["halstead_volume"] == round(12 * math.log2(10), 3)
    assert result["halstead_difficulty"] == round(6 / 2 * 5 / 4, 3)


def test_empty_python_code() -> None:
    result = metrics("")
    assert result["cyclomatic_complexity"] == 1
    assert result["lines_of_code"] == 0
    assert result["logical_lines_of_code"] == 0
    assert result["comments"] == 0
    assert result["halstead_volume"] == 0.0
    assert result["halstead_effort"] == 0.0
    assert result["max_nesting_depth"] == 0
    assert result["complexity_score"] == 0.04


# --- complexity score -------------------------------------------------------------------------


def _branchy_program(functions: int) -> str:
    parts = []
    for i in range(functions):
        parts.append(
            f"""\
def solve_{i}(data, limit):
    best = None
    for row in data:
        for value in row:
            if value > limit and value % 2 == 0:
                best = value if best is None else max(best, value)
            elif value < 0 or value == limit:
                continue
    while best is not None and best > limit:
        best -= {i + 1}
    return best
"""
        )
    return "\n\n".join(parts)


def test_score_grows_with_size_and_branching() -> None:
    trivial = metrics("x = 1\n")["complexity_score"]
    small = metrics("def f(x):\n    if x:\n        return 1\n    return 0\n")["complexity_score"]
    large = metrics(_branchy_program(20))["complexity_score"]
    assert trivial < small < large
    assert large == 1.0


def test_maintainability_drops_for_larger_programs() -> None:
    small = metrics("def f(x):\n    return x\n")["maintainability_index"]
    large = metrics(_branchy_program(20))["maintainability_index"]
    assert large < small


# --- Python fallback ------------------------------------------------------------------------


def test_syntax_error_falls_back_to_the_heuristic() -> None:
    result = metrics(
        """\
        def f(:
            # comment
            if x and y:
                return 1
        """
    )
    assert result["cyclomatic_complexity"] == 3  # def block + if + and
    assert result["max_nesting_depth"] == 2
    assert result["comments"] == 1
    assert result["lines_of_code"] == 4
    assert result["logical_lines_of_code"] == 3


@pytest.mark.parametrize(
    "code",
    [
        "x = 1\x00\n",
        "(" * 1000,
        "x = " + "[" * 500 + "]" * 500,
        "x = 1" + " + 1" * 50_000,
        "-" * 100_000 + "1",
        "".join(" " * i + "if x:\n" for i in range(150)) + " " * 150 + "pass\n",
        "x = '\ud800'\n",
        "def f(:\n\tpass\n",
        "'''unterminated\n",
        "x = 1 \\",
    ],
)
def test_unparsable_python_never_raises(code: str) -> None:
    assert_well_formed(analyze_code_metrics(code, "python"))


def test_warnings_as_errors_do_not_escape() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = metrics('x = "\\d"\ny = 1if x else 2\n')
    assert result["lines_of_code"] == 2


# --- brace languages ------------------------------------------------------------------------


def test_c_counts_braces_and_decisions() -> None:
    result = metrics(
        """\
        /* if (x) { while } */
        int f(int x) {
            // for (;;) {
            const char *s = "if { && ||";
            char c = '{';
            if (x > 0 && x < 10) {
                for (int i = 0; i < x; i++) {
                    x--;
                }
            } else if (x == 0) {
                return 0;
            }
            return x ? 1 : 2;
        }
        """,
        "c",
    )
    # 1 + if + && + for + (else) if + ?
    assert result["cyclomatic_complexity"] == 6
    assert result["max_nesting_depth"] == 3
    assert result["comments"] == 2
    assert result["lines_of_code"] == 14
    assert result["logical_lines_of_code"] == 9
    assert result["halstead_volume"] > 0


def test_c_switch_cases_and_catch() -> None:
    code = """\
        void f(int x) {
            switch (x) {
                case 1: break;
                case 2: break;
                default: break;
            }
            try { g(); } catch (const E& e) { h(); }
        }
        """
    assert metrics(code, "cpp")["cyclomatic_complexity"] == 4
    assert metrics(code, "java")["max_nesting_depth"] == 2


def test_go_counts_func_blocks_and_masks_raw_strings() -> None:
    result = metrics(
        """\
        func a(x int) int {
            s := `if { for {`
            if x > 0 || len(s) > 3 {
                return 1
            }
            return 0
        }

        func b() {}
        """,
        "go",
    )
    assert result["cyclomatic_complexity"] == 4  # 2 funcs + if + ||
    assert result["average_cyclomatic_complexity"] == 2.0
    assert result["max_nesting_depth"] == 2


def test_rust_counts_match_arms() -> None:
    result = metrics(
        """\
        fn pick<'a>(x: Option<&'a str>) -> &'a str {
            match x {
                Some(v) => v,
                None => "if {",
            }
        }
        """,
        "rust",
    )
    assert result["cyclomatic_complexity"] == 3
    assert result["max_nesting_depth"] == 2


def test_javascript_strings_templates_and_nullish() -> None:
    result = metrics(
        """\
        function f(a, b) {
            const s = 'if { ' + `for { ${a}`;
            return a ?? b ? s : a?.c;
        }
        """,
        "javascript",
    )
    assert result["cyclomatic_complexity"] == 2  # one ternary; ?? and ?. are not decisions
    assert result["max_nesting_depth"] == 1


@pytest.mark.parametrize("language", BRACE_LANGUAGES)
def test_brace_languages_use_the_heuristic(language: str) -> None:
    result = metrics("main() {\n  if (a) {\n    b();\n  }\n}\n", language)
    assert result["max_nesting_depth"] == 2
    assert result["cyclomatic_complexity"] == 2
    assert result["lines_of_code"] == 5


def test_language_name_is_case_insensitive() -> None:
    code = "int f() { if (a) { return 1; } return 0; }"
    assert analyze_code_metrics(code, " C ") == analyze_code_metrics(code, "c")
    assert analyze_code_metrics("x = 1\n", "Python") == analyze_code_metrics("x = 1\n")


# --- other languages --------------------------------------------------------------------------


def test_unknown_language_uses_non_blank_lines() -> None:
    code = "puts 'hi'\n\n  if x then y end  \n\t\n# comment\n"
    result = metrics(code, "ruby")
    assert result["lines_of_code"] == 3
    assert result["logical_lines_of_code"] == 3
    assert result["cyclomatic_complexity"] == 1
    assert result["average_cyclomatic_complexity"] == 1.0
    assert result["max_nesting_depth"] == 0
    assert result["comments"] == 0
    assert result["halstead_volume"] == 0.0
    assert result["complexity_score"] == round(math.log2(4) / 10, 3)


def test_unknown_language_score_saturates() -> None:
    assert metrics("x\n" * 5000, "cobol")["complexity_score"] == 1.0


@pytest.mark.parametrize("language", ALL_LANGUAGES)
def test_empty_code_in_every_language(language: str) -> None:
    result = metrics("", language)
    assert result["lines_of_code"] == 0
    assert result["cyclomatic_complexity"] == 1
    assert result["max_nesting_depth"] == 0


# --- robustness -------------------------------------------------------------------------------

_ADVERSARIAL = {
    "escaped-quotes": '"\\' * 100_000,
    "escaped-single": "'\\" * 100_000,
    "open-triple": "'''" + "\\'" * 100_000,
    "many-triples": "'''\\" * 50_000,
    "open-comments": "/*" * 100_000,
    "braces": "{" * 200_000,
    "spaces-then-backslash": " " * 200_000 + "\\",
    "backticks": "`\\" * 100_000,
    "indent-stairs": "".join(" " * (i % 100) + "x:\n" for i in range(5_000)),
}


@pytest.mark.parametrize("language", ["python", "c", "go", "rust", "javascript", "text"])
@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_large_adversarial_inputs_complete(name: str, language: str) -> None:
    assert_well_formed(analyze_code_metrics(_ADVERSARIAL[name], language))


def test_large_valid_python_program() -> None:
    code = _branchy_program(400)
    result = metrics(code)
    # per function: 1 + for + for + if + and + ternary + elif + or + while + and
    assert result["cyclomatic_complexity"] == 400 * 10
    assert result["average_cyclomatic_complexity"] == 10.0
    assert result["lines_of_code"] == code.count("\n")


def test_non_string_input_is_tolerated() -> None:
    assert_well_formed(analyze_code_metrics(b"x = 1\n"))  # type: ignore[arg-type]
    assert_well_formed(analyze_code_metrics(None))  # type: ignore[arg-type]


_CODE_ALPHABET = st.sampled_from(
    [*"{}()[]'\"`/*\\#:;?&|=<>.,-+ \t\n\r0123456789eE_xifr", "if", "for", "\x00", "é"]
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.text(), language=st.sampled_from(ALL_LANGUAGES))
def test_arbitrary_text_never_raises(code: str, language: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_well_formed(analyze_code_metrics(code, language))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.lists(_CODE_ALPHABET, max_size=200).map("".join),
    language=st.sampled_from(ALL_LANGUAGES),
)
def test_code_like_text_never_raises(code: str, language: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_well_formed(analyze_code_metrics(code, language))
