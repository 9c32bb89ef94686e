"""The behavioural store and engine suites with reads routed to a hot standby.

Every test of ``tests/test_store.py`` and ``tests/test_engine.py`` is collected here a
second time with ``store_url`` naming a run on this module's primary (``tests/replication.py``)
whose reads go to its asynchronous standby (``read_hosts``). No test needs leaving out: a
store reads what it wrote and what was committed before it opened (the standby answers once
it has replayed that, else the primary does), and the suites' tests that use two stores
write with the first before opening the second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from genesis.database import DatabaseURL
from genesis.database.backends.postgres import drop_run_sync
from tests.replication import Replication, standby_pair  # noqa: F401  (a fixture)
from tests.suites import behavioural_suites

pytestmark = [pytest.mark.postgres, pytest.mark.replication]
globals().update(behavioural_suites())  # collected again in this module


@pytest.fixture
def backend() -> str:
    """Only PostgreSQL has standbys."""
    return "postgres"


@pytest.fixture
def store_url(standby_pair: Replication) -> Iterator[DatabaseURL]:  # noqa: F811
    """A fresh run on the module's primary, read through its standby; dropped afterwards."""
    url = standby_pair.url(f"t_{uuid.uuid4().hex[:16]}", read=True)
    try:
        yield url
    finally:
        drop_run_sync(url)
