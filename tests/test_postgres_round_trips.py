"""Round trips of a steady-state evolution step on PostgreSQL, counted by a proxy (issue 13).

The proxy (``benchmarks/latency_proxy.py``, a child process) counts the flights the engine
waits for; counts do not depend on the machine's speed, so they can be asserted. Today's
engine needs 16-19 per step, so these tests are expected to fail until it meets the target.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from benchmarks.latency_proxy import LatencyProxy
from benchmarks.steps import read_seed
from genesis.database import AsyncProgramDatabase, DatabaseURL
from tests.conftest import drop_pg_run, new_pg_run_url, require_postgres
from tests.round_trips import (
    engine_config,
    flights_per_step,
    seed_run,
    through,
    write_inputs,
)

pytestmark = pytest.mark.postgres
STEPS = 15
MAX_STEP_ROUND_TRIPS = 4
MAX_SAMPLE_ROUND_TRIPS = 1
TODAY = ("issue 13: the engine still needs 16-19 round trips per step (sample 2, similarity 2, "
         "add 6, maintenance 8-9 when it runs) and 1.5 per sample(); remove this mark once "
         "it meets the target")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The seed run and proposals of ``benchmarks/steps.py`` (60 programs, 40 proposals)."""
    seed, proposals = write_inputs(tmp_path_factory.mktemp("round-trips"))
    return seed, read_seed(proposals)


@pytest.fixture
def proxy() -> Iterator[LatencyProxy]:
    """A counting proxy in front of the test server (no added latency)."""
    url = require_postgres()  # skips (fails under GENESIS_REQUIRE_POSTGRES) without a server
    with LatencyProxy((url.host or "127.0.0.1", url.port or 5432), rtt_ms=0) as running:
        yield running


@pytest.fixture
async def db(proxy: LatencyProxy, inputs: tuple[Path, list[dict]]
             ) -> AsyncIterator[AsyncProgramDatabase]:
    """An engine reaching a freshly seeded run through the proxy."""
    url: DatabaseURL = new_pg_run_url()
    try:
        await seed_run(url, inputs[0])
        async with AsyncProgramDatabase(engine_config(through(url, proxy))) as opened:
            yield opened
    finally:
        drop_pg_run(url)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=TODAY)
@pytest.mark.parametrize("tasks", [1, 8])
async def test_steady_state_step_takes_at_most_four_round_trips(
    db: AsyncProgramDatabase, proxy: LatencyProxy, inputs: tuple[Path, list[dict]], tasks: int,
) -> None:
    per_step, tally = await flights_per_step(db, proxy, inputs[1], STEPS, tasks)
    detail = f"; per call: {tally.summary()}" if tally else ""
    assert per_step <= MAX_STEP_ROUND_TRIPS, (
        f"{per_step:.1f} round trips per step with {tasks} task(s){detail}")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=TODAY)
async def test_sample_takes_at_most_one_round_trip(
    db: AsyncProgramDatabase, proxy: LatencyProxy,
) -> None:
    for _ in range(3):
        await db.sample()  # warm: connections and caches
    proxy.reset()
    for _ in range(STEPS):
        await db.sample()
    per_call = proxy.stats().flights / STEPS
    assert per_call <= MAX_SAMPLE_ROUND_TRIPS, f"{per_call:.1f} round trips per sample()"
