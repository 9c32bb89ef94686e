"""Shared fixtures: the behavioural suite runs once per backend.

PostgreSQL tests use ``GENESIS_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own run, dropped after.
Where no server answers they are skipped with the reason, unless
``GENESIS_REQUIRE_POSTGRES=1`` (set by CI), which turns a missing server into a failure.

``--through-pgbouncer`` (or ``GENESIS_TEST_THROUGH_PGBOUNCER=1``) sends every PostgreSQL test
through a PgBouncer in transaction pooling mode that the session starts (``tests/pgbouncer.py``);
the tests marked ``pgbouncer`` always go through it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.protocol import ProgramStore
from tests.pgbouncer import (
    PgBouncer,
    pgbouncer_unavailable,
    shared_pgbouncer,
    stop_shared,
    through_pgbouncer,
)
from tests.required import cannot_run

TEST_PG_URL = os.environ.get(
    "GENESIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SHINKA_DATA = Path(__file__).parent / "data" / "shinka"
SHINKA_FILES = sorted(SHINKA_DATA.glob("*.sqlite"))
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add --through-pgbouncer."""
    parser.addoption("--through-pgbouncer", action="store_true",
                     help="run the PostgreSQL tests through PgBouncer (transaction pooling)")


def pytest_configure(config: pytest.Config) -> None:
    """Pass --through-pgbouncer on as the environment variable (worker processes see it)."""
    if config.getoption("--through-pgbouncer"):
        os.environ["GENESIS_TEST_THROUGH_PGBOUNCER"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --through-pgbouncer, skip the tests that need the engine's own server backends."""
    if not through_pgbouncer():
        return
    skip = pytest.mark.skip(reason="needs direct connections (marker 'direct'): it kills or "
                                   "listens on the engine's server backends")
    for item in items:
        if item.get_closest_marker("direct"):
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's PgBouncer."""
    stop_shared()


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
    cannot_run(reason, "GENESIS_REQUIRE_POSTGRES")


def server_url() -> DatabaseURL:
    """Return the test server's own URL (never through PgBouncer)."""
    return DatabaseURL.parse(TEST_PG_URL, "GENESIS_TEST_DATABASE_URL")


def require_postgres() -> DatabaseURL:
    """Return the test server URL, or skip (fail under GENESIS_REQUIRE_POSTGRES=1).

    With ``--through-pgbouncer`` the URL leads through the session's PgBouncer.
    """
    reason = postgres_unavailable()
    if reason is not None:
        postgres_test_cannot_run(reason)
    if through_pgbouncer():
        return require_pgbouncer().route(server_url())
    return server_url()


def require_pgbouncer() -> PgBouncer:
    """Return the session's PgBouncer, or skip (fail under GENESIS_REQUIRE_PGBOUNCER=1)."""
    reason = postgres_unavailable()
    if reason is not None:
        postgres_test_cannot_run(reason)
    reason = pgbouncer_unavailable()
    if reason is None:
        try:
            return shared_pgbouncer(server_url())
        except RuntimeError as exc:
            reason = str(exc)
    cannot_run(reason, "GENESIS_REQUIRE_PGBOUNCER")


def new_pg_run_url() -> DatabaseURL:
    """Return the test server URL with a fresh, unique run name."""
    return require_postgres().with_run(f"t_{uuid.uuid4().hex[:16]}")


def drop_pg_run(url: DatabaseURL) -> None:
    """Drop a test run and everything in it (on the server itself, not through PgBouncer)."""
    from genesis.database.backends.postgres import drop_run_sync

    server = server_url()
    drop_run_sync(replace(url, host=server.host, port=server.port))


@pytest.fixture(scope="session")
def pgbouncer() -> PgBouncer:
    """The session's PgBouncer (transaction pooling) in front of the test server."""
    return require_pgbouncer()


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
