"""Backups are consistent snapshots in one portable file, taken while writers keep going."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from genesis.database import DatabaseURL, NotAProgramDatabaseError, Program, create_store
from genesis.ops import RefusedError, backup_run, restore_run, verify_runs
from tests.factories import make_program
from tests.test_ops_copy import fresh_pg_run, lineage, populate, seeded

WRITERS = 4


async def test_backup_then_restore_on_each_backend(store_url: DatabaseURL,
                                                   tmp_path: Path) -> None:
    await populate(store_url, lineage(40))
    file = tmp_path / "backups" / "run.db"
    file.parent.mkdir()
    result = await backup_run(store_url, file)
    assert (result.programs, result.path) == (41, str(file))
    assert result.method.startswith("sqlite3" if store_url.is_sqlite else "snapshot")
    assert sorted(p.name for p in file.parent.iterdir()) == ["run.db"]  # one file, no log
    assert (await verify_runs(store_url, file)).ok
    with pytest.raises(RefusedError, match="exists; use --force"):
        await backup_run(store_url, file)
    assert (await backup_run(store_url, file, force=True)).programs == 41

    restored = DatabaseURL.sqlite(tmp_path / "restored.db")
    assert (await restore_run(file, restored)).copied == 41
    assert (await verify_runs(store_url, restored)).ok
    with pytest.raises(RefusedError, match="not empty"):
        await restore_run(file, restored)
    assert (await restore_run(file, restored, force=True)).copied == 41


async def test_restore_into_postgres(tmp_path: Path) -> None:
    source, _ = await seeded(tmp_path / "source.db", 25)
    await backup_run(source, tmp_path / "copy.db")
    with fresh_pg_run() as run:
        await restore_run(tmp_path / "copy.db", run)
        assert (await verify_runs(source, run)).ok


async def test_backup_never_overwrites_its_source_or_a_foreign_file(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    await seeded(source, 3)
    with pytest.raises(RefusedError, match="is the database itself"):
        await backup_run(source, source, force=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n" * 100)
    with pytest.raises(NotAProgramDatabaseError):
        await backup_run(source, notes, force=True)
    assert notes.read_text() == "keep me\n" * 100


async def write_chains(store_url: DatabaseURL, stop: asyncio.Event,
                       acknowledged: list[list[str]]) -> None:
    """Each writer adds a parent-before-child chain, one program after the other."""
    async with create_store(store_url) as store:

        async def writer(index: int) -> None:
            previous: Program | None = None
            while not stop.is_set():
                program = make_program(parent=previous, island=index % 3)
                await store.add(program)
                acknowledged[index].append(program.id)
                previous = program if len(acknowledged[index]) % 5 else None

        await asyncio.gather(*(writer(i) for i in range(WRITERS)))


def backup_rows(path: Path) -> tuple[list[tuple], dict[int, int]]:
    """The program rows (id, parent, children_count, island) and island counters of a file."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT id, parent_id, children_count, island_idx FROM programs")
        islands = dict(conn.execute("SELECT island_idx, programs FROM islands"))
        return rows.fetchall(), islands
    finally:
        conn.close()


@pytest.mark.slow
async def test_backup_taken_while_writers_run_is_a_consistent_prefix(
    store_url: DatabaseURL, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    acknowledged: list[list[str]] = [[] for _ in range(WRITERS)]
    writers = asyncio.create_task(write_chains(store_url, stop, acknowledged))
    while sum(map(len, acknowledged)) < 200:
        await asyncio.sleep(0.01)
    before = {pid for chain in acknowledged for pid in chain}
    file = tmp_path / "live.db"
    try:
        result = await backup_run(store_url, file, batch_size=20)
    finally:
        stop.set()
        await writers
    rows, islands = backup_rows(file)
    ids = {row[0] for row in rows}
    assert before <= ids  # every write acknowledged before the backup began is in it
    for chain in acknowledged:  # each writer's programs form a prefix of its sequence
        kept = [pid in ids for pid in chain]
        assert kept == sorted(kept, reverse=True)
    children = Counter(row[1] for row in rows if row[1] is not None)
    assert all(parent in ids for parent in children)
    assert {row[0]: row[2] for row in rows} == {pid: children[pid] for pid in ids}
    assert islands == Counter(row[3] for row in rows)
    assert result.programs == len(rows)
    restored = DatabaseURL.sqlite(tmp_path / "restored.db")
    await restore_run(file, restored)
    assert (await verify_runs(file, restored)).ok
