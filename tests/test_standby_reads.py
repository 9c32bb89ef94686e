"""Reads routed to a hot standby (``read_hosts``): used while fit, never beyond
``max_read_lag``, left for the primary while down, and never hiding a store's own writes."""

from __future__ import annotations

import asyncio
import io
import uuid
from contextlib import redirect_stdout
from typing import Any

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.database.backends.postgres_reads import LAG_SECONDS
from tests.factories import make_program
from tests.replication import Replication, standby_pair  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.replication]
CONFIG = DatabaseConfig(pool_max_size=3, seed=5)


def _run() -> str:
    return f"r_{uuid.uuid4().hex[:12]}"


async def _reads(store: Any) -> tuple[int, int]:
    topology = (await store.stats())["topology"]
    return topology["standby_reads"], topology["primary_reads"]


async def _count(store: Any) -> int:
    async with store.read() as reader:
        return (await reader.totals()).programs


def _lag(pair: Replication) -> float:
    return float(pair.sql(pair.standby, f"SELECT {LAG_SECONDS}")[0])


async def test_reads_use_the_standby_and_see_their_own_writes(
        standby_pair: Replication) -> None:  # noqa: F811
    pair = standby_pair
    async with create_store(pair.url(_run(), read=True), CONFIG) as store:
        await store.add(make_program())
        pair.wait_streaming()
        assert await _count(store) == 1
        assert (await _reads(store))[0] == 1  # the standby had replayed the add
        pair.sql(pair.standby, "SELECT pg_wal_replay_pause()")
        try:
            await store.add(make_program())
            assert await _count(store) == 2  # read-your-writes: the standby has not got it
            assert await _reads(store) == (1, 1)
        finally:
            pair.sql(pair.standby, "SELECT pg_wal_replay_resume()")
        topology = (await store.stats())["topology"]
    assert [s["state"] for s in topology["standbys"]] == ["streaming"]
    assert topology["primary"].startswith(f"127.0.0.1:{pair.primary}")


async def test_a_lagging_standby_is_not_used_beyond_max_read_lag(
        standby_pair: Replication) -> None:  # noqa: F811
    pair, run = standby_pair, _run()
    async with create_store(pair.url(run), CONFIG) as writer:
        await writer.add(make_program())
        pair.wait_streaming()
        pair.sql(pair.standby, "SELECT pg_wal_replay_pause()")
        try:
            await writer.add(make_program())  # received by the standby, not replayed
            for _ in range(600):  # a hang guard, no timing
                if _lag(pair) > 0.5:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the paused standby never fell behind")
            async with create_store(pair.url(run, read=True, options="max_read_lag=0.5"),
                                    CONFIG) as reader:
                assert await _count(reader) == 2
                assert await _reads(reader) == (0, 1)
                pair.sql(pair.standby, "SELECT pg_wal_replay_resume()")
                pair.wait_streaming()
                assert await _count(reader) == 2
                assert (await _reads(reader))[0] == 1  # caught up: the standby again
        finally:
            pair.sql(pair.standby, "SELECT pg_wal_replay_resume()")


async def test_sampling_continues_while_the_standby_is_down(
        standby_pair: Replication) -> None:  # noqa: F811
    pair = standby_pair
    url: DatabaseURL = pair.url(_run(), read=True)
    store = create_store(url, CONFIG)
    async with AsyncProgramDatabase(CONFIG, store=store) as db:
        root = make_program(generation=0)
        await db.add(root)
        for _ in range(3):
            await db.add(make_program(parent=(await db.sample())[0], generation=1))
        ids = {p.id for p in await db.get_all_programs()}  # with the root's island copies
        pair.stop_standby()
        try:
            for _ in range(5):  # falls back to the primary
                assert (await db.sample())[0].id in ids
            down = await _reads(store)
        finally:
            pair.start_standby()
        assert down[1] >= 5
        for _ in range(600):  # back on the standby once it is up (a hang guard, no timing)
            assert (await db.sample())[0].id in ids
            if (await _reads(store))[0] > down[0]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("reads never went back to the restarted standby")


def test_db_stats_shows_the_topology(standby_pair: Replication) -> None:  # noqa: F811
    from genesis.cli import main

    pair, url = standby_pair, standby_pair.url(_run(), read=True)

    async def seed() -> None:
        async with create_store(url, CONFIG) as store:
            await store.add(make_program())

    asyncio.run(seed())
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["db", "stats", str(url)]) == 0
    text = out.getvalue()
    assert f"primary        127.0.0.1:{pair.primary}" in text
    assert "standby        standby1 at 127.0.0.1: streaming, async" in text
    assert f"from 127.0.0.1:{pair.standby}" in text


async def test_a_busy_standby_is_not_taken_for_a_down_one(
        standby_pair: Replication) -> None:  # noqa: F811
    pair = standby_pair
    config = DatabaseConfig(pool_min_size=1, pool_max_size=1)
    async with create_store(pair.url(_run(), read=True), config) as store:
        await store.add(make_program())
        pair.wait_streaming()
        async with store.read() as holding:  # the standby pool's only connection
            assert await _reads(store) == (1, 0)
            assert await _count(store) == 1  # waits for it a while, then the primary answers
            assert (await holding.totals()).programs == 1
        assert await _count(store) == 1
        assert await _reads(store) == (2, 1)  # the standby again: it was never marked down


async def test_synchronous_commit_is_asked_for_by_every_write_transaction(
        standby_pair: Replication) -> None:  # noqa: F811
    url = standby_pair.url(_run(), options="synchronous_commit=remote_apply")
    async with create_store(url, CONFIG) as store:
        async def setting(session: Any) -> str:
            return (await session._one("SHOW synchronous_commit"))[0]

        assert await store.transaction(setting) == "remote_apply"
        async with store.read() as reader:  # outside a write transaction: the server's
            assert (await reader._one("SHOW synchronous_commit"))[0] == "on"
