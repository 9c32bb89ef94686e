"""The similarity cache knows each island's members exactly as they come, leave and move."""

from __future__ import annotations

import numpy as np

from genesis.database.program import Program
from genesis.database.protocol import ProgramStore
from genesis.database.similarity import SimilarityIndex
from tests.factories import make_program


async def _members(store: ProgramStore, index: SimilarityIndex, island: int,
                   query: list[float]) -> dict[str, float]:
    async with store.read() as reader:
        ids, sims = await index.similarities(reader, query, island)
    return dict(zip(ids, sims.tolist(), strict=True))


def _embedded(rng: np.random.Generator, island: int) -> Program:
    return make_program(island=island, embedding=rng.normal(size=8).tolist())


async def test_cached_islands_follow_newcomers_departures_and_migrants(
        store: ProgramStore) -> None:
    rng = np.random.default_rng(3)
    first = [_embedded(rng, i % 2) for i in range(12)]
    await store.add_many(first)
    index, query = SimilarityIndex(), rng.normal(size=8).tolist()

    async def expect(island: int, programs: list[Program]) -> None:
        found = await _members(store, index, island, query)
        assert sorted(found) == sorted(p.id for p in programs)
        for program in programs:
            vector = np.array(program.embedding)
            cosine = vector @ query / np.linalg.norm(vector) / np.linalg.norm(query)
            assert abs(found[program.id] - cosine) < 1e-5

    island0, island1 = first[0::2], first[1::2]
    await expect(0, island0)
    await expect(1, island1)
    newcomers = [_embedded(rng, 0), make_program(island=0)]  # the second has no embedding
    await store.add_many(newcomers)
    island0 = [*island0, newcomers[0]]
    await expect(0, island0)
    await expect(0, island0)  # nothing new: the cache alone
    migrant = island0[1]
    async with store.write() as writer:
        await writer.move_program(migrant.id, 1, {"generation": 1, "from": 0, "to": 1})
    island0.remove(migrant)
    island1 = [*island1, migrant]
    await expect(0, island0)  # a departure
    await expect(1, island1)  # an arrival older than the newest seen
    late = _embedded(rng, 1)
    await store.add_many([late, _embedded(rng, 0)])
    await expect(1, [*island1, late])


async def test_postgres_sends_only_newcomers_while_no_member_left(store: ProgramStore,
                                                                  backend: str) -> None:
    rng = np.random.default_rng(4)
    await store.add_many([_embedded(rng, 0) for _ in range(5)])
    async with store.read() as reader:
        (everyone,) = await reader.fetch(reader.q_island_embeddings(0, -1))
        seen = max(seq for _, seq, _ in everyone.members)
        known = None if everyone.departures is None else \
            (everyone.departures, len(everyone.members))
        newcomer = _embedded(rng, 0)
        await store.add_many([newcomer])
        (found,) = await reader.fetch(reader.q_island_embeddings(0, seen, known))
    assert everyone.full and len(everyone.members) == 5
    if backend == "sqlite":  # no counters: every member, every time
        assert found.full and len(found.members) == 6 and found.departures is None
        return
    assert everyone.departures == 0 and not found.full
    assert [(pid, blob is not None) for pid, _, blob in found.members] == [(newcomer.id, True)]
