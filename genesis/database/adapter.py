"""A small synchronous raw-SQL adapter for scripts, dashboards and notebooks.

    from genesis.database.adapter import get_database_adapter

    with get_database_adapter() as db:                       # DATABASE_URL, or the default
        db.execute("SELECT id, combined_score FROM programs WHERE correct = ? "
                   "ORDER BY combined_score DESC LIMIT ?", (True, 5))
        for row in db.fetchall():
            print(row)

Statements use ``?`` placeholders on both backends; for PostgreSQL they are translated to
``%s`` outside string literals, quoted identifiers, comments and dollar-quoted bodies, and
every ``%`` (inside literals too, as psycopg requires) is escaped. Parameters are always
bound by the driver, never formatted into the SQL. On PostgreSQL every transaction starts
with ``search_path`` set to the run's schema (SET LOCAL, so a transaction-pooling PgBouncer
keeps it), and the same table names work on both backends. Use
``jsonb_exists()`` rather than the ``?`` operator in PostgreSQL-only SQL.

The adapter opens a run the way a writable ``ProgramDatabase`` does: a run that does not
exist yet (a missing SQLite file; on PostgreSQL, a missing ``genesis_<run>`` schema) is
created, empty, with the current Genesis schema, so ``programs`` can be queried and tables
created with DDL land in the run, on a fresh database as on a used one. An existing run is
used as it is: the adapter never upgrades a ShinkaEvolve or older Genesis file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from genesis.database.config import DatabaseConfig
from genesis.database.errors import translating
from genesis.database.url import DatabaseURL, resolve_url

__all__ = ["DatabaseAdapter", "get_database_adapter", "translate_placeholders"]

Params = Sequence[Any]


def _skip_quoted(sql: str, start: int, quote: str, backslashes: bool) -> int:
    """Return the index just past the literal opened at ``start``."""
    i = start + 1
    while i < len(sql):
        char = sql[i]
        if backslashes and char == "\\":
            i += 2
            continue
        if char == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)


def _skip_block_comment(sql: str, start: int) -> int:
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


def _dollar_tag(sql: str, start: int) -> str | None:
    end = start + 1
    while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
        end += 1
    if end < len(sql) and sql[end] == "$" and not sql[start + 1:end][:1].isdigit():
        return sql[start:end + 1]
    return None


def translate_placeholders(sql: str) -> str:
    """Turn ``?`` placeholders into ``%s`` (and ``%`` into ``%%``) for psycopg."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"":
            escaped = char == "'" and i > 0 and sql[i - 1] in "eE"
            end = _skip_quoted(sql, i, char, escaped)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = len(sql) if newline < 0 else newline
        elif sql.startswith("/*", i):
            end = _skip_block_comment(sql, i)
        elif char == "$" and (tag := _dollar_tag(sql, i)):
            close = sql.find(tag, i + len(tag))
            end = len(sql) if close < 0 else close + len(tag)
        else:
            out.append("%s" if char == "?" else "%%" if char == "%" else char)
            i += 1
            continue
        out.append(sql[i:end].replace("%", "%%"))  # psycopg reads % even inside literals
        i = end
    return "".join(out)


def _create_run(url: DatabaseURL) -> None:
    """Create the run of ``url`` with the current schema if it is missing (as an open does)."""
    from genesis.database.backends import create_store

    async def open_once() -> None:
        async with create_store(url, DatabaseConfig(pool_max_size=1, sqlite_readers=1)):
            pass

    with ThreadPoolExecutor(max_workers=1) as executor:  # works inside a running event loop
        executor.submit(asyncio.run, open_once()).result()


class DatabaseAdapter:
    """One synchronous connection to a run, with ``?`` placeholders on both backends."""

    def __init__(self, url: DatabaseURL, *, dict_rows: bool = False,
                 threads: bool = False) -> None:
        self.url = url
        self.backend = url.backend
        self.dict_rows = dict_rows
        self.threads = threads  # usable from several threads, one at a time
        self._conn: Any = None
        self._cursor: Any = None
        self._schema = ""  # PostgreSQL: the run's schema, set when connected

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"<DatabaseAdapter {self.url} {state}>"

    def connect(self) -> DatabaseAdapter:
        """Open the connection, creating the run first if it does not exist (idempotent)."""
        if self._conn is not None:
            return self
        with translating(self.url):
            if self.url.is_sqlite:
                if not Path(self.url.path).exists():
                    _create_run(self.url)
                self._conn = sqlite3.connect(self.url.path, timeout=60.0,
                                             check_same_thread=not self.threads)
                if self.dict_rows:
                    self._conn.row_factory = sqlite3.Row
            else:
                self._conn = self._connect_postgres()
        return self

    def _connect_postgres(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row, tuple_row

        from genesis.database.backends.postgres_connect import connection_kwargs, unreachable
        from genesis.database.backends.postgres_schema import schema_name

        options = {**connection_kwargs(self.url, 30.0), "autocommit": False}
        try:
            conn = psycopg.connect(self.url.conninfo(), **options,
                                   row_factory=dict_row if self.dict_rows else tuple_row)
        except psycopg.OperationalError as exc:
            raise unreachable(self.url, exc) from None
        schema = schema_name(self.url.run)
        try:
            with conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute("SELECT to_regnamespace(%s) IS NULL", (schema,))
                missing = cursor.fetchone()[0]
                conn.commit()
                if missing:
                    _create_run(self.url)
        except BaseException:
            conn.close()
            raise
        self._schema = schema
        return conn

    def _begin_in_run(self, conn: Any) -> None:
        """Open the next PostgreSQL transaction with ``search_path`` set to the run's schema.

        SET LOCAL lasts one transaction, which is what a transaction-pooling PgBouncer keeps
        together on one server connection; a session-level setting would be lost there.
        """
        if self.url.is_sqlite:
            return
        from psycopg.pq import TransactionStatus

        if conn.info.transaction_status != TransactionStatus.IDLE:
            return
        conn.execute("SELECT set_config('search_path', %s, true)", (self._schema,))

    def _require(self) -> Any:
        if self._conn is None:
            self.connect()
        return self._conn

    def _sql(self, sql: str) -> str:
        return sql if self.url.is_sqlite else translate_placeholders(sql)

    @staticmethod
    def _params(params: Params | None) -> Params:
        if params is None:
            return ()
        if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
            raise TypeError("params must be a sequence matching the ? placeholders")
        return params

    def execute(self, sql: str, params: Params | None = None) -> DatabaseAdapter:
        """Run one statement with bound parameters; fetch its rows with fetchone/fetchall."""
        conn = self._require()
        with translating(self.url):
            self._begin_in_run(conn)
            self._cursor = conn.cursor()
            self._cursor.execute(self._sql(sql), self._params(params))
        return self

    def executemany(self, sql: str, rows: Iterable[Params]) -> DatabaseAdapter:
        """Run one statement once per parameter sequence."""
        conn = self._require()
        with translating(self.url):
            self._begin_in_run(conn)
            self._cursor = conn.cursor()
            self._cursor.executemany(self._sql(sql), [self._params(r) for r in rows])
        return self

    def _rows(self, rows: list[Any]) -> list[Any]:
        if self.dict_rows and self.url.is_sqlite:
            return [dict(row) for row in rows]
        return rows

    def fetchone(self) -> Any:
        """Return the next row of the last statement, or None."""
        if self._cursor is None:
            return None
        with translating(self.url):
            row = self._cursor.fetchone()
        return self._rows([row])[0] if row is not None else None

    def fetchall(self) -> list[Any]:
        """Return the remaining rows of the last statement."""
        if self._cursor is None:
            return []
        with translating(self.url):
            return self._rows(list(self._cursor.fetchall()))

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement (-1 if unknown)."""
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def columns(self) -> list[str]:
        """Column names of the last statement's result."""
        if self._cursor is None or self._cursor.description is None:
            return []
        return [column[0] for column in self._cursor.description]

    def commit(self) -> None:
        """Commit the current transaction."""
        if self._conn is not None:
            with translating(self.url):
                self._conn.commit()

    def rollback(self) -> None:
        """Roll back the current transaction."""
        if self._conn is not None:
            with translating(self.url):
                self._conn.rollback()

    def close(self) -> None:
        """Close the connection (idempotent); uncommitted work is rolled back."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> DatabaseAdapter:
        return self.connect()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()


def get_database_adapter(
    database_url: str | None = None, db_path: str | None = None, *, dict_rows: bool = False
) -> DatabaseAdapter:
    """Return an adapter for a URL, a SQLite path, or (neither given) the configured run."""
    config = DatabaseConfig(database_url=database_url, db_path=db_path)
    return DatabaseAdapter(resolve_url(config), dict_rows=dict_rows)
