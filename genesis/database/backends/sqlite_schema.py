"""SQLite schema: versions, ordered forward-only upgrade steps, and file preparation.

The version lives in ``PRAGMA user_version``. ShinkaEvolve files carry version 0; step 1
brings any of their generations to the common baseline (missing columns and tables added),
step 2 adds what Genesis needs (binary embeddings, the ``source_job_id`` unique index, the
``islands`` counters kept exact by triggers, composite indexes), step 3 indexes code for
search (an FTS5 table over the programs' code, kept in step by triggers, filled for existing
programs in batches of one transaction each: an interrupted fill resumes where it stopped).
Legacy columns and rows are never rewritten. Upgrades run inside ``BEGIN IMMEDIATE`` and
re-read the version once the write lock is held, so two processes opening one file at once
upgrade it exactly once. Only a
writable open upgrades: a read-only one reads an older file as it is
(:mod:`genesis.database.backends.sqlite_legacy`), with the same derivations as the steps.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from genesis.database.backends.sqlite_files import connect_file, read_only_connection
from genesis.database.codec import pack_embedding
from genesis.database.errors import (
    DatabaseLockedError,
    NotAProgramDatabaseError,
    SchemaError,
)
from genesis.database.protocol import UpgradeProgress

__all__ = [
    "ISLAND_COUNTS",
    "LEGACY_OPTIONAL_COLUMNS",
    "LEGACY_TABLES",
    "SCHEMA_VERSION",
    "connect_file",
    "enable_wal",
    "job_id_of",
    "legacy_embedding_blob",
    "prepare_file",
    "read_version",
    "roll_back",
    "upgrade",
]

SCHEMA_VERSION = 4
FILL_BATCH = 5_000  # programs indexed for code search per transaction of the upgrade
# Tables a run's file may hold before its programs: SQLite's own, and the prompt-evolution
# store (genesis.compat.shinka), which may be opened on the same file first.
_COMPANION_TABLES = frozenset({"sqlite_sequence", "system_prompts", "prompt_archive",
                               "prompt_metadata_store"})

_LEGACY_PROGRAMS = """
CREATE TABLE IF NOT EXISTS programs (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    language TEXT NOT NULL,
    parent_id TEXT,
    archive_inspiration_ids TEXT,
    top_k_inspiration_ids TEXT,
    generation INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    code_diff TEXT,
    combined_score REAL,
    public_metrics TEXT,
    private_metrics TEXT,
    text_feedback TEXT,
    complexity REAL,
    embedding TEXT,
    embedding_pca_2d TEXT,
    embedding_pca_3d TEXT,
    embedding_cluster_id INTEGER,
    correct BOOLEAN DEFAULT 0,
    children_count INTEGER NOT NULL DEFAULT 0,
    metadata TEXT,
    migration_history TEXT,
    island_idx INTEGER,
    system_prompt_id TEXT
)"""
# Columns some ShinkaEvolve generations lack, with the definition they are added with.
LEGACY_OPTIONAL_COLUMNS = {
    "archive_inspiration_ids": "TEXT",
    "top_k_inspiration_ids": "TEXT",
    "code_diff": "TEXT",
    "text_feedback": "TEXT DEFAULT ''",
    "complexity": "REAL",
    "embedding": "TEXT",
    "embedding_pca_2d": "TEXT",
    "embedding_pca_3d": "TEXT",
    "embedding_cluster_id": "INTEGER",
    "metadata": "TEXT",
    "migration_history": "TEXT",
    "island_idx": "INTEGER",
    "system_prompt_id": "TEXT",
}
_LEGACY_TABLES = (
    """CREATE TABLE IF NOT EXISTS archive (
        program_id TEXT PRIMARY KEY,
        FOREIGN KEY (program_id) REFERENCES programs(id) ON DELETE CASCADE
    )""",
    "CREATE TABLE IF NOT EXISTS metadata_store (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS generation_event_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        generation INTEGER NOT NULL,
        status TEXT NOT NULL,
        source_job_id TEXT,
        details TEXT,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS attempt_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        generation INTEGER NOT NULL,
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        details TEXT,
        created_at REAL NOT NULL
    )""",
)
# Each legacy table's CREATE statement, by table name.
LEGACY_TABLES = {ddl.split("(", 1)[0].split()[-1]: ddl
                 for ddl in (_LEGACY_PROGRAMS, *_LEGACY_TABLES)}
_LEGACY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_programs_generation ON programs(generation)",
    "CREATE INDEX IF NOT EXISTS idx_programs_timestamp ON programs(timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_programs_complexity ON programs(complexity)",
    "CREATE INDEX IF NOT EXISTS idx_programs_parent_id ON programs(parent_id)",
    "CREATE INDEX IF NOT EXISTS idx_programs_children_count ON programs(children_count)",
    "CREATE INDEX IF NOT EXISTS idx_programs_island_idx ON programs(island_idx)",
    "CREATE INDEX IF NOT EXISTS idx_programs_system_prompt_id ON programs(system_prompt_id)",
    "CREATE INDEX IF NOT EXISTS idx_generation_event_log_generation "
    "ON generation_event_log(generation)",
    "CREATE INDEX IF NOT EXISTS idx_attempt_log_generation ON attempt_log(generation)",
)

_GENESIS_DDL = (
    "ALTER TABLE programs ADD COLUMN embedding_vec BLOB",
    "ALTER TABLE programs ADD COLUMN source_job_id TEXT",
    # Indexes that only slow every write (children_count changes on each child) go away.
    "DROP INDEX IF EXISTS idx_programs_children_count",
    "DROP INDEX IF EXISTS idx_programs_complexity",
    "DROP INDEX IF EXISTS idx_programs_island_idx",
    """CREATE TABLE islands (
        island_idx INTEGER PRIMARY KEY,
        programs INTEGER NOT NULL DEFAULT 0,
        correct INTEGER NOT NULL DEFAULT 0,
        best_score REAL
    )""",
    "CREATE INDEX idx_programs_island_correct_score "
    "ON programs(island_idx, correct, combined_score)",
    "CREATE INDEX idx_programs_island_correct_generation "
    "ON programs(island_idx, correct, generation)",
    "CREATE INDEX idx_programs_correct_score ON programs(correct, combined_score, timestamp)",
    "CREATE INDEX idx_programs_score ON programs(combined_score, timestamp)",
    "CREATE INDEX idx_programs_island_embedding ON programs(island_idx, id) "
    "WHERE embedding_vec IS NOT NULL",
)
_GENESIS_INDEXES_AFTER_FILL = (
    "CREATE UNIQUE INDEX idx_programs_source_job_id ON programs(source_job_id) "
    "WHERE source_job_id IS NOT NULL",
)
_ISLAND_TRIGGERS = (
    """CREATE TRIGGER programs_islands_insert AFTER INSERT ON programs BEGIN
        INSERT INTO islands (island_idx, programs, correct, best_score)
        VALUES (COALESCE(NEW.island_idx, -1), 1, NEW.correct != 0,
                CASE WHEN NEW.correct THEN NEW.combined_score END)
        ON CONFLICT (island_idx) DO UPDATE SET
            programs = programs + 1,
            correct = correct + excluded.correct,
            best_score = COALESCE(MAX(best_score, excluded.best_score), best_score,
                                  excluded.best_score);
    END""",
    """CREATE TRIGGER programs_islands_update
    AFTER UPDATE OF island_idx, correct, combined_score ON programs BEGIN
        UPDATE islands SET programs = programs - 1, correct = correct - (OLD.correct != 0)
        WHERE island_idx = COALESCE(OLD.island_idx, -1);
        INSERT INTO islands (island_idx, programs, correct)
        VALUES (COALESCE(NEW.island_idx, -1), 1, NEW.correct != 0)
        ON CONFLICT (island_idx) DO UPDATE SET
            programs = programs + 1, correct = correct + excluded.correct;
        UPDATE islands SET best_score = (
            SELECT MAX(p.combined_score) FROM programs p
            WHERE p.island_idx = islands.island_idx AND p.correct = TRUE)
        WHERE island_idx IN (COALESCE(OLD.island_idx, -1), COALESCE(NEW.island_idx, -1));
    END""",
    """CREATE TRIGGER programs_islands_delete AFTER DELETE ON programs BEGIN
        UPDATE islands SET programs = programs - 1, correct = correct - (OLD.correct != 0),
            best_score = (SELECT MAX(p.combined_score) FROM programs p
                          WHERE p.island_idx = islands.island_idx AND p.correct = TRUE)
        WHERE island_idx = COALESCE(OLD.island_idx, -1);
    END""",
)


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def read_version(conn: sqlite3.Connection) -> int:
    """Return the file's schema version (0 for a new file or a ShinkaEvolve file)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = _tables(conn) - _COMPANION_TABLES
    if tables and "programs" not in tables:
        raise NotAProgramDatabaseError(
            f"this SQLite file has tables ({', '.join(sorted(tables)[:5])}) but no 'programs' "
            "table: it is not a program database"
        )
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"schema version {version} is newer than this Genesis supports ({SCHEMA_VERSION}); "
            "upgrade Genesis"
        )
    return version


def _step_legacy_baseline(conn: sqlite3.Connection) -> None:
    conn.execute(_LEGACY_PROGRAMS)
    present = _columns(conn, "programs")
    for name, definition in LEGACY_OPTIONAL_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE programs ADD COLUMN {name} {definition}")
    for statement in (*_LEGACY_TABLES, *_LEGACY_INDEXES):
        conn.execute(statement)


def legacy_embedding_blob(text: object) -> bytes | None:
    """Return the float64 blob of a JSON-text embedding (None when empty or unreadable)."""
    if not isinstance(text, str) or text in ("", "[]", "null"):
        return None
    try:
        values = json.loads(text)
        return pack_embedding(values) if isinstance(values, list) else None
    except (ValueError, TypeError, RecursionError):
        return None  # an unreadable legacy embedding stays only in its text column


def job_id_of(metadata: str) -> str:
    """SQL for the ``source_job_id`` in a metadata JSON column: its text or integer, else NULL."""
    return (f"CASE WHEN json_valid({metadata}) THEN CASE WHEN json_type({metadata}, "
            f"'$.source_job_id') IN ('text', 'integer') THEN CAST(json_extract({metadata}, "
            "'$.source_job_id') AS TEXT) END END")


# The islands counters, computed from the programs (``{programs}``: the table to count).
ISLAND_COUNTS = (
    "SELECT COALESCE(island_idx, -1) AS island_idx, COUNT(*) AS programs, "
    "SUM(correct != 0) AS correct, MAX(CASE WHEN correct THEN combined_score END) AS best_score "
    "FROM {programs} GROUP BY 1"
)


def _fill_embeddings(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT rowid, embedding FROM programs WHERE embedding IS NOT NULL")
    updates = [(blob, rowid) for rowid, text in rows.fetchall()
               if (blob := legacy_embedding_blob(text)) is not None]
    conn.executemany("UPDATE programs SET embedding_vec = ? WHERE rowid = ?", updates)


def _fill_job_ids(conn: sqlite3.Connection) -> None:
    job = job_id_of("metadata")
    rows = conn.execute(f"SELECT rowid, {job} FROM programs WHERE {job} IS NOT NULL "
                        "ORDER BY rowid").fetchall()
    seen: set[str] = set()
    updates = []
    for rowid, job_id in rows:
        if job_id not in seen:  # a legacy duplicate keeps its metadata but not the index entry
            seen.add(job_id)
            updates.append((job_id, rowid))
    conn.executemany("UPDATE programs SET source_job_id = ? WHERE rowid = ?", updates)


def _step_genesis(conn: sqlite3.Connection) -> None:
    for statement in _GENESIS_DDL:
        conn.execute(statement)
    _fill_embeddings(conn)
    _fill_job_ids(conn)
    for statement in _GENESIS_INDEXES_AFTER_FILL:
        conn.execute(statement)
    conn.execute("INSERT INTO islands (island_idx, programs, correct, best_score) "
                 + ISLAND_COUNTS.format(programs="programs"))
    for statement in _ISLAND_TRIGGERS:
        conn.execute(statement)


# Code search. ``genesis_search_fill`` says which rowids the fill covers (those up to
# ``upto``, present when the table was made) and how far it got (``done``); rows after
# ``upto`` are indexed by the insert trigger. A row is taken out of the index only if it is
# in it, so deleting a row the fill has not reached yet cannot corrupt the index.
_INDEXED = ("(OLD.rowid <= (SELECT done FROM genesis_search_fill) "
            "OR OLD.rowid > (SELECT upto FROM genesis_search_fill))")
_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS programs_fts USING fts5(code, content='programs', "
    "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS genesis_search_fill (upto INTEGER NOT NULL, "
    "done INTEGER NOT NULL)",
    "INSERT INTO genesis_search_fill (upto, done) SELECT COALESCE(MAX(rowid), 0), 0 "
    "FROM programs WHERE NOT EXISTS (SELECT 1 FROM genesis_search_fill)",
    "CREATE TRIGGER IF NOT EXISTS programs_fts_insert AFTER INSERT ON programs BEGIN "
    "INSERT INTO programs_fts (rowid, code) VALUES (NEW.rowid, NEW.code); END",
    f"CREATE TRIGGER IF NOT EXISTS programs_fts_delete AFTER DELETE ON programs "
    f"WHEN {_INDEXED} BEGIN INSERT INTO programs_fts (programs_fts, rowid, code) "
    "VALUES ('delete', OLD.rowid, OLD.code); END",
    f"CREATE TRIGGER IF NOT EXISTS programs_fts_update AFTER UPDATE OF code ON programs "
    f"WHEN {_INDEXED} BEGIN INSERT INTO programs_fts (programs_fts, rowid, code) "
    "VALUES ('delete', OLD.rowid, OLD.code); "
    "INSERT INTO programs_fts (rowid, code) VALUES (NEW.rowid, NEW.code); END",
)


def _step_search(conn: sqlite3.Connection) -> None:
    for statement in _SEARCH_DDL:
        conn.execute(statement)


def _step_json_indexes(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS json_indexes (field TEXT PRIMARY KEY, "
                 "created_at REAL NOT NULL)")


STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _step_legacy_baseline,  # 0 -> 1
    _step_genesis,  # 1 -> 2
    _step_search,  # 2 -> 3 (upgrade() then fills the index in batches)
    _step_json_indexes,  # 3 -> 4: the catalogue of JSON path indexes (json_indexes.py)
)
assert len(STEPS) == SCHEMA_VERSION
_SEARCH_STEP = 2  # STEPS[2] is code search: the version stays 2 until its fill is done


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        roll_back(conn)
        raise


def upgrade(conn: sqlite3.Connection, progress: UpgradeProgress | None = None
            ) -> tuple[int, int]:
    """Apply pending steps; return (version before, after).

    The steps' DDL runs in one write transaction, the code-search fill in batches of
    :data:`FILL_BATCH` (one transaction each, counted on ``progress``), and the version is
    set last, so an interrupted upgrade is resumed by the next one.
    """
    before = read_version(conn)
    if before == SCHEMA_VERSION:
        return before, before
    with _write_transaction(conn):
        before = read_version(conn)
        for step in STEPS[before:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {max(before, _SEARCH_STEP)}")
    _fill_search_index(conn, progress)
    with _write_transaction(conn):
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return before, SCHEMA_VERSION


def _fill_search_index(conn: sqlite3.Connection, progress: UpgradeProgress | None) -> None:
    """Index the code of the rows the search triggers did not see, a batch per transaction."""
    if progress is not None:
        upto, done = conn.execute("SELECT upto, done FROM genesis_search_fill").fetchone()
        progress.total = conn.execute("SELECT COUNT(*) FROM programs WHERE rowid > ? AND "
                                      "rowid <= ?", (done, upto)).fetchone()[0]
    while True:
        with _write_transaction(conn):
            upto, done = conn.execute("SELECT upto, done FROM genesis_search_fill").fetchone()
            rows = conn.execute("SELECT rowid FROM programs WHERE rowid > ? AND rowid <= ? "
                                "ORDER BY rowid LIMIT ?", (done, upto, FILL_BATCH)).fetchall()
            last = rows[-1][0] if rows else upto
            conn.execute("INSERT INTO programs_fts (rowid, code) SELECT rowid, code "
                         "FROM programs WHERE rowid > ? AND rowid <= ?", (done, last))
            conn.execute("UPDATE genesis_search_fill SET done = ?", (last,))
        if progress is not None:
            progress.advance(len(rows))
        if not rows:
            return


def roll_back(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (a full disk, an I/O error).

    A failing ROLLBACK never hides the error that made it necessary.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def enable_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL mode, waiting up to ``busy_timeout`` for other connections."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if str(mode).lower() != "wal":
        raise DatabaseLockedError(f"could not switch the file to WAL mode (mode is {mode})")


def prepare_file(
    path: str | Path, *, read_only: bool = False, busy_timeout: float = 60.0,
    progress: UpgradeProgress | None = None,
) -> tuple[int, int]:
    """Make a file ready: WAL mode and the current schema; return (version before, after).

    With ``read_only`` nothing is changed: the version is read and returned twice.
    """
    if read_only:
        with read_only_connection(path, busy_timeout) as reader:
            version = read_version(reader)
        return version, version
    conn = connect_file(path, busy_timeout=busy_timeout)
    try:
        enable_wal(conn, busy_timeout)
        return upgrade(conn, progress)
    finally:
        conn.close()
