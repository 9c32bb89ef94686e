"""``run_stats`` and ``list_runs`` on each backend, from the counters and indexed reads."""

from __future__ import annotations

from genesis.database import DatabaseURL, create_store
from genesis.database.backends import postgres_schema, sqlite_schema
from genesis.ops import list_runs, run_stats
from tests.factories import make_program


def current_version(url: DatabaseURL) -> int:
    """The schema version this code writes on the URL's backend."""
    return (sqlite_schema if url.is_sqlite else postgres_schema).SCHEMA_VERSION


async def test_stats_of_an_empty_run(store_url: DatabaseURL) -> None:
    async with create_store(store_url):
        pass
    stats = await run_stats(store_url)
    assert (stats["programs"], stats["correct"], stats["archive"]) == (0, 0, 0)
    assert (stats["best"], stats["generations"], stats["last_generation"]) == (None, 0, None)
    assert stats["islands"] == [] and stats["last_iteration"] is None
    assert stats["schema_version"] == current_version(store_url) and stats["size_bytes"] > 0


async def test_stats_count_every_program_once(store_url: DatabaseURL) -> None:
    root = make_program(island=1, score=0.5, generation=0, timestamp=1000.0)
    best = make_program(parent=root, score=0.9, in_archive=True, timestamp=1001.0)
    programs = [root, best,
                make_program(parent=root, score=0.95, correct=False, generation=3),
                make_program(island=None, score=0.1, generation=3, timestamp=999.0),
                make_program(island=0, score=None, correct=False, generation=7)]
    async with create_store(store_url) as store:
        await store.add_many(programs)
    stats = await run_stats(store_url)
    assert (stats["programs"], stats["correct"], stats["incorrect"]) == (5, 3, 2)
    assert stats["best"] == {"id": best.id, "score": 0.9, "generation": 1, "island": 1}
    assert (stats["archive"], stats["generations"], stats["last_generation"]) == (1, 4, 7)
    assert stats["last_iteration"] == 7
    assert stats["islands"] == [
        {"island": 0, "programs": 1, "correct": 0, "best_score": None},
        {"island": 1, "programs": 3, "correct": 2, "best_score": 0.9},
    ]
    [run] = [r for r in await list_runs(store_url)
             if r.name == (store_url.path if store_url.is_sqlite else store_url.run)]
    assert (run.programs, run.schema_version) == (5, current_version(store_url))
    assert run.last_activity == max(p.timestamp for p in programs)
