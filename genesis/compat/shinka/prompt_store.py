"""Storage of ShinkaEvolve's prompt-evolution tables, on SQLite and on PostgreSQL.

The tables are ShinkaEvolve 0.0.7's: ``system_prompts`` (one row per prompt; its score and
program lists and its metadata as JSON), ``prompt_archive`` (the ids of the archived
prompts) and ``prompt_metadata_store`` (``last_generation`` and ``best_prompt_id``).

* **SQLite**: the file named by the URL, in WAL mode, with ShinkaEvolve's column layout and
  JSON text conventions (``'[]'``/``'{}'`` when empty), so ShinkaEvolve reads what Genesis
  wrote and the other way round. A read-only store opens the file with ``mode=ro`` and
  writes nothing (SQLite itself creates the ``-wal``/``-shm`` index files of a WAL file
  that no other connection has open).
* **PostgreSQL**: the same tables, JSON as JSONB, in the run's schema (``genesis_<run>``)
  beside its programs, so every machine of a run shares its prompts.

A store holds one connection, shared by threads under a lock. Each write is one short
transaction serialised with every other prompt writer of the run (``BEGIN IMMEDIATE`` on
SQLite, a transaction-level advisory lock on PostgreSQL), so a read-modify-write inside it
never loses an update. A non-finite number is stored as null inside JSON, and as 0 (the
column default) in a ``NOT NULL`` column, with a warning naming the field.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import select
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import Any

from genesis.database.adapter import translate_placeholders
from genesis.database.backends.sqlite_schema import connect_file, enable_wal
from genesis.database.codec import decode_json, dumps, without_nonfinite
from genesis.database.errors import (
    GenesisError,
    OperationalError,
    ReadOnlyError,
    SchemaError,
    translating,
)
from genesis.database.url import DatabaseURL

__all__ = [
    "COLUMNS",
    "InvalidPromptError",
    "PromptDatabaseNotFoundError",
    "PromptStore",
    "finite_number",
    "open_prompt_store",
]

logger = logging.getLogger(__name__)

BUSY_TIMEOUT = 60.0  # seconds a SQLite writer waits for another writer's lock
CONNECT_TIMEOUT = 30.0  # seconds to connect to PostgreSQL
TABLES = ("system_prompts", "prompt_archive", "prompt_metadata_store")
# A prompt table named in SQL (not a quoted name, not already schema-qualified).
_PROMPT_TABLE = re.compile(rf"(?<![\w.'\"])({'|'.join(TABLES)})\b(?!['\"])")
# ShinkaEvolve's columns, in its order; {real} and {json_*} differ between the backends.
COLUMNS: dict[str, str] = {
    "id": "TEXT PRIMARY KEY",
    "prompt_text": "TEXT NOT NULL",
    "name": "TEXT",
    "description": "TEXT",
    "parent_id": "TEXT",
    "generation": "INTEGER NOT NULL",
    "program_generation": "INTEGER NOT NULL DEFAULT 0",
    "patch_type": "TEXT NOT NULL",
    "timestamp": "{real} NOT NULL",
    "program_count": "INTEGER NOT NULL DEFAULT 0",
    "correct_program_count": "INTEGER NOT NULL DEFAULT 0",
    "total_percentile": "{real} NOT NULL DEFAULT 0.0",
    "total_improvement": "{real} NOT NULL DEFAULT 0.0",
    "fitness": "{real} NOT NULL DEFAULT 0.0",
    "program_scores": "{json_list}",
    "program_ids": "{json_list}",
    "metadata": "{json_dict}",
}
JSON_COLUMNS: dict[str, type] = {"program_scores": list, "program_ids": list, "metadata": dict}
REAL_COLUMNS = frozenset({"timestamp", "total_percentile", "total_improvement", "fitness"})
FITNESS_COLUMNS = ("program_count", "correct_program_count", "total_percentile",
                   "total_improvement", "fitness", "program_scores", "program_ids")

_INDEXES_AND_TABLES = (
    "CREATE INDEX IF NOT EXISTS idx_prompts_generation ON system_prompts (generation)",
    "CREATE INDEX IF NOT EXISTS idx_prompts_timestamp ON system_prompts (timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_prompts_fitness ON system_prompts (fitness)",
    "CREATE INDEX IF NOT EXISTS idx_prompts_parent_id ON system_prompts (parent_id)",
    """CREATE TABLE IF NOT EXISTS prompt_archive (
    prompt_id TEXT PRIMARY KEY REFERENCES system_prompts (id) ON DELETE CASCADE
)""",
    "CREATE TABLE IF NOT EXISTS prompt_metadata_store (key TEXT PRIMARY KEY, value TEXT)",
)
_SELECT = ("SELECT p.*, a.prompt_id IS NOT NULL AS in_archive FROM system_prompts p "
           "LEFT JOIN prompt_archive a ON a.prompt_id = p.id")
# Prompts from best to worst, as ShinkaEvolve compares them: enough correct programs first,
# then fitness, then the newer one.
_BEST_FIRST = ("(p.correct_program_count >= ?) DESC, p.fitness DESC, p.timestamp DESC, "
               "p.id DESC")
_WORST_FIRST = "(p.correct_program_count >= ?), p.fitness, p.timestamp, p.id"
_LINEAGE = """WITH RECURSIVE chain (id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM system_prompts WHERE id = ?
    UNION ALL
    SELECT p.id, p.parent_id, c.depth + 1
    FROM system_prompts p JOIN chain c ON p.id = c.parent_id
    WHERE c.depth < ?
)
SELECT p.*, a.prompt_id IS NOT NULL AS in_archive
FROM chain c JOIN system_prompts p ON p.id = c.id
LEFT JOIN prompt_archive a ON a.prompt_id = p.id
WHERE c.depth > 0 ORDER BY c.depth DESC"""
_SET_METADATA = ("INSERT INTO prompt_metadata_store (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


class InvalidPromptError(GenesisError, ValueError):
    """A prompt field has a value that cannot be stored."""

    def __init__(self, field: str, problem: str, prompt_id: object = None) -> None:
        self.field = field
        super().__init__(f"{field}: {problem} (prompt {prompt_id!r})")


class PromptDatabaseNotFoundError(OperationalError, FileNotFoundError):
    """A read-only prompt database file does not exist."""


def finite_number(name: str, value: Any, prompt_id: object) -> float:
    """Return ``value`` as a float; NaN and infinity become 0.0, with a warning."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidPromptError(name, f"expected a number, got {type(value).__name__} "
                                 f"{value!r:.80}", prompt_id)
    number = float(value)
    if not math.isfinite(number):
        logger.warning("prompt %r: %s is %s; 0.0 is used instead", prompt_id, name, number)
        return 0.0
    return number


def _json_text(name: str, value: Any, prompt_id: object) -> str:
    kind = JSON_COLUMNS[name]
    if value is None:
        value = kind()
    elif isinstance(value, tuple) and kind is list:
        value = list(value)
    elif not isinstance(value, kind):
        raise InvalidPromptError(name, f"expected a {kind.__name__}, got "
                                 f"{type(value).__name__}", prompt_id)
    value, found = without_nonfinite(value, name)
    for where in found:
        logger.warning("prompt %r: %s is not finite, stored as null", prompt_id, where)
    try:
        return dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidPromptError(name, f"cannot be stored as JSON: {exc}", prompt_id) from None


def _encode(name: str, value: Any, prompt_id: object) -> Any:
    """Return the column value of one prompt field."""
    if name in JSON_COLUMNS:
        return _json_text(name, value, prompt_id)
    if name in REAL_COLUMNS:
        return finite_number(name, value, prompt_id)
    return value


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name, kind in JSON_COLUMNS.items():
        if name in row:
            row[name] = decode_json(row[name], kind)
    row["in_archive"] = bool(row["in_archive"])
    return row


class PromptStore(ABC):
    """One connection to a run's prompt tables; subclasses supply the backend's details."""

    types: dict[str, str]  # what {real}, {json_list} and {json_dict} stand for
    tables_sql: str  # the names of the tables present
    columns_sql: str  # the names of the columns of system_prompts
    cost_sql: str  # the sum of every metadata['llm']['cost'] that is a number

    def __init__(self, url: DatabaseURL, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self._lock = threading.RLock()
        self._in_transaction = False
        self.conn: Any = self._connect()
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "closed" if self.conn is None else "open"
        return f"<{type(self).__name__} {self.url} {mode} {state}>"

    # Backend details ---------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """Open the connection."""

    @abstractmethod
    def _begin(self) -> None:
        """Begin a write transaction holding the run's prompt-writer lock."""

    def _sql(self, sql: str) -> str:
        return sql

    def _connection(self) -> Any:
        if self.conn is None:
            raise OperationalError(f"the prompt database {self.url} is closed")
        return self.conn

    # Schema ------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self.read_only:
            missing = set(TABLES) - {row["name"] for row in self._rows(self.tables_sql)}
            if missing:
                raise SchemaError(f"{self.url} has no prompt tables ({', '.join(sorted(missing))}"
                                  "); open it once without read_only to create them")
            return
        columns = {name: kind.format(**self.types) for name, kind in COLUMNS.items()}
        table = ",\n    ".join(f"{name} {kind}" for name, kind in columns.items())
        with self.transaction():
            for statement in (f"CREATE TABLE IF NOT EXISTS system_prompts (\n    {table}\n)",
                              *_INDEXES_AND_TABLES):
                self._execute(statement)
            present = {row["name"] for row in self._rows(self.columns_sql)}
            for name, kind in columns.items():  # files of older ShinkaEvolve versions
                if name not in present:
                    self._execute(f"ALTER TABLE system_prompts ADD COLUMN {name} {kind}")

    # Statements --------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock, translating(self.url):
            return self._connection().execute(self._sql(sql), params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock, translating(self.url):
            cursor = self._connection().execute(self._sql(sql), params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    @contextmanager
    def transaction(self) -> Iterator[PromptStore]:
        """Run the block as one write transaction, serialised with the run's other writers."""
        if self.read_only:
            raise ReadOnlyError(f"{self.url} is opened read-only; writes are refused")
        with self._lock:
            try:
                self._begin()
                self._in_transaction = True
                yield self
                self._execute("COMMIT")
            except BaseException:
                with contextlib.suppress(GenesisError):  # a lost connection rolled it back
                    self._execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()

    # Reads -------------------------------------------------------------------------------

    def prompts(self, where: str = "TRUE", params: Sequence[Any] = (),
                order: str = "p.timestamp, p.id") -> list[dict[str, Any]]:
        """Return decoded prompt rows, each with its ``in_archive`` flag."""
        sql = f"{_SELECT} WHERE {where} ORDER BY {order}"
        return [_decode(row) for row in self._rows(sql, params)]

    def get(self, prompt_id: str) -> dict[str, Any] | None:
        """Return one prompt row, or None."""
        rows = self.prompts("p.id = ?", (prompt_id,))
        return rows[0] if rows else None

    def lineage(self, prompt_id: str, max_ancestors: int) -> list[dict[str, Any]]:
        """Return up to ``max_ancestors`` ancestors of a prompt, the oldest first."""
        return [_decode(row) for row in self._rows(_LINEAGE, (prompt_id, max_ancestors))]

    def count(self) -> int:
        """Return the number of prompts."""
        return int(self._value("SELECT COUNT(*) FROM system_prompts"))

    def archive_count(self) -> int:
        """Return the number of archived prompts."""
        return int(self._value("SELECT COUNT(*) FROM prompt_archive"))

    def best_id(self, min_programs: int) -> str | None:
        """Return the id of the best prompt (see ``_BEST_FIRST``), or None."""
        return self._value(f"SELECT p.id FROM system_prompts p ORDER BY {_BEST_FIRST} LIMIT 1",
                           (min_programs,))

    def archive_worst(self, min_programs: int) -> dict[str, Any] | None:
        """Return the ranking fields of the worst archived prompt, or None."""
        rows = self._rows(
            "SELECT p.id, p.fitness, p.correct_program_count, p.timestamp FROM prompt_archive a "
            f"JOIN system_prompts p ON p.id = a.prompt_id ORDER BY {_WORST_FIRST} LIMIT 1",
            (min_programs,))
        return rows[0] if rows else None

    def metadata(self, key: str) -> str | None:
        """Return a value of ``prompt_metadata_store``, or None."""
        return self._value("SELECT value FROM prompt_metadata_store WHERE key = ?", (key,))

    def total_cost(self) -> float:
        """Return the sum of the LLM costs recorded in the prompts' metadata."""
        return float(self._value(self.cost_sql) or 0.0)

    # Writes (inside transaction()) -------------------------------------------------------

    def insert(self, values: Mapping[str, Any]) -> None:
        """Insert a prompt given its field values."""
        pid = values["id"]
        self._execute(
            f"INSERT INTO system_prompts ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
            [_encode(name, values.get(name), pid) for name in COLUMNS])

    def update_fitness(self, values: Mapping[str, Any]) -> None:
        """Write a prompt's counters, fitness, scores and program ids."""
        pid = values["id"]
        self._execute(
            f"UPDATE system_prompts SET {', '.join(f'{name} = ?' for name in FITNESS_COLUMNS)} "
            "WHERE id = ?",
            [*(_encode(name, values[name], pid) for name in FITNESS_COLUMNS), pid])

    def set_percentiles(self, rows: Sequence[tuple[float, float, str]]) -> None:
        """Write (total_percentile, fitness, id) rows."""
        with self._lock, translating(self.url):
            self._connection().cursor().executemany(self._sql(
                "UPDATE system_prompts SET total_percentile = ?, fitness = ? WHERE id = ?"),
                rows)

    def archive_add(self, prompt_id: str) -> None:
        """Put a prompt in the archive."""
        self._execute("INSERT INTO prompt_archive (prompt_id) VALUES (?) "
                      "ON CONFLICT (prompt_id) DO NOTHING", (prompt_id,))

    def archive_remove(self, prompt_id: str) -> None:
        """Take a prompt out of the archive."""
        self._execute("DELETE FROM prompt_archive WHERE prompt_id = ?", (prompt_id,))

    def set_metadata(self, key: str, value: str | None) -> None:
        """Set a value of ``prompt_metadata_store``."""
        self._execute(_SET_METADATA, (key, value))


class SQLitePromptStore(PromptStore):
    """The prompt tables in a SQLite file."""

    types = {"real": "REAL", "json_list": "TEXT", "json_dict": "TEXT"}
    tables_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    columns_sql = "SELECT name FROM pragma_table_info('system_prompts')"
    cost_sql = """SELECT SUM(CASE WHEN json_valid(metadata) THEN
        CASE WHEN json_type(metadata, '$.llm.cost') IN ('integer', 'real')
        THEN json_extract(metadata, '$.llm.cost') END END) FROM system_prompts"""

    def _connect(self) -> Any:
        path = Path(self.url.path)
        if self.read_only and not path.exists():
            raise PromptDatabaseNotFoundError(f"prompt database file not found: {path}")
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        with translating(self.url):
            conn = connect_file(path, read_only=self.read_only, busy_timeout=BUSY_TIMEOUT)
            try:
                if not self.read_only:
                    enable_wal(conn, BUSY_TIMEOUT)
                    conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                conn.close()
                raise
        return conn

    def _begin(self) -> None:
        self._execute("BEGIN IMMEDIATE")


class PostgresPromptStore(PromptStore):
    """The prompt tables in a run's schema on a PostgreSQL server."""

    types = {"real": "DOUBLE PRECISION", "json_list": "JSONB NOT NULL DEFAULT '[]'",
             "json_dict": "JSONB NOT NULL DEFAULT '{}'"}
    tables_sql = ("SELECT table_name AS name FROM information_schema.tables "
                  "WHERE table_schema = '{schema}'")
    columns_sql = ("SELECT column_name AS name FROM information_schema.columns "
                   "WHERE table_schema = '{schema}' AND table_name = 'system_prompts'")
    cost_sql = """SELECT SUM(CASE WHEN jsonb_typeof(metadata -> 'llm' -> 'cost') = 'number'
        THEN (metadata -> 'llm' ->> 'cost')::float8 END) FROM system_prompts"""

    def __init__(self, url: DatabaseURL, *, read_only: bool = False) -> None:
        from genesis.database.backends.postgres_schema import schema_name

        self.schema = schema_name(url.run)  # a validated identifier: safe in the SQL
        self.tables_sql = self.tables_sql.format(schema=self.schema)
        self.columns_sql = self.columns_sql.format(schema=self.schema)
        if not read_only:
            _create_run(url)
        super().__init__(url, read_only=read_only)

    def _connect(self) -> Any:
        import psycopg

        from genesis.database.backends.postgres_connect import connection_kwargs, unreachable

        try:
            with translating(self.url):
                conn = psycopg.connect(self.url.conninfo(),
                                       **connection_kwargs(self.url, CONNECT_TIMEOUT))
        except OperationalError as exc:
            raise unreachable(self.url, exc) from exc
        return conn

    def _connection(self) -> Any:
        conn = super()._connection()
        if not self._in_transaction and (conn.broken or _ended_by_server(conn)):
            logger.warning("reconnecting to PostgreSQL at %s for the prompt tables",
                           self.url.endpoint)
            conn.close()
            conn = self.conn = self._connect()
        return conn

    def _begin(self) -> None:
        self._execute("BEGIN")
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
                      (f"genesis-prompts:{self.schema}",))

    def _sql(self, sql: str) -> str:
        # Tables are named with their schema: no session state (search_path) that a
        # transaction-pooling PgBouncer would lose. Read-only is enforced by the store.
        return _PROMPT_TABLE.sub(rf"{self.schema}.\1", translate_placeholders(sql))


def _ended_by_server(conn: Any) -> bool:
    """True when an idle connection has something to read: the server's goodbye."""
    return bool(select.select([conn.pgconn.socket], [], [], 0)[0])


def _create_run(url: DatabaseURL) -> None:
    """Create or upgrade the run's schema by opening its program store once."""
    from genesis.database import portal
    from genesis.database.backends import create_store
    from genesis.database.config import DatabaseConfig

    async def open_and_close() -> None:
        async with create_store(url, DatabaseConfig(pool_min_size=1, pool_max_size=1)):
            pass

    portal.call(open_and_close)


def open_prompt_store(url: DatabaseURL, *, read_only: bool = False) -> PromptStore:
    """Open the prompt tables of the run named by ``url``, creating them unless read-only."""
    store = SQLitePromptStore if url.is_sqlite else PostgresPromptStore
    return store(url, read_only=read_only)
