"""Real ShinkaEvolve files migrate SQLite -> PostgreSQL -> SQLite losslessly and continue."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL
from genesis.ops import copy_run, verify_runs
from tests.conftest import SHINKA_FILES
from tests.factories import make_program
from tests.test_ops_copy import fresh_pg_run

pytestmark = pytest.mark.postgres


def raw_counts(path: Path) -> tuple[int, int, int]:
    """Programs, archive rows and metadata rows, counted by plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore
                     for table in ("programs", "archive", "metadata_store"))
    finally:
        conn.close()


async def continue_run(url: DatabaseURL) -> None:
    """Sample a parent and add its child (or the first program) through the engine."""
    config = DatabaseConfig(database_url=str(url), num_islands=2, seed=5)
    async with AsyncProgramDatabase(config) as db:
        before = await db.count()
        if before:
            parent, _, _ = await db.sample()
            child = make_program(parent=parent)
            assert await db.add(child) == child.id
            assert (await db.get(parent.id)).children_count == parent.children_count + 1
            assert await db.count() == before + 1
        else:
            await db.add(make_program())
            assert await db.count() == 2  # the first program and its copy on island 1


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
async def test_shinka_file_round_trips_through_postgres(source: Path, shinka_copy,
                                                        tmp_path: Path) -> None:
    original = shinka_copy(source)
    programs, archive, metadata = raw_counts(original)
    back = DatabaseURL.sqlite(tmp_path / "back.db")
    with fresh_pg_run() as run:
        there = await copy_run(original, run, batch_size=25)
        assert (there.programs, there.archive, there.metadata_keys) == (programs, archive,
                                                                        metadata)
        await copy_run(run, back)
        for first, second in ((original, run), (original, back)):
            report = await verify_runs(first, second)
            assert report.ok, report.lines()
        assert report.compared == programs
        await continue_run(run)
