"""Real ShinkaEvolve files open, upgrade in place without changing a row, and continue."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from genesis.database import (
    DatabaseURL,
    NotAProgramDatabaseError,
    Program,
    SchemaError,
    create_store,
)
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION, prepare_file
from tests.conftest import SHINKA_FILES
from tests.factories import make_program

LEGACY_TABLES = ("programs", "archive", "metadata_store", "generation_event_log", "attempt_log")
LEGACY_PROGRAM_COLUMNS = (
    "id", "code", "language", "parent_id", "archive_inspiration_ids", "top_k_inspiration_ids",
    "generation", "timestamp", "code_diff", "combined_score", "public_metrics",
    "private_metrics", "text_feedback", "complexity", "embedding", "embedding_pca_2d",
    "embedding_pca_3d", "embedding_cluster_id", "correct", "children_count", "metadata",
    "migration_history", "island_idx",
)
JSON_LISTS = ("archive_inspiration_ids", "top_k_inspiration_ids", "embedding",
              "embedding_pca_2d", "embedding_pca_3d", "migration_history")
JSON_DICTS = ("public_metrics", "private_metrics", "metadata")


def raw_rows(path: Path) -> dict[str, list[tuple]]:
    """Read every legacy table with plain sqlite3, legacy columns only."""
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = {}
        for table in LEGACY_TABLES:
            if table not in tables:
                continue
            columns = ", ".join(LEGACY_PROGRAM_COLUMNS) if table == "programs" else "*"
            order = "id" if table != "metadata_store" else "key"
            if table == "archive":
                order = "program_id"
            rows[table] = conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()
        return rows
    finally:
        conn.close()


def programs_by_plain_sqlite(path: Path) -> dict[str, Program]:
    """Decode the programs table the way ShinkaEvolve's reader does."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    archive = {r[0] for r in conn.execute("SELECT program_id FROM archive")}
    programs = {}
    for row in conn.execute("SELECT * FROM programs"):
        data = dict(row)
        for name in JSON_LISTS:
            data[name] = json.loads(data[name]) if data[name] else []
        for name in JSON_DICTS:
            data[name] = json.loads(data[name]) if data[name] else {}
        data["correct"] = bool(data["correct"])
        data["in_archive"] = data["id"] in archive
        programs[data["id"]] = Program.from_dict(data)
    conn.close()
    return programs


async def read_all(url: DatabaseURL) -> dict[str, Program]:
    """Read every program through the store."""
    async with create_store(url) as store, store.read() as reader:
        return {p.id: p async for batch in reader.iter_programs() for p in batch}


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
async def test_shinka_file_upgrades_without_changing_a_row(source: Path, shinka_copy) -> None:
    path = shinka_copy(source)
    before_raw = raw_rows(path)
    expected = programs_by_plain_sqlite(path)
    url = DatabaseURL.sqlite(path)
    async with create_store(url) as store:
        assert store.upgraded_from == 0
        assert await store.schema_version() == SCHEMA_VERSION
    assert await read_all(url) == expected
    after_raw = raw_rows(path)
    for table, rows in before_raw.items():
        assert after_raw[table] == rows, table
    async with create_store(url) as again:
        assert again.upgraded_from is None


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
async def test_shinka_file_island_counters_match_rows(source: Path, shinka_copy) -> None:
    path = shinka_copy(source)
    async with create_store(DatabaseURL.sqlite(path)) as store, store.read() as reader:
        stats = {s.island_idx: s for s in await reader.island_stats()}
        total = await reader.count()
    conn = sqlite3.connect(path)
    expected = conn.execute(
        "SELECT island_idx, COUNT(*), SUM(correct), MAX(CASE WHEN correct THEN combined_score "
        "END) FROM programs GROUP BY island_idx").fetchall()
    assert total == conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
    conn.close()
    assert {(i, s.programs, s.correct, s.best_score) for i, s in stats.items()} == set(expected)


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
async def test_shinka_file_can_be_continued(source: Path, shinka_copy) -> None:
    path = shinka_copy(source)
    async with create_store(DatabaseURL.sqlite(path)) as store:
        async with store.read() as reader:
            parent = await reader.earliest_program()
            count = await reader.count()
        child = make_program(parent=parent) if parent else make_program()
        await store.add(child)
        async with store.read() as reader:
            assert await reader.count() == count + 1
            if parent:
                assert (await reader.get(parent.id)).children_count == parent.children_count + 1
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _prepare(path: str) -> tuple[int, int]:
    return prepare_file(path)


def test_two_processes_upgrading_one_file_upgrade_it_once(shinka_copy) -> None:
    path = shinka_copy(SHINKA_FILES[0])
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.map(_prepare, [str(path)] * 4)
    assert sorted(before for before, _ in results).count(0) == 1
    assert {after for _, after in results} == {SCHEMA_VERSION}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT SUM(programs) FROM islands").fetchone()[0] == \
        conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]


async def test_file_that_is_not_a_program_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE users (id INTEGER)").connection.commit()
    with pytest.raises(NotAProgramDatabaseError, match="no 'programs' table"):
        await create_store(DatabaseURL.sqlite(other)).open()
    text = tmp_path / "notes.db"
    text.write_text("these are not the droids you are looking for\n" * 200)
    with pytest.raises(NotAProgramDatabaseError):
        await create_store(DatabaseURL.sqlite(text)).open()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with create_store(DatabaseURL.sqlite(path)):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        await create_store(DatabaseURL.sqlite(path)).open()


async def test_missing_file_in_read_only_mode(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not found"):
        await create_store(DatabaseURL.sqlite(tmp_path / "nope.db"), read_only=True).open()


def test_legacy_reader_sees_our_rows(tmp_path: Path) -> None:
    path = tmp_path / "ours.db"
    program = make_program(embedding_dim=4)

    async def write() -> None:
        async with create_store(DatabaseURL.sqlite(path)) as store:
            await store.add(program)

    asyncio.run(write())
    legacy = programs_by_plain_sqlite(path)[program.id]
    assert legacy.code == program.code and legacy.metadata == program.metadata
    assert legacy.public_metrics == program.public_metrics
