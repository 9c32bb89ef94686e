"""PostgreSQL schema of a run: DDL, versions, ordered forward-only upgrade steps.

A run lives in its own schema, ``genesis_<run>``, and every object in the DDL is qualified
with it, so nothing depends on ``search_path``. Versions are numbered like SQLite's (1: the
ShinkaEvolve tables, 2: Genesis' indexes, island counters and job index), so both backends
report the same version for the same schema level; 3 (PostgreSQL only) notifies listeners of
new programs; 4 indexes code for search (a ``tsvector`` column kept by a trigger, filled for
existing programs in batches, then a GIN index: an interrupted fill resumes where it
stopped); 5 holds the catalogue of JSON path indexes; 6 counts each island's embedded
programs and their departures (similarity caches learn from them whether they still know
an island's members). ``genesis_schema`` records
one row per applied step. Upgrades run in one transaction begun once an advisory lock
derived from the schema name is held, and re-read the version first: many workers starting
at once on a new run create it exactly once.
:func:`render_ddl` returns the same statements as one script; it is the source of
``docker/init-db.sql``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from genesis.database.code_search import MAX_INDEXED_CHARS
from genesis.database.errors import SchemaError, translating
from genesis.database.protocol import UpgradeProgress
from genesis.database.url import DEFAULT_RUN, DatabaseURL, validate_run_name

__all__ = [
    "FILL_BATCH",
    "SCHEMA_PREFIX",
    "SCHEMA_VERSION",
    "ddl_lock",
    "prepare",
    "read_version",
    "render_ddl",
    "schema_name",
]

SCHEMA_VERSION = 6
_SEARCH_VERSION = 4  # the step whose code words prepare() fills in batches
FILL_BATCH = 5_000  # programs indexed for code search per transaction of the upgrade
SCHEMA_PREFIX = "genesis_"
# The advisory lock of whoever creates, upgrades or drops a run's schema. Its one-bigint key
# space is disjoint from the two-int one of write locks.
_DDL_KEY = "hashtextextended('genesis:' || %s, 0)"
_EXISTS = ("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
           "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'genesis_schema')")

_BOOTSTRAP = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.genesis_schema (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""",
)

_TABLES = (
    """CREATE TABLE {s}.programs (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'python',
    parent_id TEXT,
    archive_inspiration_ids JSONB NOT NULL DEFAULT '[]',
    top_k_inspiration_ids JSONB NOT NULL DEFAULT '[]',
    island_idx INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    timestamp DOUBLE PRECISION NOT NULL,
    code_diff TEXT,
    combined_score DOUBLE PRECISION,
    public_metrics JSONB NOT NULL DEFAULT '{}',
    private_metrics JSONB NOT NULL DEFAULT '{}',
    text_feedback TEXT NOT NULL DEFAULT '',
    correct BOOLEAN NOT NULL DEFAULT FALSE,
    children_count INTEGER NOT NULL DEFAULT 0,
    complexity DOUBLE PRECISION,
    embedding BYTEA,
    embedding_pca_2d JSONB NOT NULL DEFAULT '[]',
    embedding_pca_3d JSONB NOT NULL DEFAULT '[]',
    embedding_cluster_id INTEGER,
    migration_history JSONB NOT NULL DEFAULT '[]',
    metadata JSONB NOT NULL DEFAULT '{}',
    system_prompt_id TEXT,
    source_job_id TEXT,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
)""",
    """CREATE TABLE {s}.archive (
    program_id TEXT PRIMARY KEY REFERENCES {s}.programs (id) ON DELETE CASCADE
)""",
    "CREATE TABLE {s}.metadata_store (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE {s}.generation_event_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    generation INTEGER NOT NULL,
    status TEXT NOT NULL,
    source_job_id TEXT,
    details JSONB,
    created_at DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE {s}.attempt_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    generation INTEGER NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    details JSONB,
    created_at DOUBLE PRECISION NOT NULL
)""",
    "CREATE INDEX idx_programs_generation ON {s}.programs (generation)",
    "CREATE INDEX idx_programs_parent_id ON {s}.programs (parent_id)",
    "CREATE INDEX idx_generation_event_log_generation ON {s}.generation_event_log (generation)",
    "CREATE INDEX idx_attempt_log_generation ON {s}.attempt_log (generation)",
)



def _fill(template: str, **parts: str) -> str:
    """Replace each ``{name}`` in a template (JSON and $$ bodies make str.format unusable)."""
    for name, text in parts.items():
        template = template.replace("{" + name + "}", text)
    return template


def _patched(template: str, *edits: tuple[str, str]) -> str:
    """A template with each (old, new) edit made; every ``old`` must be in it."""
    for before, after in edits:
        if before not in template:
            raise ValueError(f"{before!r} is not in the template")
        template = template.replace(before, after)
    return template


# Per-island counts of a set of program rows, ordered so that concurrent writers lock the
# island rows in one order.
_ISLAND_COUNTS = """SELECT COALESCE(island_idx, -1), COUNT(*), COUNT(*) FILTER (WHERE correct),
           MAX(combined_score) FILTER (WHERE correct)
    FROM {rows} GROUP BY 1 ORDER BY 1"""
_ADD_COUNTS = """INSERT INTO {s}.islands AS i (island_idx, programs, correct, best_score)
    {counts}
    ON CONFLICT (island_idx) DO UPDATE SET
        programs = i.programs + excluded.programs,
        correct = i.correct + excluded.correct,
        best_score = GREATEST(i.best_score, excluded.best_score)"""
# The best correct score of island ``i`` recomputed through the (island, correct, score)
# index; island -1 counts the programs without an island.
_BEST = """CASE WHEN i.island_idx = -1
        THEN (SELECT MAX(p.combined_score) FROM {s}.programs p
              WHERE p.island_idx IS NULL AND p.correct)
        ELSE (SELECT MAX(p.combined_score) FROM {s}.programs p
              WHERE p.island_idx = i.island_idx AND p.correct) END"""

_DELTA_COUNTS = """SELECT island_idx, SUM(programs), SUM(correct), MAX(score)
        FROM deltas GROUP BY island_idx ORDER BY island_idx"""

_INSERT_FUNCTION = """CREATE FUNCTION {s}.islands_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    {add};
    RETURN NULL;
END
$$"""

_UPDATE_FUNCTION = """CREATE FUNCTION {s}.islands_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    losers INTEGER[];
BEGIN
    WITH changed AS (
        SELECT o.island_idx AS old_island, o.correct AS old_correct,
               n.island_idx AS new_island, n.correct AS new_correct,
               n.combined_score AS new_score
        FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
        WHERE (o.island_idx, o.correct, o.combined_score)
              IS DISTINCT FROM (n.island_idx, n.correct, n.combined_score)
    ), deltas AS (
        SELECT COALESCE(new_island, -1) AS island_idx, 1 AS programs,
               new_correct::INTEGER AS correct,
               CASE WHEN new_correct THEN new_score END AS score
        FROM changed WHERE new_correct IS NOT NULL
        UNION ALL
        SELECT COALESCE(old_island, -1), -1, -old_correct::INTEGER, NULL
        FROM changed WHERE old_correct IS NOT NULL
    ), applied AS (
        {add}
    )
    SELECT array_agg(DISTINCT COALESCE(old_island, -1)) INTO losers
    FROM changed WHERE old_correct IS NOT NULL;
    IF losers IS NOT NULL THEN
        UPDATE {s}.islands i SET best_score = {best}
        WHERE i.island_idx = ANY (losers);
    END IF;
    RETURN NULL;
END
$$"""

_DELETE_FUNCTION = """CREATE FUNCTION {s}.islands_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {s}.islands i SET programs = i.programs - g.programs,
        correct = i.correct - g.correct, best_score = {best}
    FROM (SELECT COALESCE(island_idx, -1) AS island_idx, COUNT(*) AS programs,
                 COUNT(*) FILTER (WHERE correct) AS correct
          FROM old_rows GROUP BY 1) g
    WHERE i.island_idx = g.island_idx;
    RETURN NULL;
END
$$"""

_GENESIS = (
    """CREATE TABLE {s}.islands (
    island_idx INTEGER PRIMARY KEY,
    programs INTEGER NOT NULL DEFAULT 0,
    correct INTEGER NOT NULL DEFAULT 0,
    best_score DOUBLE PRECISION
)""",
    "CREATE UNIQUE INDEX idx_programs_seq ON {s}.programs (seq)",
    "CREATE UNIQUE INDEX idx_programs_source_job_id ON {s}.programs (source_job_id) "
    "WHERE source_job_id IS NOT NULL",
    "CREATE INDEX idx_programs_island_correct_score "
    "ON {s}.programs (island_idx, correct, combined_score DESC NULLS LAST, id DESC)",
    "CREATE INDEX idx_programs_island_correct_generation "
    "ON {s}.programs (island_idx, correct, generation, id)",
    "CREATE INDEX idx_programs_correct_score "
    "ON {s}.programs (correct, combined_score DESC NULLS LAST, timestamp DESC)",
    "CREATE INDEX idx_programs_score ON {s}.programs (combined_score DESC NULLS LAST, "
    "timestamp DESC)",
    "CREATE INDEX idx_programs_timestamp ON {s}.programs (timestamp, seq)",
    "CREATE INDEX idx_programs_island_embedding ON {s}.programs (island_idx, id) "
    "WHERE embedding IS NOT NULL",
    "CREATE INDEX idx_programs_public_metrics ON {s}.programs "
    "USING GIN (public_metrics jsonb_path_ops)",
    "CREATE INDEX idx_programs_metadata ON {s}.programs USING GIN (metadata jsonb_path_ops)",
    "INSERT INTO {s}.islands (island_idx, programs, correct, best_score)\n    "
    + _fill(_ISLAND_COUNTS, rows="{s}.programs"),
    _fill(_INSERT_FUNCTION, add=_fill(_ADD_COUNTS, counts=_fill(_ISLAND_COUNTS, rows="new_rows"))),
    _fill(_UPDATE_FUNCTION, best=_BEST, add=_fill(_ADD_COUNTS, counts=_DELTA_COUNTS)),
    _fill(_DELETE_FUNCTION, best=_BEST),
    "CREATE TRIGGER programs_islands_insert AFTER INSERT ON {s}.programs "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.islands_after_insert()",
    "CREATE TRIGGER programs_islands_update AFTER UPDATE ON {s}.programs "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.islands_after_update()",
    "CREATE TRIGGER programs_islands_delete AFTER DELETE ON {s}.programs "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.islands_after_delete()",
)

# One notification per inserting statement (a group commit is one), on the channel named
# after the schema, carrying the newest seq: live views LISTEN instead of polling. It is
# delivered at commit, and only then.
_NOTIFY = (
    """CREATE FUNCTION {s}.programs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{s}', (SELECT MAX(seq) FROM new_rows)::text);
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER programs_notify AFTER INSERT ON {s}.programs "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.programs_notify()",
)

# Code search: the words of the code (see genesis.database.code_search) as a tsvector, set by
# a row trigger on insert and on a change of code. Idempotent, as an interrupted upgrade
# runs it again.
_SEARCH = (
    "ALTER TABLE {s}.programs ADD COLUMN IF NOT EXISTS code_tsv tsvector",
    f"""CREATE OR REPLACE FUNCTION {{s}}.code_tsvector(code TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig,
                       regexp_replace(left(code, {MAX_INDEXED_CHARS}), '[^[:alnum:]]+', ' ', 'g'))
$$""",
    """CREATE OR REPLACE FUNCTION {s}.programs_code_tsv() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.code_tsv := {s}.code_tsvector(NEW.code);
    RETURN NEW;
END
$$""",
    "CREATE OR REPLACE TRIGGER programs_code_tsv BEFORE INSERT OR UPDATE OF code "
    "ON {s}.programs FOR EACH ROW EXECUTE FUNCTION {s}.programs_code_tsv()",
)
# One batch of the fill: the next programs without words after seq %s, in seq order.
_FILL = """WITH batch AS (
    SELECT seq FROM {s}.programs WHERE seq > %s AND code_tsv IS NULL ORDER BY seq LIMIT %s
) UPDATE {s}.programs p SET code_tsv = {s}.code_tsvector(p.code) FROM batch
WHERE p.seq = batch.seq RETURNING p.seq"""
_SEARCH_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_programs_code_tsv ON {s}.programs USING GIN (code_tsv)",
)

# The JSON paths the user indexed (genesis.database.json_indexes); idempotent.
_JSON_INDEXES = (
    "CREATE TABLE IF NOT EXISTS {s}.json_indexes (field TEXT PRIMARY KEY, "
    "created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
)

# Island membership for similarity caches: each island's count of programs with an
# embedding, and of departures (an embedded program leaving it: moved, its embedding
# removed, deleted). While ``departures`` stands still, the island only gained programs, so
# a cache that knows its members and counts the newcomers knows whether it missed any.
# Idempotent (an interrupted upgrade runs it again).
_MEMBERS_COUNT = "COUNT(*) FILTER (WHERE embedding IS NOT NULL)"
_REPLACE = ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
_MEMBERS_ADD = _patched(
    _ADD_COUNTS,
    ("(island_idx, programs, correct, best_score)",
     "(island_idx, programs, correct, best_score, embedded, departures)"),
    ("GREATEST(i.best_score, excluded.best_score)",
     "GREATEST(i.best_score, excluded.best_score),\n"
     "        embedded = i.embedded + excluded.embedded,\n"
     "        departures = i.departures + excluded.departures"))
_MEMBERS_UPDATE = _patched(
    _UPDATE_FUNCTION, _REPLACE,
    ("n.combined_score AS new_score",
     "n.combined_score AS new_score,\n"
     "               o.embedding IS NOT NULL AS old_embedded,\n"
     "               n.embedding IS NOT NULL AS new_embedded,\n"
     "               o.island_idx IS NOT DISTINCT FROM n.island_idx AS stayed"),
    ("(o.island_idx, o.correct, o.combined_score)\n"
     "              IS DISTINCT FROM (n.island_idx, n.correct, n.combined_score)",
     "(o.island_idx, o.correct, o.combined_score, o.embedding IS NULL) IS DISTINCT FROM\n"
     "              (n.island_idx, n.correct, n.combined_score, n.embedding IS NULL)"),
    ("CASE WHEN new_correct THEN new_score END AS score",
     "CASE WHEN new_correct THEN new_score END AS score,\n"
     "               new_embedded::INTEGER AS embedded, 0 AS departures"),
    ("SELECT COALESCE(old_island, -1), -1, -old_correct::INTEGER, NULL",
     "SELECT COALESCE(old_island, -1), -1, -old_correct::INTEGER, NULL,\n"
     "               -old_embedded::INTEGER,\n"
     "               (old_embedded AND NOT COALESCE(new_embedded AND stayed, FALSE))::INTEGER"))
_MEMBERS = (
    "ALTER TABLE {s}.islands ADD COLUMN IF NOT EXISTS embedded INTEGER NOT NULL DEFAULT 0, "
    "ADD COLUMN IF NOT EXISTS departures BIGINT NOT NULL DEFAULT 0",
    f"""UPDATE {{s}}.islands i SET embedded = c.embedded
    FROM (SELECT COALESCE(island_idx, -1) AS island_idx, {_MEMBERS_COUNT} AS embedded
          FROM {{s}}.programs GROUP BY 1) c
    WHERE i.island_idx = c.island_idx""",
    _fill(_patched(_INSERT_FUNCTION, _REPLACE), add=_fill(_MEMBERS_ADD, counts=_fill(_patched(
        _ISLAND_COUNTS, ("FILTER (WHERE correct)\n",
                         f"FILTER (WHERE correct),\n           {_MEMBERS_COUNT}, 0\n")),
        rows="new_rows"))),
    _fill(_MEMBERS_UPDATE, best=_BEST, add=_fill(_MEMBERS_ADD, counts=_patched(
        _DELTA_COUNTS, ("MAX(score)", "MAX(score), SUM(embedded), SUM(departures)")))),
    _fill(_patched(
        _DELETE_FUNCTION, _REPLACE,
        ("correct = i.correct - g.correct,",
         "correct = i.correct - g.correct, embedded = i.embedded - g.embedded,\n"
         "        departures = i.departures + g.embedded,"),
        ("COUNT(*) FILTER (WHERE correct) AS correct",
         "COUNT(*) FILTER (WHERE correct) AS correct,\n"
         f"                 {_MEMBERS_COUNT} AS embedded")),
        best=_BEST),
)

# STEPS[k] brings a schema from version k to k + 1.
STEPS: tuple[tuple[str, ...], ...] = (
    _TABLES,  # 0 -> 1: the ShinkaEvolve tables with PostgreSQL types
    _GENESIS,  # 1 -> 2: island counters, evolution indexes, JSONB GIN indexes
    _NOTIFY,  # 2 -> 3: NOTIFY on insert, for live views
    _SEARCH + _SEARCH_INDEX,  # 3 -> 4: code search (prepare() fills in batches before the index)
    _JSON_INDEXES,  # 4 -> 5: the catalogue of JSON path indexes
    _MEMBERS,  # 5 -> 6: island membership counters, for similarity caches
)
assert len(STEPS) == SCHEMA_VERSION


def schema_name(run: str) -> str:
    """Return the PostgreSQL schema holding a run."""
    return SCHEMA_PREFIX + validate_run_name(run)


def _statements(schema: str, start: int, stop: int = SCHEMA_VERSION) -> Iterator[str]:
    """The DDL from version ``start`` to ``stop`` (and the bootstrap, idempotent)."""
    for template in _BOOTSTRAP:
        yield _fill(template, s=schema)
    for version, step in enumerate(STEPS[start:stop], start=start + 1):
        for template in step:
            yield _fill(template, s=schema)
        yield (f"INSERT INTO {schema}.genesis_schema (version) VALUES ({version}) "
               "ON CONFLICT DO NOTHING")


def render_ddl(run: str = DEFAULT_RUN) -> str:
    """Return the SQL script creating a run's schema at the current version."""
    schema = schema_name(run)
    body = ";\n\n".join(_statements(schema, 0))
    return (
        f"-- Genesis program database: schema {schema} (run {run!r}) at version "
        f"{SCHEMA_VERSION}.\n"
        "-- Generated by `python -m genesis.database.backends.postgres_schema`; do not edit.\n"
        f"BEGIN;\n\n{body};\n\nCOMMIT;\n"
    )


async def read_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """Return the schema version of a run (0 when the run does not exist yet).

    Existence is read from ``pg_class`` with this statement's snapshot, not through the
    backend's catalog cache (``to_regclass``), which inside a transaction begun earlier can
    still miss a schema another worker has committed since; scanning the catalog also makes
    the backend take in such changes before the statements that follow.
    """
    cursor = await conn.execute(_EXISTS, (schema,))
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {schema}.genesis_schema")
    row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise SchemaError(f"schema {schema} has version {version}, newer than this Genesis "
                          f"supports ({SCHEMA_VERSION}); upgrade Genesis")
    return version


@asynccontextmanager
async def ddl_lock(conn: psycopg.AsyncConnection[Any], schema: str) -> AsyncIterator[None]:
    """Run the block in one transaction holding the advisory lock on a schema's DDL.

    A transaction-level lock: a transaction-pooling PgBouncer keeps a transaction on one
    server connection, but not a session (a session lock could be released on another
    server connection, or never). Read the version again inside the block.
    """
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_KEY})", (schema,))
        yield


async def prepare(
    conn: psycopg.AsyncConnection[Any], schema: str, url: DatabaseURL,
    progress: UpgradeProgress | None = None,
) -> tuple[int, int]:
    """Create or upgrade a run's schema exactly once; return (version before, after).

    A run older than version 4 gets the code-search column and trigger first, then its
    programs' words in batches of :data:`FILL_BATCH` (one transaction each, counted on
    ``progress``), then the index and the later versions: an interrupted upgrade resumes
    the fill.
    """
    with translating(url):
        before = await read_version(conn, schema)
        if before == SCHEMA_VERSION:
            return before, before
        async with ddl_lock(conn, schema):
            before = await read_version(conn, schema)
            if before == SCHEMA_VERSION:
                return before, before
            if before < _SEARCH_VERSION:
                for statement in _statements(schema, before, _SEARCH_VERSION - 1):
                    await conn.execute(statement)
                for template in _SEARCH:
                    await conn.execute(_fill(template, s=schema))
        if before < _SEARCH_VERSION:
            await _fill_code_words(conn, schema, progress)
        async with ddl_lock(conn, schema):
            version = await read_version(conn, schema)
            for statement in _statements(schema, max(version, _SEARCH_VERSION - 1)):
                await conn.execute(statement)
    return before, SCHEMA_VERSION


async def _fill_code_words(conn: psycopg.AsyncConnection[Any], schema: str,
                           progress: UpgradeProgress | None) -> None:
    """Give every program without them its code words, a batch per transaction."""
    if progress is not None:
        cursor = await conn.execute(
            f"SELECT COUNT(*) FROM {schema}.programs WHERE code_tsv IS NULL")
        row = await cursor.fetchone()
        progress.total = int(row[0]) if row else 0
    last = 0
    while True:
        async with ddl_lock(conn, schema):
            cursor = await conn.execute(_fill(_FILL, s=schema), (last, FILL_BATCH))
            done = [int(row[0]) for row in await cursor.fetchall()]
        if not done:
            return
        last = max(done)
        if progress is not None:
            progress.advance(len(done))


if __name__ == "__main__":  # python -m genesis.database.backends.postgres_schema
    print(render_ddl(), end="")
