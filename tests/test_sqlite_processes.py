"""Several OS processes, many tasks each, writing one SQLite file at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, GenesisError, create_store
from tests.factories import make_program

PROCESSES = 4
TASKS = 8
PER_TASK = 25


def _writer(path: str, worker: int) -> tuple[list[str], list[str]]:
    """Add programs from many tasks; return (acknowledged ids, error messages)."""

    async def main() -> tuple[list[str], list[str]]:
        acked: list[str] = []
        errors: list[str] = []
        config = DatabaseConfig(busy_timeout=60.0)
        async with create_store(DatabaseURL.sqlite(path), config) as store:

            async def task(index: int) -> None:
                for k in range(PER_TASK):
                    program = make_program(job=f"w{worker}-t{index}-{k}")
                    try:
                        acked.append(await store.add(program))
                    except GenesisError as exc:
                        errors.append(repr(exc))

            await asyncio.gather(*(task(i) for i in range(TASKS)))
        return acked, errors

    return asyncio.run(main())


@pytest.mark.slow
def test_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    asyncio.run(create_store(DatabaseURL.sqlite(path)).open())  # create the schema once
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        results = pool.starmap(_writer, [(str(path), w) for w in range(PROCESSES)])
    acked = [pid for ids, _ in results for pid in ids]
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    assert len(acked) == len(set(acked)) == PROCESSES * TASKS * PER_TASK
    conn = sqlite3.connect(path)
    stored = [row[0] for row in conn.execute("SELECT id FROM programs")]
    assert sorted(stored) == sorted(acked)
    assert conn.execute("SELECT SUM(programs) FROM islands").fetchone()[0] == len(acked)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
