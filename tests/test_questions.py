"""Asking a run questions, on both backends: code search, filters, lineage, rows, frames."""

from __future__ import annotations

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.errors import InvalidArgumentError
from genesis.database.query_language import QueryError

CALLS = "import scipy\n\ndef run(f, x0):\n    return scipy.optimize.minimize(f, x0)\n"
MENTIONS = ("# minimize: not with scipy; we optimize by hand, a long comment that goes on "
            "and on about minimize and optimize\ndef run():\n    return 1\n")
SNAKE = "def snake_case_names(values):\n    return sorted(values)\n"


def _program(pid: str, code: str, **fields: object) -> Program:
    defaults: dict[str, object] = {"correct": True, "combined_score": 0.5, "island_idx": 0}
    return Program(id=pid, code=code, **(defaults | fields))  # type: ignore[arg-type]


@pytest.fixture
async def db(store_url: DatabaseURL, config: DatabaseConfig):
    """An open engine on an empty run of the backend under test."""
    engine = AsyncProgramDatabase(DatabaseConfig(database_url=str(store_url), num_islands=1,
                                                 sqlite_readers=2, pool_max_size=4))
    async with engine:
        yield engine


async def _seed_search(db: AsyncProgramDatabase) -> None:
    await db.store.add_many([
        _program("calls", CALLS, public_metrics={"sum_radii": 2.5},
                 metadata={"patch_type": "diff"}),
        _program("mentions", MENTIONS, correct=False, island_idx=1),
        _program("snake", SNAKE, public_metrics={"sum_radii": 2.1}),
        _program("other", "def other():\n    return 'nothing here'\n"),
    ])


async def test_search_finds_identifiers_phrases_and_ranks_exact_use_first(
        db: AsyncProgramDatabase) -> None:
    await _seed_search(db)
    hits = await db.search_code("scipy.optimize.minimize")
    assert [h.id for h in hits] == ["calls", "mentions"]
    assert hits[0].rank == 1 and "[scipy].[optimize].[minimize]" in hits[0].snippet
    assert [h.id for h in await db.search_code("snake_case_names")] == ["snake"]
    assert [h.id for h in await db.search_code("sorted values")] == ["snake"]
    assert [h.id for h in await db.search_code("SNAKE")] == ["snake"]  # case-folded
    assert await db.search_code("nonexistent_identifier") == []


async def test_search_respects_filters_and_limit(db: AsyncProgramDatabase) -> None:
    await _seed_search(db)
    assert [h.id for h in await db.search_code("minimize", correct=True)] == ["calls"]
    assert [h.id for h in await db.search_code("minimize", island=1)] == ["mentions"]
    assert [h.id for h in await db.search_code("minimize", correct=False, island=0)] == []
    assert len(await db.search_code("return", limit=2)) == 2
    with pytest.raises(InvalidArgumentError, match="query"):
        await db.search_code("...")
    with pytest.raises(InvalidArgumentError, match="limit"):
        await db.search_code("x", limit=0)


async def test_search_sees_programs_added_later(db: AsyncProgramDatabase) -> None:
    await _seed_search(db)
    await db.add(_program("late", "from scipy import optimize\noptimize.minimize(g, 0)\n"))
    assert {h.id for h in await db.search_code("optimize minimize")} == {
        "calls", "mentions", "late"}


async def _seed_metrics(db: AsyncProgramDatabase, count: int = 40) -> list[Program]:
    programs = [_program(f"p{i:02d}", f"x = {i}\n", correct=i % 2 == 0,
                         combined_score=i / 10, generation=i % 5, island_idx=i % 2,
                         public_metrics={"sum_radii": 2 + i / 20, "n": i},
                         metadata={"patch_type": "diff" if i % 3 == 0 else "full",
                                   "deep": {"ok": i % 4 == 0}})
                for i in range(count)]
    await db.store.add_many(programs)
    return programs


async def test_query_filters_json_paths_and_columns(db: AsyncProgramDatabase) -> None:
    programs = await _seed_metrics(db)
    rows = await db.query('correct and public_metrics.sum_radii > 2.4 and '
                          'metadata.patch_type == "diff"', order_by="public_metrics.n desc",
                          columns=["id", "public_metrics.sum_radii", "correct"], limit=5)
    expected = [p for p in programs if p.correct and p.public_metrics["sum_radii"] > 2.4
                and p.metadata["patch_type"] == "diff"]
    expected.sort(key=lambda p: -p.public_metrics["n"])
    assert rows == [{"id": p.id, "public_metrics.sum_radii": p.public_metrics["sum_radii"],
                     "correct": True} for p in expected[:5]]
    deep = await db.query("metadata.deep.ok and not island_idx == 1", columns="id",
                          limit=100)
    assert [r["id"] for r in deep] == [p.id for p in programs if p.metadata["deep"]["ok"]
                                       and p.island_idx != 1]
    assert await db.query("metadata.missing == 1") == []
    assert len(await db.query("not metadata.missing == 1", limit=1000)) == len(programs)
    assert len(await db.query("metadata.missing == null", limit=1000)) == len(programs)
    assert len(await db.query("parent_id == null", limit=1000)) == len(programs)
    strings = await db.query('metadata.patch_type != "diff" and generation >= 4',
                             columns=["id"], limit=100)
    assert [r["id"] for r in strings] == [p.id for p in programs
                                          if p.metadata["patch_type"] != "diff"
                                          and p.generation >= 4]


async def test_query_types_compare_strictly(db: AsyncProgramDatabase) -> None:
    await db.store.add_many([
        _program("num", "a", public_metrics={"v": 3}),
        _program("text", "b", public_metrics={"v": "3"}),
        _program("flag", "c", public_metrics={"v": True}),
        _program("list", "d", public_metrics={"v": [3]}),
    ])
    ids = [r["id"] for r in await db.query("public_metrics.v == 3", columns="id")]
    assert ids == ["num"]
    assert [r["id"] for r in await db.query("public_metrics.v > 2", columns="id")] == ["num"]
    assert [r["id"] for r in await db.query("public_metrics.v == '3'", columns="id")] == [
        "text"]
    assert [r["id"] for r in await db.query("public_metrics.v", columns="id")] == ["flag"]
    assert [r["id"] for r in await db.query("public_metrics.v != 3", columns="id")] == []
    values = [r["public_metrics.v"] for r in await db.query(columns="public_metrics.v",
                                                            order_by="id")]
    assert values == [True, [3], 3, "3"]  # each JSON type comes back as itself


async def test_selected_strings_keep_quotes_escapes_and_unicode(db: AsyncProgramDatabase
                                                                ) -> None:
    note = 'say "hi" \\ then \u00e9 é ✓'
    await db.store.add_many([_program("s", "x", metadata={"note": note, "n": -1.5e-3})])
    assert await db.query(columns=["metadata.note", "metadata.n"]) == [
        {"metadata.note": note, "metadata.n": -1.5e-3}]


@pytest.mark.parametrize("where", [
    "metadata.patch_type == \"x'); DROP TABLE programs; --\"",
    "metadata.patch_type == 'x\" OR 1=1 --'",
    "metadata.patch_type == \"$.a ? (@ > 0) || true\"",
    "metadata.patch_type == \"%s %(x)s ? ?\"",
    "metadata.patch_type == \"\\u0000\"",
])
async def test_injection_attempts_match_nothing_and_change_nothing(
        db: AsyncProgramDatabase, where: str) -> None:
    await _seed_metrics(db, 6)
    assert await db.query(where) == []
    assert await db.count() == 6


async def test_query_errors_name_the_setting_and_position(db: AsyncProgramDatabase) -> None:
    with pytest.raises(QueryError, match=r"where: unknown field 'scor' .*position 0"):
        await db.query("scor > 1")
    with pytest.raises(QueryError, match="order_by"):
        await db.query(order_by="sideways up down")
    with pytest.raises(QueryError, match="columns"):
        await db.query(columns=["nope"])


async def _chain(db: AsyncProgramDatabase, length: int) -> list[str]:
    ids = [f"g{i:04d}" for i in range(length)]
    await db.store.add_many([_program(pid, "x", parent_id=ids[i - 1] if i else None,
                                      generation=i) for i, pid in enumerate(ids)])
    return ids


async def test_lineage_of_a_deep_chain(db: AsyncProgramDatabase) -> None:
    ids = await _chain(db, 1200)
    up = await db.lineage(ids[-1])
    assert [s.id for s in up] == ids[-2::-1]
    assert [s.depth for s in up] == list(range(1, 1200))
    assert [s.id for s in await db.lineage(ids[-1], max_depth=3)] == ids[-2:-5:-1]
    down = await db.lineage(ids[0], "down")
    assert [s.id for s in down] == ids[1:]
    assert [p.id for p in await db.get_ancestry(ids[-1], 4)] == ids[-5:-1]
    assert (await db.common_ancestor(ids[10], ids[700])).id == ids[10]


async def test_lineage_of_a_branching_tree(db: AsyncProgramDatabase) -> None:
    # root -> a, b; a -> a1, a2; a2 -> a21; b -> b1
    tree = {"root": None, "a": "root", "b": "root", "a1": "a", "a2": "a", "a21": "a2",
            "b1": "b"}
    await db.store.add_many([_program(pid, "x", parent_id=parent)
                             for pid, parent in tree.items()])
    down = await db.lineage("a", "down")
    assert [(s.depth, s.id) for s in down] == [(1, "a1"), (1, "a2"), (2, "a21")]
    assert [(s.depth, s.id) for s in await db.lineage("root", "down", 1)] == [
        (1, "a"), (1, "b")]
    assert [s.id for s in await db.lineage("a21")] == ["a2", "a", "root"]
    assert (await db.common_ancestor("a21", "a1")).id == "a"
    assert (await db.common_ancestor("a21", "b1")).id == "root"
    assert (await db.common_ancestor("a2", "a2")).id == "a2"
    assert await db.common_ancestor("a21", "missing") is None
    assert await db.lineage("missing") == []
    with pytest.raises(InvalidArgumentError, match="direction"):
        await db.lineage("a", "sideways")


async def test_dataframe_flattens_metrics_and_streams_batches(
        db: AsyncProgramDatabase) -> None:
    programs = await _seed_metrics(db, 25)
    frame = await db.to_dataframe(batch_size=7)
    assert list(frame["id"]) == [p.id for p in programs]
    assert list(frame["public_metrics.sum_radii"]) == [p.public_metrics["sum_radii"]
                                                       for p in programs]
    assert list(frame["metadata.patch_type"]) == [p.metadata["patch_type"] for p in programs]
    assert list(frame["code"]) == [p.code for p in programs]
    assert "embedding" not in frame.columns
    some = await db.to_dataframe("correct", columns=["id", "combined_score"])
    assert list(some.columns) == ["id", "combined_score"]
    assert list(some["id"]) == [p.id for p in programs if p.correct]


async def test_dataframe_with_embeddings(db: AsyncProgramDatabase) -> None:
    await db.store.add_many([_program("e", "x", embedding=[0.5, -1.0, 2.0])])
    frame = await db.to_dataframe(embeddings=True)
    assert list(frame["embedding"][0]) == [0.5, -1.0, 2.0]


def test_the_sync_facade_asks_the_same_questions(store_url: DatabaseURL) -> None:
    from genesis.database import ProgramDatabase

    db = ProgramDatabase(DatabaseConfig(database_url=str(store_url), num_islands=1))
    try:
        db.add(_program("root", "def solve():\n    return 0\n", public_metrics={"v": 1}))
        db.add(_program("kid", CALLS, parent_id="root", public_metrics={"v": 2}))
        assert [h.id for h in db.search_code("scipy.optimize.minimize")] == ["kid"]
        assert db.query("public_metrics.v > 1", columns="id") == [{"id": "kid"}]
        assert [s.id for s in db.lineage("kid")] == ["root"]
        assert db.common_ancestor("kid", "root").id == "root"
        assert [p.id for p in db.get_ancestry("kid")] == ["root"]
        assert list(db.to_dataframe(columns="id")["id"]) == ["root", "kid"]
    finally:
        db.close()


async def test_an_empty_dataframe_still_has_its_columns(db: AsyncProgramDatabase) -> None:
    await _seed_metrics(db, 4)
    frame = await db.to_dataframe("generation > 100", columns=["id", "public_metrics.n"])
    assert len(frame) == 0 and list(frame.columns) == ["id", "public_metrics.n"]
    everything = await db.to_dataframe("generation > 100")
    assert "public_metrics.sum_radii" in everything.columns
