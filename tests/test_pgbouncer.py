"""The behavioural store and engine suites, through PgBouncer in transaction pooling.

Every test of ``tests/test_store.py`` and ``tests/test_engine.py``, and the multi-process
test, is collected here a second time with ``store_url`` leading through the session's
PgBouncer (``tests/pgbouncer.py``), which resets every server connection after each
transaction and hands transactions to its server connections in turn. The whole suite runs
that way with ``--through-pgbouncer``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genesis.database import DatabaseURL
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.pgbouncer import PgBouncer
from tests.suites import behavioural_suites
from tests.test_engine_processes import test_processes_keep_every_invariant as processes_test

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]
globals().update(behavioural_suites())  # collected again in this module


@pytest.fixture
def backend() -> str:
    """Only PostgreSQL goes through PgBouncer."""
    return "postgres"


@pytest.fixture
def store_url(pgbouncer: PgBouncer) -> Iterator[DatabaseURL]:
    """A fresh run reached through PgBouncer; dropped on the server itself afterwards."""
    url = pgbouncer.route(new_pg_run_url())
    try:
        yield url
    finally:
        drop_pg_run(url)


@pytest.mark.slow
def test_processes_keep_every_invariant_through_pgbouncer(store_url: DatabaseURL) -> None:
    processes_test(store_url)
