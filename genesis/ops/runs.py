"""Runs: listing them with their size and last activity, and dropping one.

On PostgreSQL many runs share a database, one schema each; on SQLite the file is the run,
so listing shows that one run and dropping means deleting the file (which this refuses to
do for you).
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis.database.url import DatabaseURL
from genesis.ops.errors import RefusedError
from genesis.ops.stores import as_url, open_source

__all__ = ["RunSummary", "drop_run", "list_runs"]


@dataclass(frozen=True)
class RunSummary:
    """A run: its name, where it lives, its size, last activity and schema version."""

    name: str
    location: str
    programs: int
    last_activity: float | None
    schema_version: int


async def list_runs(url: DatabaseURL | str) -> list[RunSummary]:
    """Return the runs of the database named by ``url`` (a SQLite file is one run)."""
    url = as_url(url)
    if url.is_sqlite:
        async with open_source(url) as store, store.read() as reader:
            programs, last = await reader.count_and_last_timestamp()
            version = await store.schema_version()
        return [RunSummary(url.path, str(url), programs, last, version)]
    from genesis.database.backends import postgres_runs

    return [RunSummary(run.name, str(url.with_run(run.name)), run.programs, run.last_activity,
                       run.schema_version) for run in await postgres_runs.list_runs(url)]


async def drop_run(url: DatabaseURL | str) -> RunSummary:
    """Drop a PostgreSQL run and everything in it; return what it held."""
    url = as_url(url)
    if url.is_sqlite:
        raise RefusedError(f"a SQLite run is its file: delete {url.path} (and its -wal and "
                           "-shm files, if any) to drop it")
    from genesis.database.backends import postgres_runs

    runs = {run.name: run for run in await list_runs(url)}
    if url.run not in runs:
        names = ", ".join(sorted(runs)) or "none"
        raise RefusedError(f"no run {url.run!r} at {url.endpoint} (runs: {names})")
    await postgres_runs.drop_run(url)
    return runs[url.run]
