"""PostgreSQL runs: one schema each, invisible to one another, listed and dropped by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, SchemaError, create_store
from genesis.database.backends.postgres import RunInfo, drop_run, list_runs
from genesis.database.backends.postgres_schema import SCHEMA_VERSION
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.factories import make_program

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_runs() -> Iterator[tuple[DatabaseURL, DatabaseURL]]:
    """Two fresh runs on the test server, dropped afterwards."""
    first, second = new_pg_run_url(), new_pg_run_url()
    try:
        yield first, second
    finally:
        drop_pg_run(first)
        drop_pg_run(second)


async def test_runs_do_not_see_each_other(two_runs, config: DatabaseConfig) -> None:
    first, second = two_runs
    mine, theirs = make_program(job="shared-job"), make_program(job="shared-job")
    async with create_store(first, config) as one, create_store(second, config) as two:
        assert await one.add(mine) == mine.id
        assert await two.add(theirs) == theirs.id  # the same job id, but another run
        await two.add_many([make_program()])
        async with one.write() as writer:
            await writer.set_metadata("best_program_id", mine.id)
        async with one.read() as reader_one, two.read() as reader_two:
            assert await reader_one.count() == 1
            assert await reader_two.count() == 2
            assert await reader_one.get(theirs.id) is None
            assert (await reader_two.by_source_job_id("shared-job")).id == theirs.id
            assert await reader_two.get_metadata("best_program_id") is None


async def test_list_runs_then_drop_one(two_runs, config: DatabaseConfig) -> None:
    first, second = two_runs
    async with create_store(first, config) as store:
        await store.add_many([make_program(timestamp=100.0 + i) for i in range(3)])
    async with create_store(second, config):
        pass
    runs = {run.name: run for run in await list_runs(first)}
    assert runs[first.run] == RunInfo(first.run, f"genesis_{first.run}", 3, 102.0, SCHEMA_VERSION)
    assert (runs[second.run].programs, runs[second.run].last_activity) == (0, None)
    await drop_run(first)
    await drop_run(first)  # dropping a run that is gone does nothing
    names = {run.name for run in await list_runs(first)}
    assert first.run not in names
    assert second.run in names


async def test_read_only_store_does_not_create_a_missing_run(config: DatabaseConfig) -> None:
    url = new_pg_run_url()
    with pytest.raises(SchemaError, match="does not exist"):
        await create_store(url, config, read_only=True).open()
    assert url.run not in {run.name for run in await list_runs(url)}
