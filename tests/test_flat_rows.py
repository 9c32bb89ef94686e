"""Flattened rows, on both backends: each field equals the stored program's, JSON read in Python."""

from __future__ import annotations

import json
import random
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.backends.flat_rows import documents, value_at

SCALARS: list[Any] = [0, -7, 10**30, 2.5, 1e308, 5e-324, 0.1, "", "a,b", 'q"uote', "é\u2028",
                      True, False, None]
KEYS = ["k", "j", 'a"b', "a.b", "0", "sum_radii"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text()
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return {key: _value(rng, depth + 1) for key in rng.sample(KEYS, 2)}
    if depth < 2 and roll < 0.25:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return rng.choice(SCALARS)


def _programs(count: int) -> list[Program]:
    rng = random.Random(5)
    return [Program(id=f"p{i:02d}", code=f"x = {i}\n", generation=i, timestamp=1000.0 + i,
                    combined_score=rng.choice([None, 0.5]), correct=rng.random() < 0.5,
                    public_metrics={k: _value(rng) for k in KEYS if rng.random() < 0.6},
                    private_metrics={k: _value(rng) for k in KEYS[:2] if rng.random() < 0.3},
                    metadata={k: _value(rng) for k in KEYS if rng.random() < 0.5})
            for i in range(count)]


@pytest.fixture
async def db(store_url: DatabaseURL):
    """An open engine on an empty run of the backend under test."""
    async with AsyncProgramDatabase(DatabaseConfig(database_url=str(store_url), num_islands=1,
                                                   sqlite_readers=2, pool_max_size=4)) as engine:
        yield engine


async def test_each_flattened_field_is_the_stored_programs(db: AsyncProgramDatabase) -> None:
    programs = _programs(40)
    await db.store.add_many(programs)
    rows = [row for batch in [b async for b in db.iter_rows(batch_size=7)] for row in batch]
    assert [row["id"] for row in rows] == [p.id for p in programs]
    for program, row in zip(programs, rows, strict=True):
        assert (row["code"], row["generation"], row["combined_score"], row["correct"]) == (
            program.code, program.generation, program.combined_score, program.correct)
        for column in ("public_metrics", "private_metrics", "metadata"):
            stored = getattr(program, column)
            flattened = {name.split(".", 1)[1]: value for name, value in row.items()
                         if name.startswith(column + ".")}
            assert set(stored) <= set(flattened)
            assert flattened == {key: stored.get(key) for key in flattened}
    asked = await db.query(columns="id,metadata.k.j,public_metrics.k,metadata", limit=100)
    assert asked == [{"id": p.id, "metadata.k.j": value_at(p.metadata, ["k", "j"]),
                      "public_metrics.k": p.public_metrics.get("k"),
                      "metadata": p.metadata} for p in programs]


async def test_leaving_early_lets_the_run_be_read_again(db: AsyncProgramDatabase) -> None:
    await db.store.add_many(_programs(12))
    async with db.value_batches(batch_size=3) as (names, batches):
        first = await anext(batches)
    assert len(first) == 3 and names[0] == "id"
    assert len(await db.query(limit=100)) == 12


@given(st.lists(JSON, max_size=6), st.sets(st.integers(0, 5)))
def test_documents_decode_each_text_and_none_for_unreadable_ones(
        values: list[Any], broken: set[int]) -> None:
    texts = [json.dumps(v) for v in values]
    texts = ["{bad" if i in broken else text for i, text in enumerate(texts)]
    expected = [None if i in broken else v for i, v in enumerate(values)]
    assert documents(texts) == expected


def test_a_path_reads_dicts_and_on_postgresql_indexes_lists(store_url: DatabaseURL) -> None:
    doc = {"a": {"b": [10, 20, 30]}, "s": "t"}
    assert value_at(doc, ["a", "b"]) == [10, 20, 30]
    assert value_at(doc, ["a", "b", "1"]) is None
    assert value_at(doc, ["s", "x"]) is None
    if not store_url.is_postgres:
        return
    keys = ["0", "-1", "01", "+1", " 1", "1 ", "3", "-4", "1x", "99999999999", ""]
    with psycopg.connect(store_url.conninfo()) as conn:
        for key in keys:
            (found,) = conn.execute("SELECT %s::jsonb #> %s::text[]",
                                    [json.dumps(doc), ["a", "b", key]]).fetchone()
            assert value_at(doc, ["a", "b", key], lists=True) == found, key
