"""Compile the filter language's syntax tree (:mod:`genesis.database.query_language`) to SQL.

A compiler returns final SQL, with the backend's own placeholders, and its parameters
(final: PostgreSQL's jsonpath operator ``@?`` must not meet a ``?`` -> ``%s`` translation).
Column names come from the schema's list; JSON paths are bound as parameters (``$."k"`` on
SQLite, a key array or a jsonpath on PostgreSQL); literals are bound values. On PostgreSQL
an equality on a JSON path is a containment (``metadata @> '{"patch_type": "diff"}'``),
which the ``jsonb_path_ops`` GIN indexes serve, and the other comparisons a jsonpath filter
of the same type only (``public_metrics @? 'strict $."sum_radii" ? (@.type() == "number" &&
@ > 2.4)'``), which no index serves; SQLite reads JSON with ``json_extract``.

A path with an index (:mod:`genesis.database.json_indexes`) is compared, where no ``not``
applies (NULL may then stand for false), in its index's expression: a B-tree range scan
on SQLite for every comparison but ``!=``, and on PostgreSQL for ranges on numbers.
``tests/test_query_semantics.py`` checks that all of these mean what plain Python means.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from genesis.database.code_search import SearchTerms
from genesis.database.json_indexes import JsonIndex
from genesis.database.query_language import And, Compare, Field, Node, Not, Or, OrderKey

__all__ = ["PostgresCompiler", "QueryCompiler", "SQLiteCompiler", "compiler_for"]

Fragment = tuple[str, list[Any]]
_SQL_OPERATORS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class QueryCompiler(ABC):
    """Turn syntax trees, orderings and column lists into SQL fragments."""

    q = "?"  # the backend's placeholder

    def __init__(self, indexed: Iterable[JsonIndex] = ()) -> None:
        self.indexed = {index.field: index for index in indexed}
        self.uses_index = False  # set by where() once a comparison took an index's shape
        self.prefer_indexes = False  # SQLite: tell the planner the indexed terms are rare

    def where(self, node: Node, positive: bool = True) -> Fragment:
        """SQL that is true exactly where the filter holds.

        Never NULL where a ``NOT`` applies to it; where none does (``positive``), NULL may
        stand for false, which lets a comparison take the shape an index serves.
        """
        if isinstance(node, And | Or):
            parts = [self.where(operand, positive) for operand in node.operands]
            joiner = " AND " if isinstance(node, And) else " OR "
            return ("(" + joiner.join(sql for sql, _ in parts) + ")",
                    [param for _, params in parts for param in params])
        if isinstance(node, Not):
            sql, params = self.where(node.operand, positive=False)
            return f"(NOT {sql})", params
        if node.field.path:
            index = self.indexed.get(node.field) if positive else None
            found = None if index is None else self.indexed_compare(index, node)
            self.uses_index = self.uses_index or found is not None
            return found if found is not None else self.json_compare(node)
        return self.column_compare(node)

    def indexed_compare(self, index: JsonIndex, node: Compare) -> Fragment | None:
        """The comparison in the shape the path's index serves (None: none serves it)."""
        return None

    def column_compare(self, node: Compare) -> Fragment:
        """A comparison of a program column with a literal."""
        column = f"p.{node.field.column}"
        if node.value is None:
            return f"({column} IS {'NOT ' if node.op == '!=' else ''}NULL)", []
        return f"COALESCE({column} {_SQL_OPERATORS[node.op]} {self.q}, FALSE)", [node.value]

    def search_filters(self, alias: str, island: int | None, correct: bool | None
                       ) -> Fragment:
        """`` AND ...`` restricting code search to an island and a correctness."""
        sql, params = "", []
        if island is not None:
            sql += f" AND {alias}.island_idx = {self.q}"
            params.append(island)
        if correct is not None:
            sql += f" AND {alias}.correct = {self.q}"
            params.append(correct)
        return sql, params

    @abstractmethod
    def search(self, terms: SearchTerms, island: int | None, correct: bool | None,
               limit: int) -> Fragment:
        """Code search: (id, generation, island, score, correct, code) of the best hits."""

    @abstractmethod
    def json_keys(self, column: str) -> str:
        """The distinct top-level keys of a JSON column's objects, sorted."""

    @abstractmethod
    def json_compare(self, node: Compare) -> Fragment:
        """A comparison of a JSON path with a literal."""

    embedding = "p.embedding"

    def value(self, column: str) -> str:
        """SQL for a column's value; JSON as JSON text (SQLite) or JSONB (PostgreSQL)."""
        return self.embedding if column == "embedding" else f"p.{column}"

    @abstractmethod
    def document(self, column: str) -> str:
        """SQL for a JSON column's whole document as JSON text ('null' if absent or unreadable)."""

    @abstractmethod
    def sort_value(self, field: Field) -> Fragment:
        """SQL for a field's value as the database orders it."""

    def order(self, keys: Sequence[OrderKey]) -> Fragment:
        """An ORDER BY list (missing values last, then ``p.id`` to make it total)."""
        parts, params = [], []
        for key in keys:
            sql, extra = self.sort_value(key.field)
            parts.append(f"{sql} {'DESC' if key.descending else 'ASC'} NULLS LAST")
            params += extra
        return ", ".join([*parts, "p.id"]), params


class SQLiteCompiler(QueryCompiler):
    """``json_extract`` and ``json_type`` on JSON text (unreadable JSON matches nothing)."""

    @staticmethod
    def _path(field: Field) -> str:
        return "$" + "".join(f'."{key}"' for key in field.path)

    embedding = "COALESCE(p.embedding_vec, p.embedding)"

    def search(self, terms: SearchTerms, island: int | None, correct: bool | None,
               limit: int) -> Fragment:
        filters, params = self.search_filters("q", island, correct)
        sql = ("SELECT p.id, p.generation, p.island_idx, p.combined_score, p.correct, p.code "
               "FROM (SELECT programs_fts.rowid AS rid, programs_fts.rowid IN "
               "(SELECT rowid FROM programs_fts WHERE programs_fts MATCH ?) AS phrase, "
               "bm25(programs_fts) AS score FROM programs_fts "
               "JOIN programs q ON q.rowid = programs_fts.rowid "
               f"WHERE programs_fts MATCH ?{filters} ORDER BY phrase DESC, score, q.id LIMIT ?"
               ") top JOIN programs p ON p.rowid = top.rid "
               "ORDER BY top.phrase DESC, top.score, p.id")
        return sql, [terms.fts5_phrase(), terms.fts5_all(), *params, limit]

    def json_keys(self, column: str) -> str:
        return (f"SELECT DISTINCT j.key FROM programs p, json_each(CASE WHEN "
                f"json_valid(p.{column}) THEN CASE WHEN json_type(p.{column}) = 'object' "
                f"THEN p.{column} END END) j ORDER BY 1")

    def document(self, column: str) -> str:
        return f"(CASE WHEN json_valid(p.{column}) THEN p.{column} ELSE 'null' END)"

    def sort_value(self, field: Field) -> Fragment:
        if not field.path:
            return f"p.{field.column}", []
        column = f"p.{field.column}"
        return (f"(CASE WHEN json_valid({column}) THEN json_extract({column}, ?) END)",
                [self._path(field)])

    @staticmethod
    def _kind(column: str) -> str:
        """The JSON type at the bound path, NULL for unreadable JSON."""
        return f"(CASE WHEN json_valid({column}) THEN json_type({column}, ?) END)"

    def json_compare(self, node: Compare) -> Fragment:
        column, path = f"p.{node.field.column}", self._path(node.field)
        kind = self._kind(column)
        if node.value is None:
            test = "=" if node.op == "==" else "<>"
            return f"(COALESCE({kind}, 'null') {test} 'null')", [path]
        if isinstance(node.value, bool):
            wanted = node.value == (node.op == "==")
            return f"COALESCE({kind} = ?, FALSE)", [path, "true" if wanted else "false"]
        types = _sqlite_types(node.value)
        sql = (f"COALESCE(CASE WHEN {kind} IN {types} THEN json_extract({column}, ?) "
               f"{_SQL_OPERATORS[node.op]} ? END, FALSE)")
        return sql, [path, path, node.value]

    def indexed_compare(self, index: JsonIndex, node: Compare) -> Fragment | None:
        if node.value is None or isinstance(node.value, bool) or node.op == "!=":
            return None
        value, kind = index.sqlite_expression("p"), self._kind(f"p.{node.field.column}")
        test = f"{value} {_SQL_OPERATORS[node.op]} ?"
        if self.prefer_indexes:  # without it, ORDER BY id can make SQLite scan in id order
            test = f"likelihood({test}, 0.001)"
        return (f"({test} AND {kind} IN {_sqlite_types(node.value)})",
                [node.value, self._path(node.field)])


class PostgresCompiler(QueryCompiler):
    """Containment and jsonpath on JSONB: the operators of the ``jsonb_path_ops`` indexes."""

    q = "%s"

    def search(self, terms: SearchTerms, island: int | None, correct: bool | None,
               limit: int) -> Fragment:
        filters, params = self.search_filters("p", island, correct)
        words = "to_tsquery('simple'::regconfig, %s)"  # folded to a constant when planned
        sql = ("SELECT p.id, p.generation, p.island_idx, p.combined_score, p.correct, p.code "
               f"FROM programs p WHERE p.code_tsv @@ {words}{filters} "
               f"ORDER BY (p.code_tsv @@ {words}) DESC, ts_rank_cd(p.code_tsv, {words}) DESC, "
               "p.id LIMIT %s")
        every = terms.tsquery_all()
        return sql, [every, *params, terms.tsquery_phrase(), every, limit]

    def json_keys(self, column: str) -> str:
        return (f"SELECT DISTINCT k FROM programs p, jsonb_object_keys(CASE WHEN "
                f"jsonb_typeof(p.{column}) = 'object' THEN p.{column} END) k ORDER BY 1")

    def document(self, column: str) -> str:
        return f"COALESCE(p.{column}::text, 'null')"

    def sort_value(self, field: Field) -> Fragment:
        if not field.path:
            return f"p.{field.column}", []
        return f"(p.{field.column} #> %s::text[])", [list(field.path)]

    def json_compare(self, node: Compare) -> Fragment:
        column, field = f"p.{node.field.column}", node.field
        if node.value is None:
            test = "=" if node.op == "==" else "<>"
            return (f"(COALESCE(jsonb_typeof({column} #> %s::text[]), 'null') {test} 'null')",
                    [list(field.path)])
        if node.op == "==" or isinstance(node.value, bool):
            value = node.value if node.op == "==" else not node.value
            document: Any = value
            for key in reversed(field.path):
                document = {key: document}
            return f"({column} @> %s::jsonb)", [json.dumps(document)]
        literal = json.dumps(node.value)  # a JSON number or string is a jsonpath literal
        kind = "string" if isinstance(node.value, str) else "number"
        path = "strict $" + "".join(f'."{key}"' for key in field.path)
        return (f"COALESCE({column} @? %s::jsonpath, FALSE)",
                [f'{path} ? (@.type() == "{kind}" && @ {node.op} {literal})'])


    def indexed_compare(self, index: JsonIndex, node: Compare) -> Fragment | None:
        # Numbers only: JSONB orders strings by the database's collation, the language
        # by code point; equality stays a containment, which the GIN index serves.
        value = node.value
        if node.op in ("==", "!=") or not isinstance(value, int | float) or isinstance(
                value, bool):
            return None
        expression = index.postgres_expression("p")
        return (f"({expression} {node.op} %s::jsonb AND jsonb_typeof({expression}) = "
                "'number')", [json.dumps(value)])


def _sqlite_types(value: object) -> str:
    """The ``json_type`` names a comparison with ``value`` may match."""
    return "('text')" if isinstance(value, str) else "('integer', 'real')"


def compiler_for(dialect: str, indexed: Iterable[JsonIndex] = ()) -> QueryCompiler:
    """Return the compiler of a backend dialect ('sqlite' or 'postgres').

    ``indexed``: the run's JSON path indexes, whose comparisons get their index's shape.
    """
    return SQLiteCompiler(indexed) if dialect == "sqlite" else PostgresCompiler(indexed)
