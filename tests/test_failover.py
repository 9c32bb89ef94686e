"""A run survives losing its primary: several worker processes keep adding through a
multi-host URL while the primary is killed (``pg_ctl stop -m immediate``) and the standby
promoted (``tests/replication.py``).

With synchronous replication every acknowledged program is there exactly once afterwards;
with asynchronous replication none is there twice, and the number lost is reported. A
COMMIT whose reply the failover cut off is decided on the new primary.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from genesis.database import ConnectionLostError, DatabaseConfig, DatabaseURL, create_store
from genesis.database.backends.postgres import PostgresStore
from genesis.database.backends.postgres_schema import schema_name
from genesis.database.backends.postgres_session import PostgresSession
from genesis.database.backends.sql import encode_for_insert
from tests.factories import make_program, store_parents
from tests.replication import Replication, running_pair

pytestmark = [pytest.mark.postgres, pytest.mark.replication, pytest.mark.slow]
PROCESSES = 3
TASKS = 4
BEFORE = AFTER = 15  # acknowledged adds each worker makes before and after the failover
PARENTS = 4


@pytest.fixture(scope="module")
def servers() -> Iterator[Replication]:
    """The module's primary and standby (one pair: each failover is followed by a new standby)."""
    yield from running_pair(synchronous=True)


@pytest.fixture
def pair(servers: Replication) -> Replication:
    """The module's servers with a standby streaming (a new one after a failover)."""
    if not servers.standby:
        servers.add_standby()
    return servers


def _worker(url: DatabaseURL, parent_ids: list[str], worker: int, folder: Path) -> None:
    """Add children of the parents until ``folder/stop`` exists; log every acknowledged id."""

    async def main() -> None:
        log = open(folder / f"acked-{worker}", "a", buffering=1)  # noqa: SIM115
        async with create_store(url, DatabaseConfig(pool_max_size=3,
                                                    write_retry_timeout=60)) as store:
            async with store.read() as reader:
                parents = await reader.get_many(parent_ids)

            async def task(index: int) -> None:
                rng = random.Random(worker * 1000 + index)
                while not (folder / "stop").exists():
                    child = make_program(parent=rng.choice(parents), rng=rng, generation=1)
                    log.write(await store.add(child) + "\n")

            await asyncio.gather(*(task(i) for i in range(TASKS)))
        log.close()

    asyncio.run(main())


def _acked(folder: Path) -> list[str]:
    return [line for path in folder.glob("acked-*") for line in path.read_text().split()]


def _wait(folder: Path, workers: int, each: int, since: dict[str, int]) -> None:
    """Wait until every worker acknowledged ``each`` adds beyond ``since`` (or one exited)."""
    for _ in range(12000):
        counts = {p.name: len(p.read_text().split()) for p in folder.glob("acked-*")}
        if len(counts) == workers and all(
                n >= since.get(name, 0) + each for name, n in counts.items()):
            return
        time.sleep(0.01)
    raise AssertionError(f"the workers stalled: {counts}")


def _run(pair: Replication, url: DatabaseURL, folder: Path) -> tuple[list[str], dict[str, int]]:
    """Seed parents, run the workers through a failover; return (acked ids, stored counts)."""
    parents = store_parents(url, PARENTS)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(url, [p.id for p in parents], w, folder))
               for w in range(PROCESSES)]
    for process in workers:
        process.start()
    try:
        _wait(folder, PROCESSES, BEFORE, {})
        before = {p.name: len(p.read_text().split()) for p in folder.glob("acked-*")}
        pair.fail_over()
        _wait(folder, PROCESSES, AFTER, before)  # they continue by themselves
    finally:
        (folder / "stop").touch()
        for process in workers:
            process.join(120)
    assert [p.exitcode for p in workers] == [0] * PROCESSES
    stored, counted = _stored(url)
    assert counted == len(stored) - PARENTS  # every child counted once in its parent
    return _acked(folder), stored


def _stored(url: DatabaseURL) -> tuple[dict[str, int], int]:
    """Copies stored per program id, and the children counted, on the primary now."""
    schema = schema_name(url.run)
    with psycopg.connect(url.conninfo()) as conn:  # the URL finds the new primary
        stored = dict(conn.execute(f"SELECT id, COUNT(*) FROM {schema}.programs "
                                   "GROUP BY id").fetchall())
        counted = conn.execute(f"SELECT COALESCE(SUM(children_count), 0) "
                               f"FROM {schema}.programs").fetchone()
    return stored, int(counted[0]) if counted else 0


@pytest.mark.parametrize("synchronous", [True, False], ids=["sync", "async"])
def test_workers_survive_a_failover(pair: Replication, tmp_path: Path, synchronous: bool,
                                    record_property: pytest.RecordProperty) -> None:
    pair.set_synchronous(synchronous)
    options = "synchronous_commit=remote_apply" if synchronous else ""
    url = pair.url(f"failover_{'sync' if synchronous else 'async'}", options=options)
    acked, stored = _run(pair, url, tmp_path)
    assert len(acked) == len(set(acked)) >= PROCESSES * (BEFORE + AFTER)
    assert all(count == 1 for count in stored.values())  # nothing stored twice
    lost = [pid for pid in acked if pid not in stored]
    record_property("acknowledged", len(acked))
    record_property("lost", len(lost))
    print(f"\n{'sync' if synchronous else 'async'} failover: {len(acked)} acknowledged, "
          f"{len(lost)} lost")
    if synchronous:
        assert lost == []


@pytest.mark.parametrize("case", ["applied", "lost", "applied-without-key"])
async def test_a_commit_cut_by_the_failover_is_decided_on_the_new_primary(
        pair: Replication, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """The failover comes after COMMIT was applied (its reply lost) or before it was sent."""
    pair.set_synchronous(True)
    original = PostgresSession.commit

    async def commit(self: PostgresSession) -> None:
        monkeypatch.undo()  # only the first commit meets the failover
        if case == "lost":
            pair.fail_over()
            await original(self)
        else:
            await original(self)  # the standby has it: replication is synchronous
            pair.fail_over()
            await self.control("SELECT 1")  # finds the connection gone

    run = f"cut_{case.replace('-', '_')}"
    async with create_store(pair.url(run), DatabaseConfig(pool_max_size=2)) as store:
        assert isinstance(store, PostgresStore)
        batch = [make_program() for _ in range(3)]
        monkeypatch.setattr(PostgresSession, "commit", commit)
        if case == "applied-without-key":  # a transaction with no idempotency key
            items = [encode_for_insert(p, 1 << 20, True) for p in batch]
            with pytest.raises(ConnectionLostError, match="cannot be confirmed"):
                await store.transaction(lambda session: session.insert_encoded(items))
        else:
            assert await store.add_many(batch) == [p.id for p in batch]
        assert store.write_retries == (1 if case == "lost" else 0)
        stored, _ = _stored(store.url)
    assert stored == {p.id: 1 for p in batch}  # never lost, never run twice
