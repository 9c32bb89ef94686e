"""The filter language of ``query()``, ``to_dataframe()`` and ``genesis db query``: parsed here,
compiled to SQL by each backend (:mod:`genesis.database.backends.query_sql`).

    correct and public_metrics.sum_radii > 2.4 and metadata.patch_type == "diff"
    not (island_idx == 0 or generation < 10) and parent_id != null

- **Fields**: the program columns of :data:`COLUMNS`, and JSON paths into
  ``public_metrics``, ``private_metrics`` and ``metadata`` (``metadata.a.b``; each key made of
  letters, digits and ``_``).
- **Comparisons**: ``==  !=  <  <=  >  >=`` between a field and a literal (either side):
  a number, a string in double or single quotes (``\\"`` escapes), ``true``, ``false`` or
  ``null``. A boolean field alone means ``== true``.
- **Logic**: ``and``, ``or``, ``not`` and parentheses (``not`` binds tightest, then ``and``).
- A comparison is false where the field is missing or holds another JSON type (so ``not``
  of it is true there); ``== null`` / ``!= null`` test for SQL NULL or JSON null.

Nothing from the text reaches SQL: column names come from :data:`COLUMNS`, JSON keys are
checked here and passed to the database as bound path parameters (or, for a path with an
index, written as that index's expression, taken from the run's catalogue of indexes),
literals are bound values. Every mistake is a :class:`QueryError` naming its position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal as TypingLiteral

from genesis.database.errors import InvalidArgumentError

__all__ = [
    "COLUMNS",
    "JSON_COLUMNS",
    "SELECT_ONLY",
    "And",
    "Compare",
    "Field",
    "Node",
    "Not",
    "Or",
    "OrderKey",
    "QueryError",
    "parse_columns",
    "parse_field",
    "parse_order",
    "parse_where",
]

Kind = TypingLiteral["int", "float", "text", "bool"]
# The program columns a filter, an ordering or a column list may name, with their type.
COLUMNS: dict[str, Kind] = {
    "id": "text", "parent_id": "text", "language": "text", "system_prompt_id": "text",
    "island_idx": "int", "generation": "int", "children_count": "int",
    "embedding_cluster_id": "int", "timestamp": "float", "combined_score": "float",
    "complexity": "float", "correct": "bool",
}
JSON_COLUMNS = ("public_metrics", "private_metrics", "metadata")
# Columns a column list may name but a filter or an ordering may not (text, whole JSON).
SELECT_ONLY = ("code", "code_diff", "text_feedback", *JSON_COLUMNS, "embedding")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<paren>[()])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.VERBOSE)
_WORDS = frozenset({"and", "or", "not", "true", "false", "null"})
Value = float | int | str | bool | None


class QueryError(InvalidArgumentError):
    """A filter, ordering or column list that cannot be compiled; names the position."""

    def __init__(self, setting: str, text: str, position: int, problem: str) -> None:
        self.setting, self.text, self.position, self.problem = setting, text, position, problem
        pointer = " " * position + "^"
        super().__init__(f"{setting}: {problem} at position {position}\n  {text}\n  {pointer}")


@dataclass(frozen=True)
class Field:
    """A column (``path`` empty) or a path of keys into a JSON column."""

    column: str
    path: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The field as written: ``public_metrics.sum_radii``."""
        return ".".join((self.column, *self.path))

    @property
    def kind(self) -> Kind | None:
        """The column's type; None for a JSON path or whole JSON (any JSON type)."""
        return None if self.path else COLUMNS.get(self.column)


@dataclass(frozen=True)
class Compare:
    """``field op value``."""

    field: Field
    op: str
    value: Value


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class And:
    """All operands hold."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Some operand holds."""

    operands: tuple[Node, ...]


Node = Compare | Not | And | Or


@dataclass(frozen=True)
class OrderKey:
    """One key of an ordering."""

    field: Field
    descending: bool = False


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str, setting: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryError(setting, text, position, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match[0], position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _field(name: str, text: str, position: int, setting: str, selecting: bool = False
           ) -> Field:
    """Resolve a dotted name against the schema (``selecting``: for a column list)."""
    column, *path = name.split(".")
    if selecting and column in SELECT_ONLY and (not path or column in JSON_COLUMNS):
        return Field(column, tuple(path))
    if column in JSON_COLUMNS:
        if not path:
            raise QueryError(setting, text, position, f"{column} needs a key, as in "
                                                       f"{column}.name")
        return Field(column, tuple(path))
    if column not in COLUMNS:
        known = ", ".join([*COLUMNS, *(f"{c}.<key>" for c in JSON_COLUMNS)])
        raise QueryError(setting, text, position, f"unknown field {name!r} (known: {known})")
    if path:
        raise QueryError(setting, text, position, f"{column} is not a JSON column; "
                                                   f"{name!r} has no keys")
    return Field(column)


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class _Parser:
    def __init__(self, text: str, setting: str) -> None:
        self.text, self.setting = text, setting
        self.tokens = _tokens(text, setting)
        self.index = 0

    def error(self, token: _Token, problem: str) -> QueryError:
        return QueryError(self.setting, self.text, token.position, problem)

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def word(self, *words: str) -> bool:
        if self.token.kind == "name" and self.token.text in words:
            self.index += 1
            return True
        return False

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise self.error(self.token, "the expression is empty")
        node = self.disjunction()
        if self.token.kind != "end":
            raise self.error(self.token, f"expected 'and', 'or' or the end, not "
                                         f"{self.token.text!r}")
        return node

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.word("or"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while self.word("and"):
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Node:
        if self.word("not"):
            return Not(self.negation())
        if self.token.kind == "paren" and self.token.text == "(":
            opening = self.take()
            node = self.disjunction()
            if not (self.token.kind == "paren" and self.token.text == ")"):
                raise self.error(self.token, f"expected ')' to close the '(' at position "
                                             f"{opening.position}")
            self.take()
            return node
        return self.comparison()

    def operand(self) -> tuple[_Token, Field | Value]:
        token = self.take()
        if token.kind == "number":
            value = float(token.text)
            return token, int(token.text) if re.fullmatch(r"-?\d+", token.text) else value
        if token.kind == "string":
            return token, _unquote(token.text)
        if token.kind == "name" and token.text in ("true", "false", "null"):
            return token, {"true": True, "false": False, "null": None}[token.text]
        if token.kind == "name" and token.text not in _WORDS:
            return token, _field(token.text, self.text, token.position, self.setting)
        shown = "the end" if token.kind == "end" else repr(token.text)
        raise self.error(token, f"expected a field or a value, not {shown}")

    def comparison(self) -> Node:
        left_token, left = self.operand()
        if self.token.kind != "op":
            if isinstance(left, Field) and left.kind in ("bool", None):
                return Compare(left, "==", True)
            if isinstance(left, Field):
                raise self.error(self.token, f"{left.name} is {left.kind}, not boolean: "
                                             "compare it with an operator")
            raise self.error(left_token, "a value alone is not a condition")
        op_token = self.take()
        right_token, right = self.operand()
        if isinstance(left, Field) == isinstance(right, Field):
            what = "two fields" if isinstance(left, Field) else "two values"
            raise self.error(op_token, f"{op_token.text!r} compares {what}; compare a field "
                                       "with a value")
        if isinstance(left, Field):
            return _checked(left, op_token.text, right, self, right_token)
        assert isinstance(right, Field)
        return _checked(right, _FLIP[op_token.text], left, self, left_token)


def _checked(field: Field, op: str, value: Value | Field, parser: _Parser,
             token: _Token) -> Compare:
    """A comparison whose value fits the field's type and the operator."""
    assert not isinstance(value, Field)
    kind = field.kind
    if value is None or isinstance(value, bool):
        if op not in ("==", "!="):
            raise parser.error(token, f"{op!r} cannot compare with {token.text}; use == or !=")
        if isinstance(value, bool) and kind not in ("bool", None):
            raise parser.error(token, f"{field.name} is {kind}; it cannot equal {token.text}")
    elif isinstance(value, str):
        if kind not in ("text", None):
            raise parser.error(token, f"{field.name} is {kind}; it cannot be compared with a "
                                      "string")
    elif kind in ("text", "bool"):
        raise parser.error(token, f"{field.name} is {kind}; it cannot be compared with a "
                                  "number")
    return Compare(field, op, value)


def parse_where(text: str, setting: str = "where") -> Node:
    """Parse a filter expression into its syntax tree (checked against the schema)."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{setting} must be a string, got {type(text).__name__}")
    return _Parser(text, setting).parse()


def parse_field(name: str, setting: str = "columns", selecting: bool = True) -> Field:
    """Parse one field name (a column or a JSON path; ``selecting``: also code, whole JSON)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{setting}: a field name must be a non-empty string, "
                                   f"got {name!r}")
    stripped = name.strip()
    if _TOKEN.fullmatch(stripped) is None or not all(_KEY.match(part)
                                                    for part in stripped.split(".")):
        raise QueryError(setting, name, 0, f"{name!r} is not a field name")
    return _field(stripped, name, 0, setting, selecting)


def parse_columns(names: Sequence[str] | str, setting: str = "columns") -> list[Field]:
    """Parse a list of field names (or one comma-separated string)."""
    if isinstance(names, str):
        names = [part for part in names.split(",") if part.strip()]
    fields = [parse_field(name, setting) for name in names]
    if not fields:
        raise InvalidArgumentError(f"{setting}: name at least one field")
    return fields


def parse_order(text: Sequence[str] | str, setting: str = "order_by") -> list[OrderKey]:
    """Parse an ordering: ``"public_metrics.sum_radii desc, id"`` (or a list of such keys)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    keys = []
    for part in parts:
        words = part.split()
        direction = words[-1].lower() if len(words) == 2 else "asc"
        if len(words) not in (1, 2) or direction not in ("asc", "desc"):
            raise QueryError(setting, part, 0, f"expected 'field [asc|desc]', got {part!r}")
        keys.append(OrderKey(parse_field(words[0], setting, selecting=False),
                             direction == "desc"))
    return keys
