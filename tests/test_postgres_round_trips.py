"""Round trips of a steady-state evolution step on PostgreSQL, counted by a proxy (issue 13).

The proxy (``benchmarks/latency_proxy.py``, a child process) counts the flights the engine
waits for; counts do not depend on the machine's speed, so they can be asserted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.latency_proxy import LatencyProxy
from benchmarks.steps import read_seed
from genesis.database import AsyncProgramDatabase, DatabaseURL
from tests.conftest import drop_pg_run, new_pg_run_url, require_postgres
from tests.round_trips import (
    STEP_CALLS,
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

@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The seed run and proposals of ``benchmarks/steps.py`` (60 programs, 40 proposals)."""
    seed, proposals = write_inputs(tmp_path_factory.mktemp("round-trips"))
    return seed, read_seed(proposals)


@pytest.fixture
def proxy() -> Iterator[LatencyProxy]:
    """A counting proxy in front of the test server, 2 ms away.

    With no added latency a fast answer can reach the client while it is still writing the
    rest of a pipeline, and the proxy would count the remainder as a second flight; 2 ms is
    far longer than writing a pipeline takes, so each flight counts once.
    """
    url = require_postgres()  # skips (fails under GENESIS_REQUIRE_POSTGRES) without a server
    with LatencyProxy((url.host or "127.0.0.1", url.port or 5432), rtt_ms=2) as running:
        yield running


@pytest.fixture
def options() -> dict[str, Any]:
    """Engine options over the benchmark step's configuration."""
    return {}


@pytest.fixture
async def db(proxy: LatencyProxy, inputs: tuple[Path, list[dict]], options: dict[str, Any]
             ) -> AsyncIterator[AsyncProgramDatabase]:
    """An engine reaching a freshly seeded run through the proxy."""
    url: DatabaseURL = new_pg_run_url()
    try:
        await seed_run(url, inputs[0])
        async with AsyncProgramDatabase(engine_config(through(url, proxy), **options)) as opened:
            yield opened
    finally:
        drop_pg_run(url)


@pytest.mark.parametrize("tasks", [8, 16])
async def test_steady_state_step_takes_at_most_four_round_trips(
    db: AsyncProgramDatabase, proxy: LatencyProxy, inputs: tuple[Path, list[dict]], tasks: int,
) -> None:
    """Concurrent steps, migrations included, amortised under group commit.

    (With fewer tasks, fewer adds and maintenance passes share a flight: one task makes
    exactly four, see the next test, and a migration in the window tips 2-4 tasks over.)
    """
    per_step, _ = await flights_per_step(db, proxy, inputs[1], STEPS, tasks)
    assert per_step <= MAX_STEP_ROUND_TRIPS, (
        f"{per_step:.1f} round trips per step with {tasks} tasks")


@pytest.mark.parametrize("options", [{"migration_interval": 0}])
async def test_each_call_of_a_step_takes_one_round_trip(
    db: AsyncProgramDatabase, proxy: LatencyProxy, inputs: tuple[Path, list[dict]],
) -> None:
    """One worker alone: nothing to amortise, so every call must be a single flight.

    (A migration, once per ``migration_interval`` generations, costs a second flight for
    its candidates and one per island for the migrants' embeddings; it is off here.)
    """
    per_step, tally = await flights_per_step(db, proxy, inputs[1], STEPS, 1)
    assert tally is not None
    assert {name: max(counts) for name, counts in tally.calls.items()} == {
        name: 1 for name in STEP_CALLS}, tally.summary()
    assert per_step <= MAX_STEP_ROUND_TRIPS


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
