"""The replication fixture of the tests: ``benchmarks/replication.py``'s primary and standby.

``GENESIS_REQUIRE_REPLICATION=1`` (set by CI) turns missing server binaries into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.replication import Replication, server_binaries
from tests.required import cannot_run

__all__ = ["Replication", "replication_or_skip", "running_pair",
           "standby_pair"]



def replication_or_skip() -> Path:
    """Return the server binaries' folder, or skip (fail under GENESIS_REQUIRE_REPLICATION)."""
    folder = server_binaries()
    if folder is None or not (folder / "pg_basebackup").exists():
        reason = "the PostgreSQL server binaries (initdb, pg_basebackup, pg_ctl) are missing"
        cannot_run(reason, "GENESIS_REQUIRE_REPLICATION")
    return folder


def running_pair(synchronous: bool) -> Iterator[Replication]:
    """Yield a started primary and standby; remove them afterwards (a fixture's body)."""
    pair = Replication(replication_or_skip(), synchronous=synchronous).start()
    try:
        yield pair
    finally:
        pair.close()


@pytest.fixture(scope="module")
def standby_pair() -> Iterator[Replication]:
    """A module's primary and asynchronous standby, removed after the module."""
    yield from running_pair(synchronous=False)
