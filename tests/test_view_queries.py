"""The view's queries are answered from indexes on both backends (EXPLAIN on a seeded run)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.protocol import ProgramStore
from genesis.view.queries import ViewQueries
from tests.factories import make_program

PROGRAMS = 6000
# Tables of bounded size (the archive, island counters, metadata) and the lineage's chain.
_SMALL = {"archive", "islands", "metadata_store", "c", "chain", "CONSTANT"}


class RecordingQueries(ViewQueries):
    """View queries that remember each statement they send, translated, with its parameters."""

    sent: list[tuple[str, Sequence[Any]]] = []

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.sent.append((self.session.dialect.sql(sql.replace("{seq}", self._seq)), params))
        return await super()._rows(sql, params)


@pytest.fixture
async def big_run(store_url: DatabaseURL) -> AsyncIterator[ProgramStore]:
    """A run of small programs in a lineage over four islands, analysed."""
    rng = random.Random(9)
    async with create_store(store_url, DatabaseConfig(pool_max_size=2)) as store:
        programs = []
        for index in range(PROGRAMS):
            parent = programs[rng.randrange(index)] if index > 4 else None
            programs.append(make_program(parent=parent, island=index % 4, rng=rng,
                                         correct=rng.random() < 0.7,
                                         timestamp=time.time() - PROGRAMS + index))
        for start in range(0, PROGRAMS, 3000):
            await store.add_many(programs[start:start + 3000])
        async with store.write() as writer:
            await writer.archive_add([p.id for p in programs[::400]])
            await writer.set_metadata("best_program_id", programs[-1].id)
        async with store.read() as session:
            if store.url.is_postgres:
                await session.conn.execute("ANALYZE")  # type: ignore[attr-defined]
        yield store


async def _explain(store: ProgramStore, sql: str, params: Sequence[Any]) -> list[str]:
    async with store.read() as session:
        if store.url.is_sqlite:
            return [str(r[3]) for r in await session.rows(f"EXPLAIN QUERY PLAN {sql}", params)]
        rows = await session.rows(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = rows[0][0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return _pg_nodes(plan[0]["Plan"])


def _pg_nodes(plan: dict[str, Any]) -> list[str]:
    found = [f"{plan['Node Type']} {plan.get('Index Name', plan.get('Relation Name', ''))}"]
    for child in plan.get("Plans", []):
        found += _pg_nodes(child)
    return found


async def test_view_queries_use_indexes(big_run: ProgramStore) -> None:
    async with big_run.read() as session:
        q = RecordingQueries(session)
        newest = (await q.programs_before(None, 1))[0]
        middle = newest.seq // 2
        parent = next(r for r in await q.programs_before(middle, 200) if r.children)
        calls = {
            "newest_seq": q.newest_seq(),
            "programs_before": q.programs_before(middle, 51),
            "programs_after": q.programs_after(middle, 100),
            "top": q.top(10),
            "archive": q.archive(),
            "children": q.children(parent.id, 0, 37),
            "lineage": q.lineage(newest.id, 200),
            "islands": q.islands(),
            "best_id": q.best_id(),
            "metadata": q.metadata(["last_iteration", "best_program_id"]),
            "added_since": q.added_since(time.time() + 3600),
            "id_at": q.id_at(middle),
        }
        plans = {}
        for name, call in calls.items():
            q.sent = []
            await call
            plans[name] = [await _explain(big_run, sql, params) for sql, params in q.sent]
    for name, statements in plans.items():
        for plan in statements:
            text = " | ".join(plan)
            if big_run.url.is_sqlite:
                scans = [line for line in plan if line.startswith("SCAN")]
                assert all(" USING " in line or line.split()[1] in _SMALL for line in scans), \
                    f"{name}: {text}"
                # Only the lineage sorts, and only its own chain (at most ``depth`` rows).
                assert "TEMP B-TREE" not in text or name == "lineage", f"{name}: {text}"
            else:
                assert not any(n.startswith("Seq Scan programs") for n in plan), f"{name}: {text}"
