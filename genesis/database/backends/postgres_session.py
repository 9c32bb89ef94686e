"""PostgreSQL sessions: the shared SQL of ``sql.py`` on one psycopg connection.

The :data:`POSTGRES` dialect supplies the fragments that differ from SQLite (``%s``
placeholders, JSONB access, the identity column ``seq``). Programs are inserted with binary
``COPY``: JSON columns arrive from the codec as JSON text and are sent as JSONB verbatim,
the embedding as its float64 blob. psycopg returns JSONB already decoded and BYTEA as
bytes, which ``SQLSession._program`` accepts as they are. A flight is one multi-statement
simple query (see :meth:`PostgresSession._flight`); interactive transactions use
psycopg's pipeline mode for their BEGIN and COMMIT.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from genesis.database.backends.sql import (
    Dialect,
    IslandMembers,
    Query,
    SQLSession,
    Statement,
    island_members,
)
from genesis.database.codec import JSON_COLUMNS, PROGRAM_COLUMNS, dumps
from genesis.database.errors import translating
from genesis.database.url import DatabaseURL

__all__ = ["POSTGRES", "PostgresSession"]

# A stored value counts as a number when it matches this; anything else is never compared.
_NUMERIC_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"

POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    seq="p.seq",
    embedding_column="embedding",
    embedding_select="p.embedding",
    json_cast="?::jsonb",
    metric_value="(p.public_metrics -> ?::text)::numeric",
    metric_is_number="jsonb_typeof(p.public_metrics -> ?::text) = 'number'",
    average_metrics="(SELECT AVG(j.value::numeric) FROM jsonb_each(p.public_metrics) j "
                    "WHERE jsonb_typeof(j.value) = 'number')",
    raise_metadata="INSERT INTO metadata_store AS m (key, value) {values} "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                   f"WHERE CASE WHEN m.value ~ '{_NUMERIC_TEXT}' "
                   "THEN m.value::numeric < excluded.value::numeric "
                   "ELSE m.value IS NULL OR m.value = '' END",
    archived="p.id = ANY(ARRAY(SELECT program_id FROM archive))",
    append_json="COALESCE({column}, '[]'::jsonb) || jsonb_build_array(%s::jsonb)",
    json_number="(CASE WHEN jsonb_typeof({column} -> ?::text) = 'number' "
                "THEN ({column} ->> ?::text)::float8 END)",
    json_true="COALESCE({column} -> ?::text = 'true'::jsonb, FALSE)",
    value_compare=f"value ~ '{_NUMERIC_TEXT}' AND value::numeric {{op}} %s::numeric",
    array_params=True,
)

_COLUMN_TYPES = {
    **dict.fromkeys(JSON_COLUMNS, "jsonb"),
    **dict.fromkeys(("island_idx", "generation", "children_count", "embedding_cluster_id"),
                    "int4"),
    **dict.fromkeys(("timestamp", "combined_score", "complexity"), "float8"),
    "correct": "bool",
    "embedding": "bytea",
}
_COPY = f"COPY programs ({', '.join(PROGRAM_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_INSERT = "INSERT INTO programs ({}) VALUES ({})".format(
    ", ".join(PROGRAM_COLUMNS),
    ", ".join("%s::jsonb" if name in JSON_COLUMNS else "%s" for name in PROGRAM_COLUMNS))
_COPY_FROM = 64  # rows from which a batch is worth COPY's extra round trips
# A run's tables, named after FROM/JOIN/INTO/UPDATE/COPY: where the run's schema is added.
_TABLE_REFERENCE = re.compile(
    r"\b(FROM|JOIN|INTO|UPDATE|COPY)(\s+)(programs|archive|metadata_store|islands|"
    r"generation_event_log|attempt_log|genesis_schema|json_indexes)\b", re.IGNORECASE)
_COPY_TYPES = [_COLUMN_TYPES.get(name, "text") for name in PROGRAM_COLUMNS]
_JSON_POSITIONS = frozenset(i for i, name in enumerate(PROGRAM_COLUMNS) if name in JSON_COLUMNS)
_RELATION_SIZES = (
    "SELECT c.relname, c.relkind, pg_total_relation_size(c.oid), pg_relation_size(c.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND c.relkind IN ('r', 'i') ORDER BY c.relname"
)

# An island's members in one statement (one snapshot): a first row (id NULL) with its
# departures counter and whether the caller's view is stale (a member left, or more arrived
# than the newcomers past its seq: a late commit, a migrant); then only the newcomers, or,
# when stale, every member. Parameters: island, after seq, then the caller's departures and
# member count (NULL: unknown), then after seq and island again.
_ISLAND_MEMBERS = """WITH arrived AS MATERIALIZED (
    SELECT p.id, p.seq, p.embedding FROM programs p
    WHERE p.island_idx = %s AND p.embedding IS NOT NULL AND p.seq > %s
), head AS MATERIALIZED (
    SELECT i.departures, NOT COALESCE(i.departures = %s
                                      AND i.embedded = %s + (SELECT COUNT(*) FROM arrived),
                                      FALSE) AS stale
    FROM (SELECT) AS one LEFT JOIN islands i ON i.island_idx = %s
)
SELECT NULL, NULL, NULL, departures, stale FROM head
UNION ALL
SELECT id, seq, embedding, NULL, NULL FROM arrived WHERE NOT (SELECT stale FROM head)
UNION ALL
SELECT p.id, p.seq, CASE WHEN p.seq > %s THEN p.embedding END, NULL, NULL FROM programs p
WHERE p.island_idx = %s AND p.embedding IS NOT NULL AND (SELECT stale FROM head)"""

# A transaction's synchronous_commit (the run's ``synchronous_commit=``), and the WAL
# position read after a COMMIT (reads on standbys wait for it).
_SYNCHRONOUS_COMMIT = "SELECT set_config('synchronous_commit', %s, true)"
_WAL_POSITION = "SELECT pg_current_wal_insert_lsn()::text"

_STANDBYS = (
    "SELECT application_name, COALESCE(host(client_addr), 'local'), state, sync_state, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), "
    "EXTRACT(EPOCH FROM replay_lag)::float8 FROM pg_stat_replication ORDER BY 1"
)


# A JSON string, or a number written with a positive exponent (Python writes floats of 1e16
# and more that way; all of them are integers).
_STRING_OR_BIG_FLOAT = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?e\+[0-9]+')


@lru_cache(maxsize=4096)
def qualify(sql: str, schema: str) -> str:
    """Name the run's schema in every table reference of ``sql``.

    Statements never rely on ``search_path`` (session state that a transaction-pooling
    PgBouncer does not keep): the SQL shared with SQLite names bare tables, and this adds the
    schema where a table, not a column, is named.
    """
    return _TABLE_REFERENCE.sub(lambda m: f"{m[1]}{m[2]}{schema}.{m[3]}", sql)


def _keep_big_float(match: re.Match[str]) -> str:
    token = match[0]
    return token if token.startswith('"') else f"{Decimal(token):f}.0"


def jsonb_text(text: str) -> str:
    """Return JSON text whose numbers JSONB gives back with the same Python type.

    JSONB keeps numbers as ``numeric``, which prints ``1.5e+17`` as ``150000000000000000``:
    a float would come back as an int. Written as ``150000000000000000.0`` it stays a float.
    """
    return _STRING_OR_BIG_FLOAT.sub(_keep_big_float, text) if "e+" in text else text


def _copy_row(values: Sequence[Any]) -> list[Any]:
    """Wrap the JSON texts of an encoded row so COPY sends them as JSONB unchanged."""
    return [Jsonb(jsonb_text(v), dumps=str) if i in _JSON_POSITIONS else v
            for i, v in enumerate(values)]


def _island_members(rows: list[Sequence[Any]]) -> IslandMembers:
    """Decode :data:`_ISLAND_MEMBERS`: the head row, then members (sorted by id if all)."""
    head = next(row for row in rows if row[0] is None)
    members = island_members([row for row in rows if row[0] is not None])
    if head[4]:
        members.sort()
    return IslandMembers(bool(head[4]), members, None if head[3] is None else int(head[3]))


class PostgresSession(SQLSession):
    """Protocol reads and writes on one psycopg connection (in autocommit mode)."""

    dialect = POSTGRES

    def __init__(self, conn: psycopg.AsyncConnection[Any], url: DatabaseURL,
                 max_code_bytes: int, schema: str, *, track_lsn: bool = False) -> None:
        self.conn = conn
        self._url = url
        self.max_code_bytes = max_code_bytes
        self.schema = schema
        self.track_lsn = track_lsn  # read the WAL position after each COMMIT (for standbys)
        self.committed_lsn: str | None = None

    async def _open_transaction(self) -> None:
        """Send BEGIN, with the run's ``synchronous_commit`` (inside a pipeline)."""
        await self.conn.execute("BEGIN")
        if self._url.synchronous_commit:
            await self.conn.execute(_SYNCHRONOUS_COMMIT, (self._url.synchronous_commit,))

    async def _send_commit(self) -> psycopg.AsyncCursor[Any] | None:
        """Send COMMIT (inside a pipeline); return the cursor of the WAL position read after."""
        await self.conn.execute("COMMIT")
        if not self.track_lsn:
            return None
        return await self.conn.execute(_WAL_POSITION)

    async def _read_lsn(self, cursor: psycopg.AsyncCursor[Any] | None) -> None:
        if cursor is not None:
            row = await cursor.fetchone()
            self.committed_lsn = row[0] if row else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with translating(self._url):
            cursor = await self.conn.execute(qualify(sql, self.schema), params)
            return list(await cursor.fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        with translating(self._url):
            cursor = await self.conn.execute(qualify(sql, self.schema), params)
            return await cursor.fetchone()

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with translating(self._url):
            cursor = await self.conn.execute(qualify(sql, self.schema), params)
            return cursor.rowcount

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with translating(self._url):
                async with self.conn.cursor() as cursor:
                    await cursor.executemany(qualify(sql, self.schema), rows)

    def program_statement(self, rows: Sequence[tuple[Any, ...]]) -> Statement:
        return Statement(_INSERT, [[jsonb_text(v) if i in _JSON_POSITIONS and v is not None
                                    else v for i, v in enumerate(row)] for row in rows])

    async def _insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if len(rows) < _COPY_FROM:  # one pipelined flight beats COPY's round trips
            await self._flight([self.program_statement(rows)], ())
            return
        with translating(self._url):
            async with self.conn.cursor() as cursor, \
                    cursor.copy(qualify(_COPY, self.schema)) as copy:
                copy.set_types(_COPY_TYPES)
                for row in rows:
                    await copy.write_row(_copy_row(row))

    def _json_param(self, text: str | None) -> str | None:
        return None if text is None else jsonb_text(text)

    def q_island_embeddings(self, island: int, after_seq: int,
                            known: tuple[int, int] | None = None) -> Query:
        """An island's members: only the newcomers while ``known`` (departures, count) holds."""
        departures, count = known if known is not None else (None, None)
        return Query(_ISLAND_MEMBERS, (island, after_seq, departures, count, island,
                                       after_seq, island), _island_members)

    def moves_statement(self, moves: Sequence[tuple[str, int, dict[str, Any]]], guard: str,
                        check: Sequence[Any]) -> Statement:
        """One UPDATE for all the moves, in id order: the island counters' statement trigger
        then runs once for the migration instead of once per moved program."""
        ordered = sorted(moves, key=lambda move: move[0])
        return Statement(
            "UPDATE programs p SET island_idx = m.island, migration_history = "
            "COALESCE(p.migration_history, '[]'::jsonb) || jsonb_build_array(m.event::jsonb) "
            "FROM unnest(%s::text[], %s::int4[], %s::text[]) AS m(id, island, event) "
            f"WHERE p.id = m.id AND {self.dialect.sql(guard)}",
            [([pid for pid, _, _ in ordered], [island for _, island, _ in ordered],
              [jsonb_text(dumps(event)) for _, _, event in ordered], *check)])

    async def _flight(self, writes: Sequence[Statement], reads: Sequence[Query],
                      transaction: bool = False) -> list[list[Sequence[Any]]]:
        """Send every statement in one message: one round trip, one Sync.

        The flight is one multi-statement simple query, its parameters bound on the client
        (as literals, by psycopg), so the server begins only once the whole of it has
        arrived: with ``transaction`` the statements run between a BEGIN and a COMMIT of that
        message, and no lock they take is held while the server waits for a client, however
        slowly the client (a busy event loop, a descheduled process) would send the rest.
        """
        schema = self.schema
        with translating(self._url):
            async with psycopg.AsyncClientCursor(self.conn) as cursor:
                texts = []
                if transaction:
                    texts.append("BEGIN")
                    if self._url.synchronous_commit:
                        texts.append(cursor.mogrify(_SYNCHRONOUS_COMMIT,
                                                    (self._url.synchronous_commit,)))
                for statement in writes:
                    sql = qualify(statement.sql, schema)
                    texts += [cursor.mogrify(sql, row) for row in statement.rows]
                first = len(texts)
                texts += [cursor.mogrify(qualify(query.sql, schema), query.params)
                          for query in reads]
                lsn = None
                if transaction:
                    texts.append("COMMIT")
                    if self.track_lsn:
                        lsn = len(texts)
                        texts.append(_WAL_POSITION)
                await cursor.execute(";\n".join(texts))
                results: list[list[Sequence[Any]]] = []
                for index in range(len(texts)):
                    if first <= index < first + len(reads):
                        results.append(list(await cursor.fetchall()))
                    elif index == lsn:
                        row = await cursor.fetchone()
                        self.committed_lsn = row[0] if row else None
                    cursor.nextset()
            return results

    async def backend_alive(self, pid: int) -> bool:
        """True while the server process ``pid`` (another connection's) still exists."""
        return await self._one("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                               (pid,)) is not None

    async def program_exists(self, program_id: str) -> bool:
        """True if a program with this id is stored (a write's idempotency key)."""
        return await self._one(qualify("SELECT 1 FROM programs WHERE id = %s", self.schema),
                               (program_id,)) is not None

    # Transaction control -----------------------------------------------------------------

    async def begin(self, schema: str, lock: str | None) -> tuple[str, str]:
        """Open a transaction, take the (schema, lock) advisory lock.

        Returns the transaction id and the server's start time (which server ran it).
        """
        with translating(self._url):
            async with self.conn.pipeline():
                await self._open_transaction()
                if lock is not None:
                    await self.conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                        (schema, lock))
                cursor = await self.conn.execute(
                    "SELECT pg_current_xact_id()::text, pg_postmaster_start_time()::text")
            row = await cursor.fetchone()
        assert row is not None
        return str(row[0]), str(row[1])

    async def commit(self) -> None:
        """COMMIT the open transaction (and read the WAL position after it when tracking)."""
        with translating(self._url):
            async with self.conn.pipeline():
                lsn = await self._send_commit()
            await self._read_lsn(lsn)

    async def control(self, statement: str) -> None:
        """Run a transaction-control statement (BEGIN, COMMIT, ROLLBACK)."""
        await self._run(statement)

    async def transaction_status(self, xid: str) -> tuple[str | None, str]:
        """Return the status of a transaction id here, and this server's start time.

        The status is 'committed', 'aborted' or 'in progress'; an id this server has not
        assigned yet (a transaction of another server, lost in a failover) is 'aborted'.
        """
        row = await self._one(
            "SELECT CASE WHEN %s::xid8 < pg_snapshot_xmax(pg_current_snapshot()) "
            "THEN pg_xact_status(%s::xid8) ELSE 'aborted' END, "
            "pg_postmaster_start_time()::text", (xid, xid))
        assert row is not None
        return row[0], str(row[1])

    async def standbys(self) -> list[dict[str, Any]]:
        """Return the standbys streaming from this server, with their replay lag."""
        rows = await self._all(_STANDBYS)
        return [{"name": name, "address": address, "state": state, "sync": sync,
                 "lag_bytes": None if lag_bytes is None else int(lag_bytes),
                 "lag_seconds": lag_seconds} for name, address, state, sync, lag_bytes,
                lag_seconds in rows]

    async def relation_sizes(self, schema: str) -> list[Sequence[Any]]:
        """Return (name, kind 'r' or 'i', total bytes, main fork bytes) of a schema's relations."""
        return await self._all(_RELATION_SIZES, (schema,))
