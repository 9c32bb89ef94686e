"""The raw-SQL adapter: placeholder translation and behaviour on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from genesis.database import DatabaseError, DatabaseURL, create_store
from genesis.database.adapter import get_database_adapter, translate_placeholders
from tests.conftest import SHINKA_FILES, require_postgres
from tests.factories import make_program


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT '?' , ? FROM t", "SELECT '?' , %s FROM t"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ('SELECT "odd?col" FROM t WHERE x = ?', 'SELECT "odd?col" FROM t WHERE x = %s'),
        ("SELECT ? -- what?\n, ?", "SELECT %s -- what?\n, %s"),
        ("SELECT /* a ? /* nested ? */ b */ ?", "SELECT /* a ? /* nested ? */ b */ %s"),
        ("SELECT $$ ? $$, $tag$ it's ? $tag$, ?", "SELECT $$ ? $$, $tag$ it's ? $tag$, %s"),
        ("SELECT E'\\' ?', ?", "SELECT E'\\' ?', %s"),
        ("SELECT 100 % 7 WHERE x LIKE 'a%' AND y = ?",
         "SELECT 100 %% 7 WHERE x LIKE 'a%%' AND y = %s"),
        ("SELECT $1::int", "SELECT $1::int"),
    ],
)
def test_placeholder_translation(sql: str, expected: str) -> None:
    assert translate_placeholders(sql) == expected


def _populate(url: DatabaseURL) -> list:
    programs = [make_program(score=s) for s in (0.1, 0.5, 0.9)]

    async def write() -> None:
        async with create_store(url) as store:
            await store.add_many(programs)

    asyncio.run(write())
    return programs


def _adapter(url: DatabaseURL, **options: object):
    if url.is_sqlite:
        return get_database_adapter(db_path=url.path, **options)
    return get_database_adapter(url.conninfo() + ("&" if "?" in url.conninfo() else "?")
                                + f"run={url.run}", **options)


def test_queries_with_bound_parameters(store_url: DatabaseURL) -> None:
    programs = _populate(store_url)
    with _adapter(store_url) as db:
        db.execute("SELECT id, combined_score FROM programs WHERE combined_score > ? "
                   "ORDER BY combined_score DESC", (0.3,))
        assert db.columns == ["id", "combined_score"]
        assert db.fetchall() == [(programs[2].id, 0.9), (programs[1].id, 0.5)]
        db.execute("SELECT COUNT(*) FROM programs WHERE id = ?", ("x' OR '1'='1",))
        assert db.fetchone() == (0,)
        db.execute("SELECT COUNT(*) FROM programs WHERE language LIKE 'py%' AND 7 % 2 = ?",
                   (1,))  # a % in a literal and as an operator, with parameters
        assert db.fetchone() == (3,)
        db.execute("SELECT '?' || ?", ("!",))
        assert db.fetchone() == ("?!",)
        db.execute("SELECT 7 % 4")
        assert db.fetchone() == (3,)


def test_writes_commit_on_exit_and_roll_back_on_error(store_url: DatabaseURL) -> None:
    _populate(store_url)
    with _adapter(store_url) as db:
        db.execute("INSERT INTO metadata_store (key, value) VALUES (?, ?)", ("note", "kept"))
        assert db.rowcount == 1
    with pytest.raises(RuntimeError), _adapter(store_url) as db:
        db.execute("INSERT INTO metadata_store (key, value) VALUES (?, ?)", ("gone", "x"))
        raise RuntimeError("abort")
    with _adapter(store_url, dict_rows=True) as db:
        db.execute("SELECT key, value FROM metadata_store WHERE key IN (?, ?) ORDER BY key",
                   ("gone", "note"))
        assert db.fetchall() == [{"key": "note", "value": "kept"}]


def test_errors_are_translated(store_url: DatabaseURL) -> None:
    _populate(store_url)
    with _adapter(store_url) as db, pytest.raises(DatabaseError):
        db.execute("SELECT no_such_column FROM programs")
    with pytest.raises(TypeError, match="sequence"), _adapter(store_url) as db:
        db.execute("SELECT ?", "abc")


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a database nothing ever opened: a new file, or a new PostgreSQL one."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    import psycopg

    server = require_postgres()
    name = f"genesis_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield replace(server, database=name).conninfo()
    finally:
        with psycopg.connect(server.conninfo(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_example_runs_on_a_fresh_database(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        with get_database_adapter(database_url=url) as db:  # creates the empty run
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
            db.executemany("INSERT INTO notes (id, body) VALUES (?, ?)",
                           [(1, "first"), (2, "second")])
            db.execute("SELECT body FROM notes WHERE id > ? ORDER BY id", (0,))
            assert db.fetchall() == [("first",), ("second",)]
            db.execute("SELECT COUNT(*) FROM programs")
            assert db.fetchone() == (0,)
        with get_database_adapter(database_url=url) as db:  # the same run, as it was left
            db.execute("SELECT COUNT(*) FROM notes")
            assert db.fetchone() == (2,)


def test_an_existing_file_is_used_as_it_is(shinka_copy) -> None:
    legacy = shinka_copy(SHINKA_FILES[0])
    before = legacy.read_bytes()
    with get_database_adapter(db_path=str(legacy)) as db:
        db.execute("SELECT COUNT(*) FROM programs")
        assert db.fetchone()[0] > 0
    assert legacy.read_bytes() == before  # not upgraded


def test_the_password_is_hidden() -> None:
    adapter = get_database_adapter("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in repr(adapter)
