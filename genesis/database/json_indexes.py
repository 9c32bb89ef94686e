"""Indexes on JSON paths: what makes ``public_metrics.sum_radii > 2.4`` an index range scan.

A run's filters on a JSON path read every row unless an index serves the path: SQLite has
no index over JSON at all, and PostgreSQL's ``jsonb_path_ops`` GIN indexes serve equality
(containment) but not ranges. ``create_index("public_metrics.sum_radii")`` builds a B-tree
on the value at that path (``json_extract`` on SQLite, the JSONB value ``#>`` on
PostgreSQL) and records the path in the run's ``json_indexes`` table; the query compiler
(:mod:`genesis.database.backends.query_sql`) then writes comparisons on that path in the
index's own expression, so the planner uses it. The expression's path comes from that
table, whose paths were checked by :func:`index_field` when the index was made: nothing of
a filter's text reaches SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from genesis.database.errors import InvalidArgumentError
from genesis.database.query_language import JSON_COLUMNS, Field, parse_field

__all__ = ["JsonIndex", "index_field"]

_PREFIX = "programs_json_"
_READABLE = 36  # characters of the field kept in the index name, before its hash


def index_field(name: str, setting: str = "field") -> Field:
    """Parse the JSON path an index is made on (``metadata.patch_type``), naming the setting."""
    field = parse_field(name, setting, selecting=False)
    if field.column not in JSON_COLUMNS or not field.path:
        raise InvalidArgumentError(f"{setting}: indexes are made on JSON paths such as "
                                   f"public_metrics.sum_radii (a key of "
                                   f"{', '.join(JSON_COLUMNS)}), got {name!r}")
    return field


@dataclass(frozen=True)
class JsonIndex:
    """An index on the value at one JSON path of the programs."""

    field: Field

    @property
    def name(self) -> str:
        """The index's SQL name: readable, and made unique by a hash of the field."""
        readable = self.field.name.replace(".", "_")[:_READABLE]
        digest = hashlib.sha1(self.field.name.encode()).hexdigest()[:8]
        return f"{_PREFIX}{readable}_{digest}"

    def sqlite_expression(self, table: str = "") -> str:
        """The indexed SQLite expression (``table`` qualifies the column, as in a query)."""
        column = f"{table}.{self.field.column}" if table else self.field.column
        path = "$" + "".join(f'."{key}"' for key in self.field.path)
        return f"(CASE WHEN json_valid({column}) THEN json_extract({column}, '{path}') END)"

    def postgres_expression(self, table: str = "") -> str:
        """The indexed PostgreSQL expression: the JSONB value at the path."""
        column = f"{table}.{self.field.column}" if table else self.field.column
        keys = ",".join(f'"{key}"' for key in self.field.path)  # quoted: a key "null" too
        return f"({column} #> '{{{keys}}}'::text[])"
