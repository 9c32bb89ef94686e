"""Static code metrics for ``program.complexity`` and ``metadata["code_analysis_metrics"]``.

``analyze_code_metrics(code, language)`` never raises and returns exactly the keys in
``METRIC_KEYS``; every value is a finite int or float. Three analysers exist:

* **Python** (``language="python"``): ``ast`` for structure plus a regex tokenizer for
  Halstead counts. The tokenizer follows ``tokenize`` for valid code (operators are OP tokens
  and keywords, operands are names, numbers and strings; f-strings are single string tokens,
  as on Python 3.11) but is several times faster. Cyclomatic complexity is one per function or
  method, one for module-level code when it holds a decision point, plus one per decision:
  ``if``/``elif``, ``for``/``while`` (also ``async`` and comprehension clauses), comprehension
  ``if``, ternaries, ``except`` clauses, ``match`` cases, ``assert`` and every extra operand of
  ``and``/``or``. Decisions are counted from keyword tokens, so the ones inside f-string
  replacement fields are not counted. Nesting counts ``if``/loops/``with``/``try``/``def``/
  ``class``/``match``; an ``elif`` chain stays at the depth of its ``if``.
  Code that does not parse (syntax errors, NUL bytes, absurd nesting) uses the heuristic below.
* **Brace languages** (C, C++, CUDA, Go, Rust, Java, JavaScript, TypeScript) and unparsable
  Python: comments and string literals are recognised by regex; decisions are the keywords
  ``if``/``for``/``while``/``case``/``catch`` plus ``&&``, ``||`` and ``?`` (Python: ``if``,
  ``elif``, ``for``, ``while``, ``except``, ``assert``, ``and``, ``or``; Rust: ``=>`` match arms
  instead of ``case``/``catch``/``?``). Function keywords (``def``, ``func``, ``fn``,
  ``function``) count as blocks; C, C++, CUDA and Java count as one block. Nesting is the
  deepest ``{`` (Python: indentation after a line ending in ``:``) and logical lines are the
  lines holding more than brackets, commas and semicolons.
* **Anything else**: lines of code are the non-blank lines, cyclomatic complexity is 1,
  Halstead numbers and nesting are 0 and ``complexity_score = min(1, log2(loc + 1) / 10)``.

Formulas (``ln`` is the natural logarithm, taken as 0 for arguments <= 1):

* Halstead: ``volume = N * log2(n)``, ``difficulty = n1 / 2 * N2 / n2``,
  ``effort = difficulty * volume`` (0 when ``n <= 1`` or ``n2 == 0``).
* ``maintainability_index = 171 - 5.2 ln(volume) - 0.23 cc - 16.2 ln(loc)``, clipped to
  [0, 171]: the original Oman-Hagemeister form, natural logs for both terms, no rescaling.
* ``complexity_score = min(1, 0.4 cc / 10 + 0.4 log2(volume + 1) / 10
  + 0.1 log2(loc + 1) / 10 + 0.1 depth / 5)`` with the total ``cc``, rounded to 3 decimals.

All passes are linear in the input size (the regexes cannot backtrack quadratically, even on
unterminated strings or comments).
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections import Counter
from dataclasses import dataclass

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


_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
_MI_MAX = 171.0

# --- tokenizer pieces: every string and comment pattern matches wherever it starts (an
# unterminated literal runs to the end of its line or of the input), which keeps scans linear.
_NUMBER = r"\d\w*(?:\.(?!\.)\w*)?(?:(?<=[eE])[+-]\d\w*)?|\.\d\w*(?:(?<=[eE])[+-]\d\w*)?"
_NAME = r"[^\W\d]\w*"
_SQ = r"'[^'\\\n]*(?:\\[\s\S][^'\\\n]*)*'?"
_DQ = r'"[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*"?'
_PY_STRING = (
    r"(?:[rRbBuUfF]{1,2})?(?:"
    r"'''[^'\\]*(?:(?:\\[\s\S]|'(?!''))[^'\\]*)*(?:'''|\\?\Z)"
    r'|"""[^"\\]*(?:(?:\\[\s\S]|"(?!""))[^"\\]*)*(?:"""|\\?\Z)'
    rf"|{_SQ}|{_DQ})"
)
_PY_OPS = r"\*\*=?|//=?|>>=?|<<=?|\.\.\.|->|:=|[-+*/%&|^@<>=!]=|[^\s\w]"
_CHAR = r"'(?:\\[\s\S][^'\\\n]{0,8}|[^'\\\n])'"
_BACKTICK = r"`[^`\\]*(?:\\[\s\S][^`\\]*)*`?"
_C_COMMENT = r"//[^\n]*|/\*[\s\S]*?(?:\*/|\Z)"
_C_OPS = (
    r">>>=|<<=|>>=|>>>|===|!==|\.\.\.|\?\?=|&&=|\|\|=|::|->|=>|\?\.|\?\?|&&|\|\||\+\+|--"
    r"|<<|>>|\*\*=?|[-+*/%&|^!=<>:]=|[^\s\w]"
)
# Every text position after whitespace matches some alternative, so the leading ``\s*`` never
# backtracks; the line-continuation backslash and the empty end match are dropped afterwards.
_NOT_TOKENS = ("", "\\")
_NOT_BRACE_RE = re.compile(r"[^{}]+")
_CODE_LINE_RE = re.compile(r"^[^\n]*?[^\s{}()\[\];,]", re.MULTILINE)
_NONBLANK_LINE_RE = re.compile(r"^[^\S\n]*\S", re.MULTILINE)

# fmt: off
_BRACE_KEYWORDS = frozenset({
    "abstract", "as", "async", "auto", "await", "break", "case", "catch", "char", "class",
    "const", "constexpr", "continue", "default", "defer", "delete", "do", "double", "dyn",
    "else", "enum", "export", "extends", "extern", "final", "finally", "float", "fn", "for",
    "func", "function", "go", "goto", "if", "impl", "implements", "import", "in", "instanceof",
    "int", "interface", "let", "long", "loop", "match", "mod", "move", "mut", "namespace",
    "new", "package", "private", "protected", "pub", "public", "register", "return", "select",
    "short", "signed", "sizeof", "static", "struct", "super", "switch", "template", "this",
    "throw", "throws", "trait", "try", "typedef", "typeof", "union", "unsafe", "unsigned",
    "use", "var", "virtual", "void", "volatile", "where", "while", "yield",
})
# fmt: on
_PY_DECISIONS = ("if", "elif", "for", "while", "except", "assert", "and", "or")
_BRACE_DECISIONS = ("if", "for", "while", "case", "catch", "&&", "||", "?")
_RUST_DECISIONS = ("if", "for", "while", "=>", "&&", "||")


@dataclass(frozen=True)
class _Syntax:
    """How one language family writes tokens, comments, keywords and decisions."""

    token_re: re.Pattern[str]
    mask_re: re.Pattern[str]
    comment_prefixes: tuple[str, ...]
    keywords: frozenset[str]
    decisions: tuple[str, ...]
    function_keywords: tuple[str, ...] = ()
    indent_nesting: bool = False


def _syntax(
    *,
    comment: str,
    comment_prefixes: tuple[str, ...],
    strings: str,
    ops: str,
    keywords: frozenset[str],
    decisions: tuple[str, ...],
    function_keywords: tuple[str, ...],
    indent_nesting: bool = False,
) -> _Syntax:
    """Compile the token regex and the comment/string mask regex of a language family."""
    return _Syntax(
        token_re=re.compile(rf"\s*({comment}|{strings}|{_NUMBER}|{_NAME}|{ops}|\Z)"),
        mask_re=re.compile(f"(?P<c>{comment})|(?P<s>{strings})"),
        comment_prefixes=comment_prefixes,
        keywords=keywords,
        decisions=decisions,
        function_keywords=function_keywords,
        indent_nesting=indent_nesting,
    )


def _brace_syntax(
    strings: str, functions: tuple[str, ...] = (), decisions: tuple[str, ...] = _BRACE_DECISIONS
) -> _Syntax:
    """Build the syntax of a C-like language with ``//`` and ``/* */`` comments."""
    return _syntax(
        comment=_C_COMMENT,
        comment_prefixes=("//", "/*"),
        strings=strings,
        ops=_C_OPS,
        keywords=_BRACE_KEYWORDS,
        decisions=decisions,
        function_keywords=functions,
    )


_PYTHON = _syntax(
    comment=r"#[^\n]*",
    comment_prefixes=("#",),
    strings=_PY_STRING,
    ops=_PY_OPS,
    keywords=frozenset(keyword.kwlist),
    decisions=_PY_DECISIONS,
    function_keywords=("def",),
    indent_nesting=True,
)
_C = _brace_syntax(f"{_DQ}|{_CHAR}")
_GO = _brace_syntax(f"{_DQ}|{_CHAR}|{_BACKTICK}", ("func",))
_RUST = _brace_syntax(f"{_DQ}|{_CHAR}", ("fn",), _RUST_DECISIONS)
_JAVASCRIPT = _brace_syntax(f"{_DQ}|{_SQ}|{_BACKTICK}", ("function",))
_HEURISTIC_SYNTAX = {
    "python": _PYTHON,
    "c": _C,
    "cpp": _C,
    "c++": _C,
    "cuda": _C,
    "java": _C,
    "go": _GO,
    "golang": _GO,
    "rust": _RUST,
    "javascript": _JAVASCRIPT,
    "typescript": _JAVASCRIPT,
}

_TRY_NODES = tuple(getattr(ast, name) for name in ("Try", "TryStar") if hasattr(ast, name))
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# Every compound statement nests; simple statements have no child statements.
_NESTING_NODES = (
    *_TRY_NODES,
    *_FUNCTION_NODES,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.ClassDef,
    ast.Match,
)
_DECISION_NODES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Assert, ast.Match)
_EXPRESSION_DECISIONS = (ast.BoolOp, ast.IfExp, ast.comprehension)
_BODY_FIELDS = ("body", "orelse", "finalbody")
_STATEMENT_FIELDS = frozenset((*_BODY_FIELDS, "handlers", "cases"))

_Halstead = tuple[float, float, float]


@dataclass
class _Tokens:
    """Token counts of a source text with its Halstead numbers and comment count."""

    counts: Counter[str]
    halstead: _Halstead
    comments: int


@dataclass
class _Structure:
    """Statement-level facts of a Python module."""

    statements: int = 0
    functions: int = 0
    match_cases: int = 0
    module_decisions: bool = False
    depth: int = 0


def analyze_code_metrics(code: str, language: str = "python") -> dict[str, float | int]:
    """Return the code metrics of ``code`` (keys ``METRIC_KEYS``); never raises."""
    if not isinstance(code, str):
        code = code.decode("utf-8", "replace") if isinstance(code, bytes) else str(code or "")
    lang = str(language or "").strip().lower()
    if lang == "python":
        metrics = _analyze_python(code)
        if metrics is not None:
            return metrics
    syntax = _HEURISTIC_SYNTAX.get(lang)
    if syntax is None:
        return _analyze_lines(code)
    return _analyze_heuristic(code, syntax)


def _analyze_python(code: str) -> dict[str, float | int] | None:
    """Analyse Python with ``ast``; ``None`` when the code does not parse."""
    try:
        tree = parse_python(code)
    except _PARSE_ERRORS:
        return None
    tokens = _scan_tokens(code, _PYTHON)
    found = _walk_statements(tree)
    decisions = _count(tokens.counts, _PY_DECISIONS) + found.match_cases
    blocks = found.functions + int(found.module_decisions or not found.functions)
    return _metrics(
        cc=blocks + decisions,
        blocks=blocks,
        tokens=tokens,
        loc=_physical_lines(code),
        lloc=found.statements,
        depth=found.depth,
    )


def _analyze_heuristic(code: str, syntax: _Syntax) -> dict[str, float | int]:
    """Analyse code with regexes only: keywords, braces or indentation, and lines."""
    tokens = _scan_tokens(code, syntax)
    masked = syntax.mask_re.sub(_mask_literal, code)
    blocks = max(1, _count(tokens.counts, syntax.function_keywords))
    depth = _indent_depth(masked) if syntax.indent_nesting else _brace_depth(masked)
    return _metrics(
        cc=blocks + _count(tokens.counts, syntax.decisions),
        blocks=blocks,
        tokens=tokens,
        loc=_physical_lines(code),
        lloc=len(_CODE_LINE_RE.findall(masked)),
        depth=depth,
    )


def _analyze_lines(code: str) -> dict[str, float | int]:
    """Analyse text of an unknown language by its non-blank lines only."""
    loc = len(_NONBLANK_LINE_RE.findall(code))
    tokens = _Tokens(Counter(), (0.0, 0.0, 0.0), 0)
    metrics = _metrics(cc=1, blocks=1, tokens=tokens, loc=loc, lloc=loc, depth=0)
    metrics["complexity_score"] = round(min(1.0, math.log2(loc + 1) / 10), 3)
    return metrics


def _metrics(
    *, cc: int, blocks: int, tokens: _Tokens, loc: int, lloc: int, depth: int
) -> dict[str, float | int]:
    """Assemble the metrics dict with maintainability index and complexity score."""
    volume, difficulty, effort = tokens.halstead
    maintainability = _MI_MAX - 5.2 * _ln(volume) - 0.23 * cc - 16.2 * _ln(loc)
    score = (
        0.4 * cc / 10
        + 0.4 * math.log2(volume + 1) / 10
        + 0.1 * math.log2(loc + 1) / 10
        + 0.1 * depth / 5
    )
    return {
        "cyclomatic_complexity": cc,
        "average_cyclomatic_complexity": round(cc / blocks, 3),
        "halstead_volume": round(volume, 3),
        "halstead_difficulty": round(difficulty, 3),
        "halstead_effort": round(effort, 3),
        "lines_of_code": loc,
        "logical_lines_of_code": lloc,
        "comments": tokens.comments,
        "maintainability_index": round(min(_MI_MAX, max(0.0, maintainability)), 3),
        "max_nesting_depth": depth,
        "complexity_score": round(min(1.0, score), 3),
    }


def _scan_tokens(code: str, syntax: _Syntax) -> _Tokens:
    """Tokenize ``code`` and derive the Halstead numbers and the comment count."""
    counts = Counter(syntax.token_re.findall(code))
    for not_a_token in _NOT_TOKENS:
        counts.pop(not_a_token, None)
    operators = operands = operator_total = operand_total = comments = 0
    for token, count in counts.items():
        if token.startswith(syntax.comment_prefixes):
            comments += count
        elif _is_operand(token, syntax.keywords):
            operands += 1
            operand_total += count
        else:
            operators += 1
            operator_total += count
    halstead = _halstead(operators, operands, operator_total, operand_total)
    return _Tokens(counts, halstead, comments)


def _is_operand(token: str, keywords: frozenset[str]) -> bool:
    """Tell whether a non-comment token is a name, number or string literal."""
    if len(token) > 1 and ("'" in token or '"' in token or "`" in token):
        return True
    first = token[0]
    if first.isdigit() or (first == "." and token[1:2].isdigit()):
        return True
    return first.isidentifier() and token not in keywords


def _halstead(n1: int, n2: int, big_n1: int, big_n2: int) -> _Halstead:
    """Return Halstead volume, difficulty and effort from operator/operand counts."""
    vocabulary = n1 + n2
    volume = (big_n1 + big_n2) * math.log2(vocabulary) if vocabulary > 1 else 0.0
    difficulty = n1 / 2 * big_n2 / n2 if n2 else 0.0
    return volume, difficulty, difficulty * volume


def _walk_statements(tree: ast.Module) -> _Structure:
    """Count statements, functions and match cases; find the deepest nesting."""
    found = _Structure()
    stack: list[tuple[ast.stmt, int, bool]] = [(node, 0, False) for node in tree.body]
    while stack:
        node, depth, in_function = stack.pop()
        found.statements += 1
        if not (in_function or found.module_decisions):
            found.module_decisions = _is_module_decision(node)
        if not isinstance(node, _NESTING_NODES):
            continue
        depth += 1
        found.depth = max(found.depth, depth)
        if isinstance(node, _FUNCTION_NODES):
            found.functions += 1
            in_function = True
        bodies = [getattr(node, field, ()) for field in _BODY_FIELDS]
        if isinstance(node, _TRY_NODES):
            bodies += [handler.body for handler in node.handlers]
        elif isinstance(node, ast.Match):
            found.match_cases += len(node.cases)
            bodies += [case.body for case in node.cases]
        elif _is_elif(node):
            bodies[1] = ()
            stack.append((node.orelse[0], depth - 1, in_function))
        for body in bodies:
            stack.extend([(child, depth, in_function) for child in body])
    return found


def _is_elif(node: ast.stmt) -> bool:
    """Tell whether ``node`` is an ``if`` whose ``else`` branch is an ``elif``."""
    if not isinstance(node, ast.If) or len(node.orelse) != 1:
        return False
    branch = node.orelse[0]
    return isinstance(branch, ast.If) and branch.col_offset == node.col_offset


def _is_module_decision(node: ast.stmt) -> bool:
    """Tell whether a statement outside functions holds a decision point of its own."""
    if isinstance(node, _DECISION_NODES):
        return True
    if isinstance(node, _TRY_NODES) and node.handlers:
        return True
    pending: list[object]
    if isinstance(node, _FUNCTION_NODES):  # only decorators and defaults run at definition
        pending = [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]
    else:
        pending = [value for name, value in ast.iter_fields(node) if name not in _STATEMENT_FIELDS]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, _EXPRESSION_DECISIONS):
            return True
        elif isinstance(item, ast.AST) and not isinstance(item, ast.JoinedStr):
            pending.extend(ast.iter_child_nodes(item))
    return False


def _mask_literal(match: re.Match[str]) -> str:
    """Blank a comment, or turn a string literal into ``""``, keeping its line breaks."""
    newlines = "\n" * match.group().count("\n")
    return newlines if match.lastgroup == "c" else '""' + newlines


def _brace_depth(masked: str) -> int:
    """Return the deepest ``{`` nesting of code without comments and strings."""
    depth = deepest = 0
    for brace in _NOT_BRACE_RE.sub("", masked):
        if brace == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    return deepest


def _indent_depth(masked: str) -> int:
    """Return the deepest Python block nesting judged by indentation after ``:`` lines."""
    levels = [0]
    deepest = 0
    opens_block = False
    for line in masked.split("\n"):
        code = line.strip()
        if not code:
            continue
        indent = len(line) - len(line.lstrip())
        if indent > levels[-1]:
            if opens_block:
                levels.append(indent)
                deepest = max(deepest, len(levels) - 1)
        else:
            while indent < levels[-1]:
                levels.pop()
        opens_block = code.endswith(":")
    return deepest


def _count(counts: Counter[str], names: tuple[str, ...]) -> int:
    """Sum the counts of the given tokens."""
    return sum(counts[name] for name in names)


def _physical_lines(code: str) -> int:
    """Return the number of lines, counting a last line without a line break."""
    return code.count("\n") + int(bool(code) and not code.endswith("\n"))


def _ln(value: float) -> float:
    """Return the natural logarithm, or 0 for values <= 1."""
    return math.log(value) if value > 1 else 0.0
