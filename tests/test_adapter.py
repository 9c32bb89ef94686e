"""The raw-SQL adapter: placeholder translation and behaviour on both backends."""

from __future__ import annotations

import asyncio

import pytest

from genesis.database import ConfigurationError, DatabaseError, DatabaseURL, create_store
from genesis.database.adapter import get_database_adapter, translate_placeholders
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


def test_missing_file_and_hidden_password(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        get_database_adapter(db_path=str(tmp_path / "nope.db")).connect()
    adapter = get_database_adapter("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in repr(adapter)
