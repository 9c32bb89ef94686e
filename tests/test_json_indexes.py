"""Indexes on JSON paths (``create_index``, ``genesis db index``) on both backends: what they
record, what they refuse, that filters keep their meaning, and the schema steps that add
their catalogue. The plans that use them are checked in ``tests/test_search_plans.py``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.backends import create_store, postgres_schema
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION
from genesis.database.errors import InvalidArgumentError, ReadOnlyError
from genesis.database.json_indexes import JsonIndex, index_field
from genesis.ops.copy import copy_run
from genesis.ops.upgrade import upgrade_run
from tests.test_cli_db import cli, text


def _programs(start: int = 0, count: int = 200) -> list[Program]:
    return [Program(id=f"p{i:04d}", code=f"x = {i}", correct=i % 2 == 0,
                    public_metrics={"score": i / 10, "label": "odd" if i % 2 else "even"},
                    metadata={"patch_type": "rare" if i % 50 == 0 else "diff"})
            for i in range(start, start + count)]


def _config(url: DatabaseURL) -> DatabaseConfig:
    return DatabaseConfig(database_url=str(url), num_islands=2)


async def test_an_index_is_recorded_once_kept_and_dropped(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.store.add_many(_programs())
        before = await db.query("public_metrics.score >= 15 and correct", limit=1000)
        assert await db.create_index("public_metrics.score") is True
        assert await db.create_index("public_metrics.score") is False
        assert await db.create_index("metadata.patch_type") is True
        assert await db.indexes() == ["metadata.patch_type", "public_metrics.score"]
        assert await db.query("public_metrics.score >= 15 and correct", limit=1000) == before
    async with AsyncProgramDatabase(_config(store_url)) as db:  # kept in the run
        assert await db.indexes() == ["metadata.patch_type", "public_metrics.score"]
        await db.store.add_many(_programs(200, 100))  # rows added later are found through it
        found = await db.query("public_metrics.score > 29.5", columns="id", limit=1000)
        assert [row["id"] for row in found] == [f"p{i:04d}" for i in range(296, 300)]
        assert await db.drop_index("public_metrics.score") is True
        assert await db.drop_index("public_metrics.score") is False
        assert await db.indexes() == ["metadata.patch_type"]
        names = await _index_names(db)
    assert JsonIndex(index_field("metadata.patch_type")).name in names
    assert JsonIndex(index_field("public_metrics.score")).name not in names


async def _index_names(db: AsyncProgramDatabase) -> set[str]:
    """The names of the indexes on the programs table, from the database's catalogue."""
    store: Any = db.store
    async with store.read() as reader:
        if store.url.is_sqlite:
            rows = await reader._all("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            rows = await reader._all("SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                                     (store.schema,))
    return {row[0] for row in rows}


@pytest.mark.parametrize("field", ["correct", "generation", "metadata", "code", "x.y",
                                   "public_metrics.", "public_metrics.a-b", "", 5])
async def test_only_a_json_path_can_be_indexed(store_url: DatabaseURL, field: Any) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        with pytest.raises(InvalidArgumentError, match="field"):
            await db.create_index(field)
        assert await db.indexes() == []


def test_index_names_are_distinct_and_quote_every_key() -> None:
    first, second = (JsonIndex(index_field(name)) for name in ("metadata.a_b", "metadata.a.b"))
    assert first.name != second.name and len(first.name) < 63
    long = JsonIndex(index_field("metadata." + "k" * 200))
    assert len(long.name) < 63
    assert JsonIndex(index_field("metadata.null.x")).postgres_expression() == \
        "(metadata #> '{\"null\",\"x\"}'::text[])"  # an unquoted NULL would be SQL NULL


async def test_a_read_only_store_refuses_to_index(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.store.add_many(_programs(count=5))
    async with create_store(store_url, read_only=True) as store:
        db = AsyncProgramDatabase(store=store)
        with pytest.raises(ReadOnlyError):
            await db.create_index("public_metrics.score")
        assert await db.indexes() == []


def test_the_cli_lists_creates_and_drops(store_url: DatabaseURL,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> None:
        async with AsyncProgramDatabase(_config(store_url)) as db:
            await db.store.add_many(_programs(count=20))

    import asyncio

    asyncio.run(seed())
    code, out, _ = cli(capsys, "db", "index", text(store_url))
    assert (code, out) == (0, "no indexed JSON path\n")
    code, out, err = cli(capsys, "db", "index", text(store_url), "public_metrics.score",
                         "metadata.patch_type")
    assert code == 0 and out == "metadata.patch_type\npublic_metrics.score\n"
    assert "public_metrics.score: indexed" in err
    code, out, err = cli(capsys, "db", "index", text(store_url), "public_metrics.score",
                         "--drop", "--json")
    assert code == 0 and json.loads(out) == ["metadata.patch_type"]
    assert "public_metrics.score: dropped" in err
    code, _, err = cli(capsys, "db", "index", text(store_url), "combined_score")
    assert code == 2 and "field: indexes are made on JSON paths" in err
    code, out, _ = cli(capsys, "db", "query", text(store_url), 'metadata.patch_type == "rare"',
                       "--columns", "id", "--json")
    assert code == 0 and json.loads(out) == [{"id": "p0000"}]


def test_the_cli_never_creates_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = cli(capsys, "db", "index", str(missing), "public_metrics.score")
    assert code != 0 and "not found" in err and not missing.exists()


async def test_an_older_file_is_read_without_indexes_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    url = DatabaseURL.parse(f"sqlite:///{path}")
    async with AsyncProgramDatabase(_config(url)) as db:
        await db.store.add_many(_programs(count=20))
    with sqlite3.connect(path) as conn:  # as Genesis before the catalogue left it
        conn.execute("DROP TABLE json_indexes")
        conn.execute("PRAGMA user_version = 3")
    async with create_store(url, read_only=True) as store:
        db = AsyncProgramDatabase(store=store)
        assert await db.indexes() == []
        assert len(await db.query("public_metrics.score > 1", limit=100)) == 9
    result = await upgrade_run(url)
    assert (result.before, result.after) == (3, SCHEMA_VERSION)
    async with AsyncProgramDatabase(_config(url)) as db:
        assert await db.create_index("public_metrics.score")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_postgres_run_gets_the_catalogue_by_upgrade(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.store.add_many(_programs(count=20))
        schema: str = db.store.schema  # type: ignore[attr-defined]
    with psycopg.connect(store_url.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE {schema}.json_indexes")
        conn.execute(f"DELETE FROM {schema}.genesis_schema WHERE version >= 5")
    result = await upgrade_run(store_url)
    assert (result.before, result.after) == (4, postgres_schema.SCHEMA_VERSION)
    async with AsyncProgramDatabase(_config(store_url)) as db:
        assert await db.create_index("public_metrics.score")
        assert await db.indexes() == ["public_metrics.score"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_interrupted_postgres_build_is_built_again(store_url: DatabaseURL) -> None:
    """CREATE INDEX CONCURRENTLY that fails leaves an invalid index behind: it is rebuilt."""
    index = JsonIndex(index_field("public_metrics.label"))
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.store.add_many(_programs(count=20))
        schema: str = db.store.schema  # type: ignore[attr-defined]
        with psycopg.connect(store_url.conninfo(), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.UniqueViolation):  # "odd" and "even" repeat
                conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {index.name} ON "
                             f"{schema}.programs ({index.postgres_expression()})")
            valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass"
            assert conn.execute(valid, (f"{schema}.{index.name}",)).fetchone() == (False,)
            assert await db.create_index("public_metrics.label")
            assert conn.execute(valid, (f"{schema}.{index.name}",)).fetchone() == (True,)
        rows = await db.query('public_metrics.label == "odd"', columns="id", limit=100)
    assert len(rows) == 10


async def test_a_copy_keeps_the_indexed_paths(store_url: DatabaseURL, tmp_path: Path) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.store.add_many(_programs(count=20))
        await db.create_index("public_metrics.score")
        await db.create_index("metadata.patch_type")
    copy = DatabaseURL.parse(f"sqlite:///{tmp_path / 'copy.db'}")
    await copy_run(store_url, copy)
    async with AsyncProgramDatabase(_config(copy)) as db:
        assert await db.indexes() == ["metadata.patch_type", "public_metrics.score"]
        assert len(await db.query("public_metrics.score > 1", limit=100)) == 9
