"""Code search arrives through the schema upgrade: in batches, with progress, resumable;
ShinkaEvolve files and older runs of both backends get it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.backends import postgres_schema, sqlite_schema
from genesis.database.backends.postgres_schema import schema_name
from genesis.database.errors import OperationalError
from genesis.ops import upgrade_run
from tests.conftest import SHINKA_FILES, drop_pg_run, new_pg_run_url


class Counted:
    """A progress that records what it is told, and can fail after some batches."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.total: int | None = None
        self.done = 0
        self.batches = 0
        self.fail_after = fail_after

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.batches += 1
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt  # as Ctrl-C would, between two batches


def _programs(count: int) -> list[Program]:
    return [Program(id=f"p{i:03d}", code=f"def f{i}():\n    return word{i} + common\n",
                    island_idx=0) for i in range(count)]


async def _sqlite_at_version_2(path: Path, count: int) -> None:
    """A file of ``count`` programs, taken back to schema version 2 (no search index)."""
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(path))) as db:
        await db.store.add_many(_programs(count))
    with sqlite3.connect(path) as conn:
        for trigger in ("programs_fts_insert", "programs_fts_delete", "programs_fts_update"):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DROP TABLE programs_fts")
        conn.execute("DROP TABLE genesis_search_fill")
        conn.execute("PRAGMA user_version = 2")


def _fts_ok(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO programs_fts (programs_fts) VALUES ('integrity-check')")


async def test_sqlite_fill_is_batched_counted_and_resumed(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    path = tmp_path / "old.db"
    await _sqlite_at_version_2(path, 23)
    monkeypatch.setattr(sqlite_schema, "FILL_BATCH", 5)
    interrupted = Counted(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        await upgrade_run(path, progress=interrupted)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT done FROM genesis_search_fill").fetchone()[0] == 10
    resumed = Counted()
    result = await upgrade_run(path, progress=resumed)
    assert (result.before, result.after) == (2, sqlite_schema.SCHEMA_VERSION)
    assert (resumed.total, resumed.done) == (13, 13)  # only what the first one left
    _fts_ok(path)
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(path))) as db:
        assert len(await db.search_code("common", limit=100)) == 23
        assert [h.id for h in await db.search_code("word17")] == ["p017"]


async def test_deleting_a_row_the_fill_has_not_reached_keeps_the_index_sound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    await _sqlite_at_version_2(path, 12)
    monkeypatch.setattr(sqlite_schema, "FILL_BATCH", 4)
    with pytest.raises(KeyboardInterrupt):
        await upgrade_run(path, progress=Counted(fail_after=1))
    with sqlite3.connect(path) as conn:  # rows 1-4 are indexed, 5-12 not yet
        conn.execute("DELETE FROM programs WHERE id IN ('p001', 'p009')")
    await upgrade_run(path)
    _fts_ok(path)
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(path))) as db:
        found = {h.id for h in await db.search_code("common", limit=100)}
    assert found == {p.id for p in _programs(12)} - {"p001", "p009"}


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
async def test_shinka_files_get_the_index_through_the_upgrade(source: Path, shinka_copy
                                                              ) -> None:
    legacy = shinka_copy(source)
    progress = Counted()
    result = await upgrade_run(legacy, progress=progress)
    assert (result.before, result.after) == (0, sqlite_schema.SCHEMA_VERSION)
    with sqlite3.connect(legacy) as conn:
        count = conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
        last = conn.execute("SELECT id, code FROM programs ORDER BY rowid DESC "
                            "LIMIT 1").fetchone()
    assert progress.total == progress.done == count
    _fts_ok(legacy)
    if last is None:  # a file without programs: nothing to find
        async with AsyncProgramDatabase(DatabaseConfig(db_path=str(legacy))) as db:
            assert await db.search_code("def") == []
        return
    pid, code = last
    words = sorted(set(re.findall(r"[^\W_]+", code)), key=len)[-2:]  # two rare-ish words
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(legacy))) as db:
        hits = await db.search_code(" ".join(words), limit=count)
    assert pid in {h.id for h in hits}


def _pg_back_to_version_3(url: DatabaseURL) -> None:
    schema = schema_name(url.run)
    with psycopg.connect(url.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP INDEX {schema}.idx_programs_code_tsv")
        conn.execute(f"DROP TRIGGER programs_code_tsv ON {schema}.programs")
        conn.execute(f"DROP FUNCTION {schema}.programs_code_tsv(), "
                     f"{schema}.code_tsvector(text)")
        conn.execute(f"ALTER TABLE {schema}.programs DROP COLUMN code_tsv")
        conn.execute(f"DELETE FROM {schema}.genesis_schema WHERE version >= 4")


@pytest.mark.postgres
async def test_postgres_fill_is_batched_counted_and_resumed(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    url = new_pg_run_url()
    try:
        async with AsyncProgramDatabase(DatabaseConfig(database_url=str(url))) as db:
            await db.store.add_many(_programs(23))
        _pg_back_to_version_3(url)
        monkeypatch.setattr(postgres_schema, "FILL_BATCH", 5)
        with pytest.raises(KeyboardInterrupt):
            await upgrade_run(url, progress=Counted(fail_after=2))
        resumed = Counted()
        result = await upgrade_run(url, progress=resumed)
        assert (result.before, result.after) == (3, postgres_schema.SCHEMA_VERSION)
        assert (resumed.total, resumed.done) == (13, 13)
        async with AsyncProgramDatabase(DatabaseConfig(database_url=str(url))) as db:
            assert len(await db.search_code("common", limit=100)) == 23
            assert [h.id for h in await db.search_code("word17")] == ["p017"]
    finally:
        drop_pg_run(url)


async def test_a_file_read_as_it_is_says_search_needs_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await _sqlite_at_version_2(path, 3)
    config = DatabaseConfig(db_path=str(path))
    async with AsyncProgramDatabase(config, read_only=True) as db:
        with pytest.raises(OperationalError, match="genesis db upgrade"):
            await db.search_code("common")
        assert len(await db.query("generation == 0")) == 3  # filters work on it as it is
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2  # nothing changed
