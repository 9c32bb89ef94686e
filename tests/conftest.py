"""Shared fixtures: the behavioural suite runs once per backend.

PostgreSQL tests use ``GENESIS_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own run, dropped after.
Where no server answers they are skipped with the reason, unless
``GENESIS_REQUIRE_POSTGRES=1`` (set by CI), which turns a missing server into a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.protocol import ProgramStore

TEST_PG_URL = os.environ.get(
    "GENESIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("GENESIS_REQUIRE_POSTGRES", "") not in ("", "0")
SHINKA_DATA = Path(__file__).parent / "data" / "shinka"
SHINKA_FILES = sorted(SHINKA_DATA.glob("*.sqlite"))
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@cache
def postgres_unavailable() -> str | None:
    """Return why the test server cannot be used, or None when it answers."""
    try:
        import psycopg

        url = DatabaseURL.parse(TEST_PG_URL, "GENESIS_TEST_DATABASE_URL")
        with psycopg.connect(url.conninfo(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: no usable server
        return f"PostgreSQL not reachable at {TEST_PG_URL}: {type(exc).__name__}: {exc}"
    return None


def postgres_test_cannot_run(reason: str) -> NoReturn:
    """Skip a PostgreSQL test for ``reason``; fail instead under GENESIS_REQUIRE_POSTGRES=1."""
    if REQUIRE_POSTGRES:
        pytest.fail(f"GENESIS_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> DatabaseURL:
    """Return the test server URL, or skip (fail under GENESIS_REQUIRE_POSTGRES=1)."""
    reason = postgres_unavailable()
    if reason is not None:
        postgres_test_cannot_run(reason)
    return DatabaseURL.parse(TEST_PG_URL, "GENESIS_TEST_DATABASE_URL")


def new_pg_run_url() -> DatabaseURL:
    """Return the test server URL with a fresh, unique run name."""
    return require_postgres().with_run(f"t_{uuid.uuid4().hex[:16]}")


def drop_pg_run(url: DatabaseURL) -> None:
    """Drop a test run and everything in it."""
    from genesis.database.backends.postgres import drop_run_sync

    drop_run_sync(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: 'sqlite' or 'postgres'."""
    return request.param


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[DatabaseURL]:
    """A URL naming an empty run on the backend under test."""
    if backend == "sqlite":
        yield DatabaseURL.sqlite(tmp_path / "run.db")
        return
    url = new_pg_run_url()
    try:
        yield url
    finally:
        drop_pg_run(url)


@pytest.fixture
def config() -> DatabaseConfig:
    """A config with small pools, suitable for tests."""
    return DatabaseConfig(pool_max_size=4, sqlite_readers=2, seed=1234)


@pytest.fixture
async def store(store_url: DatabaseURL, config: DatabaseConfig) -> AsyncIterator[ProgramStore]:
    """An open store on an empty run, closed after the test."""
    async with create_store(store_url, config) as opened:
        yield opened


@pytest.fixture
def shinka_copy(tmp_path: Path):
    """Return a function copying a shared ShinkaEvolve file into the test's folder."""

    def copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        return target

    return copy
