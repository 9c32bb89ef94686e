"""``ProgramDatabase.cursor`` and ``.conn``: the raw SQL that ShinkaEvolve's code runs itself.

ShinkaEvolve's runner and tools reach past the database API with a few SQL statements of
their own. They run here on both backends:

* ``UPDATE programs SET metadata = ? WHERE id = ?`` is carried out by the engine
  (:meth:`~genesis.database.AsyncProgramDatabase.update_program_metadata`), so the
  metadata is validated, NaN becomes null, and the job-id index follows.
* Anything else goes to the run through :class:`~genesis.database.adapter.DatabaseAdapter`
  (``?`` placeholders on both backends). On PostgreSQL, SQLite's ``json_valid(column)`` and
  ``json_extract(column, '$.path')`` and comparisons of ``correct`` with 0 or 1 are
  rewritten to their PostgreSQL equivalents; other SQLite-only SQL fails there with the
  server's error.

Rows behave like ``sqlite3.Row``: by index, by column name, and ``dict(row)``. Like
``sqlite3``, writes stay in a transaction until ``conn.commit()``; a read outside one does
not leave a transaction open on the server.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from genesis.database.adapter import DatabaseAdapter

if TYPE_CHECKING:
    from genesis.compat.shinka.dbase import ProgramDatabase

__all__ = ["LegacyConnection", "LegacyCursor", "LegacyRow", "postgres_sql"]

_METADATA_UPDATE = re.compile(
    r"\s*UPDATE\s+programs\s+SET\s+metadata\s*=\s*\?\s+WHERE\s+id\s*=\s*\?\s*;?\s*", re.I)
_JSON_VALID = re.compile(r"\bjson_valid\s*\(\s*([\w.]+)\s*\)", re.I)
_JSON_EXTRACT = re.compile(r"\bjson_extract\s*\(\s*([\w.]+)\s*,\s*('(?:[^']|'')*')\s*\)", re.I)
_CORRECT_NUMBER = re.compile(r"\b((?:\w+\.)?correct)\s*(=|!=|<>)\s*([01])\b", re.I)
_READS = ("SELECT", "WITH", "PRAGMA", "EXPLAIN", "VALUES")


def postgres_sql(sql: str) -> str:
    """Rewrite the SQLite-only pieces legacy statements use into PostgreSQL."""
    sql = _JSON_VALID.sub(r"(\1 IS NOT NULL)", sql)
    sql = _JSON_EXTRACT.sub(r"(jsonb_path_query_first(\1, \2) #>> '{}')", sql)
    return _CORRECT_NUMBER.sub(
        lambda m: f"{m[1]} {m[2]} {'TRUE' if m[3] == '1' else 'FALSE'}", sql)


class LegacyRow:
    """A result row addressable by position and by column name, like ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        self._names = tuple(names)
        self._values = tuple(values)

    def keys(self) -> list[str]:
        """Return the column names."""
        return list(self._names)

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._names.index(key)]
            except ValueError:
                raise IndexError(f"no column named {key!r}") from None
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LegacyRow):
            return self._values == other._values and self._names == other._names
        return self._values == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LegacyRow({dict(zip(self._names, self._values, strict=True))!r})"


class LegacyConnection:
    """``ProgramDatabase.conn``: commit/rollback of the statements run through its cursors."""

    def __init__(self, database: ProgramDatabase) -> None:
        self._database = database
        self._adapter = DatabaseAdapter(database.url, threads=True)
        self._lock = threading.RLock()
        self._dirty = False

    def cursor(self) -> LegacyCursor:
        """Return a new cursor on this connection."""
        return LegacyCursor(self)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> LegacyCursor:
        """Run one statement on a new cursor and return it (as ``sqlite3`` does)."""
        return self.cursor().execute(sql, parameters)

    def commit(self) -> None:
        """Commit the statements run since the last commit."""
        with self._lock:
            self._adapter.commit()
            self._dirty = False

    def rollback(self) -> None:
        """Roll back the statements run since the last commit."""
        with self._lock:
            self._adapter.rollback()
            self._dirty = False

    def close(self) -> None:
        """Close the connection; uncommitted statements are rolled back."""
        with self._lock:
            self._adapter.close()

    def _run(self, sql: str, parameters: Sequence[Any], many: bool) -> tuple[list[Any], int]:
        """Run SQL through the adapter; return (rows as LegacyRow, rowcount)."""
        if self._adapter.url.is_postgres:
            sql = postgres_sql(sql)
        reading = sql.lstrip().split(None, 1)[0].upper() in _READS if sql.strip() else False
        with self._lock:
            if many:
                self._adapter.executemany(sql, parameters)
            else:
                self._adapter.execute(sql, parameters)
            names = self._adapter.columns
            rows = [LegacyRow(names, row) for row in self._adapter.fetchall()] if names else []
            count = self._adapter.rowcount
            if reading and not self._dirty:
                self._adapter.commit()  # a read alone keeps no transaction (nor snapshot) open
            elif not reading:
                self._dirty = True
        return rows, count


class LegacyCursor:
    """A DB-API cursor over the run (``ProgramDatabase.cursor``)."""

    arraysize = 1

    def __init__(self, connection: LegacyConnection) -> None:
        self.connection = connection
        self._rows: list[Any] = []
        self.rowcount = -1
        self.description: tuple[tuple[Any, ...], ...] | None = None

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> LegacyCursor:
        """Run one statement with ``?`` placeholders."""
        if _METADATA_UPDATE.fullmatch(sql) and len(parameters) == 2:
            payload, program_id = parameters
            metadata = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
            stored = self.connection._database.update_program_metadata(program_id, metadata)
            self._rows, self.rowcount, self.description = [], int(bool(stored)), None
            return self
        self._rows, self.rowcount = self.connection._run(sql, parameters or (), many=False)
        self._describe()
        return self

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]]) -> LegacyCursor:
        """Run one statement once per parameter sequence."""
        self._rows, self.rowcount = self.connection._run(sql, list(seq_of_parameters),
                                                         many=True)
        self._describe()
        return self

    def _describe(self) -> None:
        names = self._rows[0].keys() if self._rows else self.connection._adapter.columns
        self.description = tuple((name, None, None, None, None, None, None)
                                 for name in names) or None

    def fetchone(self) -> Any:
        """Return the next row, or None."""
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Return up to ``size`` more rows."""
        size = self.arraysize if size is None else size
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    def fetchall(self) -> list[Any]:
        """Return the remaining rows."""
        taken, self._rows = self._rows, []
        return taken

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.pop(0)

    def close(self) -> None:
        """Forget the remaining rows."""
        self._rows = []
