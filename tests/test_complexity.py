"""Tests of ``genesis.database.complexity.analyze_code_metrics``: ShinkaEvolve's numbers."""

from __future__ import annotations

import json
import math
import textwrap
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from radon.complexity import cc_visit
from radon.metrics import h_visit
from radon.raw import analyze

from genesis.database.complexity import C_LIKE, METRIC_KEYS, analyze_code_metrics
from tests.shinka_venv import run_in_shinka

LANGUAGES = ("python", *sorted(C_LIKE), "java", "ruby", "", "text")
SAMPLES = {
    "tiny": "def f(x):\n    if x > 0:\n        return x\n    return -x\n",
    "classes": textwrap.dedent("""\
        import math

        class Packer:
            \"\"\"Pack circles.\"\"\"

            def __init__(self, n):
                self.n = n  # how many

            def radii(self):
                out = []
                for i in range(self.n):
                    if i % 2 and i > 3:
                        out.append(math.sqrt(i) / 10)
                    elif i:
                        out.append(0.1)
                    else:
                        out.append(0.0 if self.n else 1.0)
                return out

        def run():
            with open("x") as handle:
                try:
                    return [line for line in handle if line]
                except OSError:
                    return []
        """),
    "module_level": "x = 1\nif x:\n    y = [i for i in range(3) if i]\nwhile False:\n    pass\n",
    "empty": "",
    "comments_only": "# one\n# two\n",
}


def assert_well_formed(result: dict[str, float | int]) -> None:
    """The exact key set, finite JSON-safe numbers, and the score range."""
    assert tuple(result) == METRIC_KEYS
    json.dumps(result, allow_nan=False)
    for key, value in result.items():
        assert type(value) in (int, float), key
        assert math.isfinite(value), key
    assert 0.0 <= result["complexity_score"] <= 1.0
    assert result["complexity_score"] == round(result["complexity_score"], 3)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_python_numbers_are_radons(name: str) -> None:
    code = SAMPLES[name]
    result = analyze_code_metrics(code)
    assert_well_formed(result)
    blocks = cc_visit(code)
    total = sum(block.complexity for block in blocks)
    halstead = h_visit(code).total
    raw = analyze(code)
    assert result["cyclomatic_complexity"] == total
    assert result["average_cyclomatic_complexity"] == (total / len(blocks) if blocks else 0)
    assert result["halstead_volume"] == halstead.volume
    assert result["halstead_difficulty"] == halstead.difficulty
    assert result["halstead_effort"] == halstead.effort
    assert (result["lines_of_code"], result["logical_lines_of_code"], result["comments"]) == \
        (raw.loc, raw.lloc, raw.comments)


def test_maintainability_and_score_follow_the_documented_formulas() -> None:
    result = analyze_code_metrics(SAMPLES["classes"])
    volume, cc, loc = (result["halstead_volume"], result["cyclomatic_complexity"],
                       result["lines_of_code"])
    depth = result["max_nesting_depth"]
    assert result["maintainability_index"] == pytest.approx(
        171 - 5.2 * math.log2(volume) - 0.23 * cc - 16.2 * math.log2(loc))
    expected = 0.4 * cc / 10 + 0.4 * math.log2(volume + 1) / 10 + 0.1 * math.log2(loc + 1) / 10 \
        + 0.1 * depth / 5
    assert result["complexity_score"] == round(min(expected, 1.0), 3)


@pytest.mark.parametrize(
    ("code", "depth"),
    [
        ("x = 1\n", 0),
        ("def f():\n    return 1\n", 1),
        ("def f():\n    for i in x:\n        if i:\n            pass\n", 3),
        ("if a:\n    pass\nelif b:\n    if c:\n        pass\n", 3),  # elif is a nested If
        ("class A:\n    def m(self):\n        with x:\n            pass\n", 2),  # class: no
        ("async def f():\n    async for i in x:\n        pass\n", 1),  # async for: no
    ],
)
def test_nesting_depth_counts_shinkaevolves_blocks(code: str, depth: int) -> None:
    assert analyze_code_metrics(code)["max_nesting_depth"] == depth


def test_unparsable_python_is_measured_as_c() -> None:
    code = "def f(:\n  if (x) { y; } // note\n"
    assert analyze_code_metrics(code, "python") == analyze_code_metrics(code, "cpp")


def test_c_like_code_counts_decisions_and_braces() -> None:
    code = "int main() {\n  for (;;) { if (x) { return 1; } else { switch (y) { case 1: } } }\n" \
           "  // done\n}\n"
    result = analyze_code_metrics(code, "c")
    assert_well_formed(result)
    assert result["cyclomatic_complexity"] == 1 + 5  # for, if, else, switch, case
    assert result["max_nesting_depth"] == 4
    assert result["comments"] == 1
    assert result["lines_of_code"] == 5 and result["logical_lines_of_code"] == 3


def test_other_languages_use_non_blank_lines() -> None:
    result = analyze_code_metrics("a\n\nb\nc\n", "ruby")
    assert result["lines_of_code"] == 3
    assert result["complexity_score"] == round(math.log2(3) / 10, 3)
    assert analyze_code_metrics("a\n", "RUBY") == analyze_code_metrics("a\n", "ruby")


_ADVERSARIAL = {
    "nul": "x = 1\x00\n",
    "open-parens": "(" * 1000,
    "deep-lists": "x = " + "[" * 500 + "]" * 500,
    "long-sum": "x = 1" + " + 1" * 50_000,
    "unary-chain": "-" * 100_000 + "1",
    "stairs": "".join(" " * i + "if x:\n" for i in range(150)) + " " * 150 + "pass\n",
    "surrogate": "x = '\ud800'\n",
    "unterminated": "'''unterminated\n",
    "continuation": "x = 1 \\",
    "braces": "{" * 200_000,
    "open-comments": "/*" * 100_000,
}


@pytest.mark.parametrize("language", ["python", "c", "text"])
@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_adversarial_inputs_never_raise(name: str, language: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_well_formed(analyze_code_metrics(_ADVERSARIAL[name], language))


def test_non_string_input_is_tolerated() -> None:
    assert_well_formed(analyze_code_metrics(b"x = 1\n"))  # type: ignore[arg-type]
    assert_well_formed(analyze_code_metrics(None))  # type: ignore[arg-type]


def test_warnings_as_errors_do_not_escape() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_well_formed(analyze_code_metrics('x = "\\d"\ny = 1if x else 2\n'))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(code=st.text(max_size=300), language=st.sampled_from(LANGUAGES))
def test_arbitrary_text_never_raises(code: str, language: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_well_formed(analyze_code_metrics(code, language))


@pytest.mark.slow
def test_numbers_equal_shinkaevolves_own() -> None:
    """The same code gets the same metrics from ShinkaEvolve 0.0.7 (its own venv)."""
    cases = [(code, "python") for code in SAMPLES.values()]
    cases += [(SAMPLES["classes"], language) for language in ("cpp", "rust", "text")]
    cases.append(("def f(:\n  if (x) { y; }\n", "python"))
    script = ("import json, sys\nfrom shinka.database.complexity import analyze_code_metrics\n"
              "cases = json.loads(sys.argv[1])\n"
              "print(json.dumps([analyze_code_metrics(c, l) for c, l in cases]))\n")
    theirs = run_in_shinka(script, json.dumps(cases))
    ours = [analyze_code_metrics(code, language) for code, language in cases]
    assert json.loads(json.dumps(ours)) == theirs
