"""Errors tell the truth and bad input is refused up front, naming the field, on both backends.

- A program whose maintenance fails after its insert committed raises MaintenanceError (it
  IS stored, with its id), never an error saying nothing was stored; the next maintenance
  repairs what was skipped.
- A full disk during schema creation reports the full disk.
- A duplicate id is one DuplicateProgramError naming the id.
- Bad values (types, sizes, nesting, NUL, surrogates, huge counts) and unusable settings
  are refused before any query, with nothing stored.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

import genesis.database.engine as engine_module
from genesis.database import (
    AsyncProgramDatabase,
    ConfigurationError,
    DatabaseConfig,
    DatabaseURL,
    DuplicateProgramError,
    GenesisError,
    InvalidArgumentError,
    InvalidProgramError,
    MaintenanceError,
    OperationalError,
    Program,
)
from genesis.database.backends.postgres_schema import schema_name
from tests.conftest import drop_pg_run, new_pg_run_url, require_postgres

ROOT = Path(__file__).resolve().parents[1]


def _config(url: DatabaseURL, **options: Any) -> DatabaseConfig:
    target = {"database_url": str(url)} if url.is_postgres else {"db_path": url.path}
    return DatabaseConfig(**target, pool_max_size=4, seed=1, **options)


def _program(pid: str, parent: str | None = None, score: float = 0.5, **fields: Any) -> Program:
    return Program(id=pid, code=f"def f():\n    return {score}\n", parent_id=parent,
                   correct=True, combined_score=score, generation=1 if parent else 0, **fields)


# Maintenance after the commit -------------------------------------------------------------


async def test_failed_maintenance_says_the_program_is_stored(
        store_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [OperationalError("the server went away")]
    async with AsyncProgramDatabase(_config(store_url, num_islands=1)) as db:
        real = db.store.apply_offer  # the default policy's maintenance flight

        async def flaky(*args: Any, **kwargs: Any) -> Any:
            if failures:
                raise failures.pop()
            return await real(*args, **kwargs)

        monkeypatch.setattr(db.store, "apply_offer", flaky)
        with pytest.raises(MaintenanceError) as info:
            await db.add(_program("p1"))
        assert info.value.program_id == "p1" and "is stored" in str(info.value)
        assert not isinstance(info.value, OperationalError)  # not something to retry
        assert (await db.get("p1")) is not None and await db.count() == 1
        assert await db.get_best_program_id() is None  # skipped so far...
        await db.add(_program("p2", parent="p1", score=0.1))
        assert await db.get_best_program_id() == "p1"  # ...and repaired by the next one
        assert {p.id for p in await db.get_top_programs(5) if p.in_archive} == {"p1", "p2"}


@pytest.mark.postgres
@pytest.mark.direct
async def test_maintenance_lock_held_and_connection_killed(tmp_path: Path) -> None:
    """Maintenance is held up by another session; the waiting connection is killed repeatedly.

    The other session holds both what maintenance can wait for: the maintenance lock (the
    locked path) and the selection token's row (the compare-and-set path).
    """
    url = new_pg_run_url()
    admin_url = require_postgres().conninfo()
    schema = schema_name(url.run)
    try:
        config = _config(url, num_islands=1, write_retry_timeout=1.0)
        async with AsyncProgramDatabase(config) as db:
            await db.add(_program("root", score=0.1))
            holder = await psycopg.AsyncConnection.connect(admin_url, autocommit=True)
            await holder.execute("SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))",
                                 (schema, "maintenance"))  # the lock of locked maintenance
            await holder.execute("BEGIN")  # and the token that optimistic maintenance renews
            await holder.execute(f"SELECT value FROM {schema}.metadata_store WHERE key = "
                                 "'selection_token' FOR UPDATE")
            stop = asyncio.Event()

            async def killer() -> None:
                async with await psycopg.AsyncConnection.connect(admin_url,
                                                                 autocommit=True) as admin:
                    while not stop.is_set():
                        await admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "application_name = %s AND wait_event_type = 'Lock'",
                            (f"genesis/{url.run}",))
                        await asyncio.sleep(0.05)

            task = asyncio.create_task(killer())
            try:
                with pytest.raises(MaintenanceError) as info:
                    await db.add(_program("child", parent="root", score=0.9))
            finally:
                stop.set()
                await task
                await holder.close()  # releases the lock
            assert info.value.program_id == "child"
            assert await db.count() == 2 and (await db.get("child")) is not None
            await db.add(_program("later", parent="root", score=0.2))
            assert await db.get_best_program_id() == "child"  # the skipped work was redone
    finally:
        drop_pg_run(url)


# A full disk -------------------------------------------------------------------------------

FULL_DISK = """
import asyncio, resource, signal, sys
from genesis.database import DatabaseURL, create_store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (12 * 1024, 12 * 1024))
async def main():
    async with create_store(DatabaseURL.sqlite(sys.argv[1])) as store:
        await store.schema_version()
try:
    asyncio.run(main())
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_full_disk_during_schema_creation_is_reported_as_such(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "run.db")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "full" in done.stdout, done.stdout + done.stderr
    assert "cannot rollback" not in done.stdout + done.stderr


# Duplicate ids -----------------------------------------------------------------------------


async def test_a_duplicate_id_names_the_id(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.add(_program("a"))
        attempts = [
            lambda: db.add(_program("a")),
            lambda: db.add(_program("a", parent="a")),
            lambda: db.add_many([_program("b", parent="a"), _program("a", parent="a")]),
            lambda: db.store.add(_program("a", parent="a")),
        ]
        for attempt in attempts:
            with pytest.raises(DuplicateProgramError) as info:
                await attempt()
            assert str(info.value) == "a program with id 'a' is already stored"
        with pytest.raises(DuplicateProgramError, match="'c' appears twice in one batch"):
            await db.add_many([_program("c", parent="a"), _program("c", parent="a")])
        stored = {p.id for p in await db.get_all_programs()}
        assert "a" in stored and not {"b", "c"} & stored  # add_many is all or none
        assert len(stored) == 2  # "a" and its copy on the other island


# Bad input ---------------------------------------------------------------------------------

_DEEP: dict[str, Any] = {}
_cursor = _DEEP
for _ in range(5000):
    _cursor["x"] = {}
    _cursor = _cursor["x"]
_SELF: dict[str, Any] = {}
_SELF["me"] = _SELF

BAD_PROGRAMS = [
    ({"metadata": [1, 2]}, "metadata"),
    ({"combined_score": 10**400}, "combined_score"),
    ({"public_metrics": _DEEP}, "public_metrics['x']"),
    ({"private_metrics": _SELF}, "private_metrics['me']"),
    ({"embedding": 1.5}, "embedding"),
    ({"parent_id": 5}, "parent_id"),
    ({"parent_id": "a\x00b"}, "parent_id"),
    ({"public_metrics": {"a\x00b": 1}}, "public_metrics key 'a\\x00b'"),
    ({"text_feedback": "\ud800"}, "text_feedback"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_PROGRAMS,
                         ids=[name for _, name in BAD_PROGRAMS])
async def test_bad_programs_are_refused_naming_the_field(
        store_url: DatabaseURL, fields: dict[str, Any], field: str) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.add(_program("root"))
        program = Program(id="bad", code="x = 1\n", parent_id="root")
        for name, value in fields.items():
            setattr(program, name, value)
        with pytest.raises(InvalidProgramError) as info:
            await db.add(program)
        assert info.value.field.startswith(field), info.value
        assert await db.count() == 2  # the root and its island copy: nothing more


BAD_READS = [
    ("get", ("\ud800",), "program_id"),
    ("get", (5,), "program_id"),
    ("get", ("a\x00",), "program_id"),
    ("get_top_programs", (2**70,), "n"),
    ("get_programs_by_generation", ("1",), "generation"),
    ("get_ancestry", ("root", 2**40), "max_ancestors"),
    ("compute_similarity", ([0.1], "0"), "island_idx"),
]


@pytest.mark.parametrize(("method", "args", "name"), BAD_READS,
                         ids=[f"{m}-{n}" for m, _, n in BAD_READS])
async def test_bad_read_arguments_are_refused_naming_them(
        store_url: DatabaseURL, method: str, args: tuple[Any, ...], name: str) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.add(_program("root"))
        with pytest.raises(InvalidArgumentError, match=f"^{name}: "):
            await getattr(db, method)(*args)


async def test_children_count_is_derived_not_taken(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.add(_program("root", children_count=7))
        assert (await db.get("root")).children_count == 0
        await db.add(_program("c", parent="root", children_count=3))
        assert (await db.get("root")).children_count == 1
        assert (await db.get("c")).children_count == 0


async def test_code_analysis_runs_off_the_event_loop(store_url: DatabaseURL,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = engine_module.analyze_code_metrics

    def spy(code: str, language: str) -> dict[str, Any]:
        threads.append(threading.current_thread())
        return real(code, language)

    monkeypatch.setattr(engine_module, "analyze_code_metrics", spy)
    async with AsyncProgramDatabase(_config(store_url, max_code_bytes=1000)) as db:
        await db.add(_program("root"))
        with pytest.raises(InvalidProgramError, match="max_code_bytes"):
            await db.add(Program(id="big", code="x = 1\n" * 1000))
    assert threads and threading.main_thread() not in threads
    assert len(threads) == 1  # the oversized program was refused before any analysis


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"num_islands": 1_000_000}, "num_islands: must be <= 1,024"),
        ({"sqlite_readers": 1_000_000}, "sqlite_readers: must be <= 64"),
        ({"unknown_option": 1}, "has no option 'unknown_option'"),
        ({"archive_sise": 10}, "did you mean 'archive_size'"),
    ],
)
def test_unusable_settings_are_refused_with_a_reason(options: dict[str, Any],
                                                    fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment.replace("(", r"\(")):
        DatabaseConfig(**options)


def test_every_refusal_is_a_genesis_error() -> None:
    for error in (InvalidArgumentError, InvalidProgramError, MaintenanceError,
                  DuplicateProgramError, ConfigurationError):
        assert issubclass(error, GenesisError)
