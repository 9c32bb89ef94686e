"""Optimistic maintenance on each backend: compare-and-set by the state's token, counted."""

from __future__ import annotations

import asyncio

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.offers import offer_of
from genesis.database.optimistic import Changes
from genesis.database.protocol import (
    MAINTENANCE_CONFLICTS,
    MAINTENANCE_LOCKED_RUNS,
    MAINTENANCE_RUNS,
    MIGRATION_TOKEN,
    SELECTION_TOKEN,
    ProgramStore,
)
from tests.factories import make_program

COUNTERS = (MAINTENANCE_RUNS, MAINTENANCE_CONFLICTS, MAINTENANCE_LOCKED_RUNS)


async def counters(store: ProgramStore) -> dict[str, int]:
    """The maintenance counters as stored (0 when absent)."""
    async with store.read() as reader:
        return {key: int(await reader.get_metadata(key) or 0) for key in COUNTERS}


async def test_changes_apply_while_the_token_is_current(store_url: DatabaseURL) -> None:
    first, second = make_program(score=0.5), make_program(score=0.7)
    async with create_store(store_url) as store:
        await store.add_many([first, second])
        async with store.read() as reader:
            state = await reader.selection_state()
        guards = {SELECTION_TOKEN: state.metadata.get(SELECTION_TOKEN)}
        applied, after = await store.apply_changes(Changes(archive_add=[first.id]), guards)
        assert applied and [m.id for m in after.archive] == [first.id]
        assert after.metadata[SELECTION_TOKEN] != state.metadata.get(SELECTION_TOKEN)
        # A decision made on the old state is refused whole, and the fresh state returned.
        stale = Changes(archive_add=[second.id], archive_remove=[first.id],
                        metadata={"best_program_id": second.id})
        applied, fresh = await store.apply_changes(stale, guards)
        assert not applied and fresh == after
        async with store.read() as reader:
            assert [m.id for m in await reader.archive_members()] == [first.id]
            assert await reader.get_metadata("best_program_id") is None
        assert await counters(store) == {MAINTENANCE_RUNS: 1, MAINTENANCE_CONFLICTS: 1,
                                         MAINTENANCE_LOCKED_RUNS: 0}


async def test_guarded_moves_apply_together_and_only_while_current(
        store_url: DatabaseURL) -> None:
    history = [{"generation": 1, "from": 1, "to": 0}]
    programs = [make_program(score=0.1 * i, correct=i != 2, migration_history=history)
                for i in range(1, 5)]
    async with create_store(store_url) as store:
        await store.add_many(programs)
        async with store.read() as reader:
            token = (await reader.selection_state()).metadata.get(SELECTION_TOKEN)
        event = {"generation": 4, "from": 0, "to": 1}
        moves = [(p.id, 1, event) for p in programs[1:]]
        applied, after = await store.apply_changes(Changes(moves=moves),
                                                   {SELECTION_TOKEN: token})
        assert applied
        assert [(s.island_idx, s.programs, s.correct, s.best_score) for s in after.islands] \
            == [(0, 1, 1, 0.1), (1, 3, 2, 0.4)]
        stale, _ = await store.apply_changes(Changes(moves=[(programs[0].id, 1, event)]),
                                             {SELECTION_TOKEN: token})
        assert not stale
        async with store.read() as reader:
            stored = {p.id: p for p in await reader.get_many([p.id for p in programs])}
    assert stored[programs[0].id].island_idx == 0
    assert stored[programs[0].id].migration_history == history
    for program in programs[1:]:
        assert stored[program.id].island_idx == 1
        assert stored[program.id].migration_history == [*history, event]


async def test_count_up_starts_at_one(store: ProgramStore) -> None:
    for _ in range(3):
        async with store.write() as writer:
            await writer.count_up(MAINTENANCE_LOCKED_RUNS)
    assert (await counters(store))[MAINTENANCE_LOCKED_RUNS] == 3


@pytest.mark.parametrize("strategy", ["fitness", "crowding"])
async def test_concurrent_engines_count_every_pass(store_url: DatabaseURL, strategy: str
                                                   ) -> None:
    """Two engines maintain one run at once: the archive stays exact. Under the default
    policy (offers, see :mod:`genesis.database.offers`) neither refuses the other's passes;
    crowding (without embeddings it ranks as fitness does) decides by compare-and-set."""
    config = DatabaseConfig(num_islands=1, archive_size=5, migration_interval=0, seed=3,
                            archive_selection_strategy=strategy)
    async with AsyncProgramDatabase(config, store=create_store(store_url, config)) as a, \
            AsyncProgramDatabase(config, store=create_store(store_url, config)) as b:
        root = make_program(score=0.0, generation=0)
        await a.add(root)

        async def children(db: AsyncProgramDatabase, start: int) -> None:
            for i in range(start, start + 12):
                await db.add(make_program(parent=root, score=i / 100))

        await asyncio.gather(children(a, 1), children(b, 13))
        stored = await counters(a.store)
        top = [p.id for p in await a.get_top_programs(5)]
        assert {p.id for p in await a.get_top_programs(30) if p.in_archive} == set(top)
        assert (await a.get_best_program()).combined_score == 0.24
    # At most one pass per add (a child that beats neither the archive's worst nor the best
    # skips it, and passes waiting together run as one); a refused decision is not a pass.
    assert 2 <= stored[MAINTENANCE_RUNS] <= 25
    assert stored[MAINTENANCE_LOCKED_RUNS] <= stored[MAINTENANCE_RUNS]
    if strategy == "fitness":
        assert stored[MAINTENANCE_CONFLICTS] == 0


async def test_migrations_have_their_own_token(store_url: DatabaseURL) -> None:
    """An offer renews the selection token but not the migration token: a migration decided
    before it still applies, a second migration decided on the same state does not, and a
    selection-guarded decision that migrates is refused by either token."""
    programs = [make_program(score=0.1 * i) for i in range(1, 5)]
    async with create_store(store_url) as store:
        await store.add_many(programs)
        async with store.read() as reader:
            state = await reader.selection_state()
        await store.apply_offer(offer_of(programs[:1], DatabaseConfig()), 10)
        migration = {MIGRATION_TOKEN: state.metadata.get(MIGRATION_TOKEN)}
        event = {"generation": 10, "from": 0, "to": 1}
        first = Changes(raised={LAST_MIGRATION_KEY: 10}, moves=[(programs[1].id, 1, event)])
        applied, after = await store.apply_changes(first, migration)
        assert applied and after.metadata[LAST_MIGRATION_KEY] == "10"
        second = Changes(raised={LAST_MIGRATION_KEY: 10}, moves=[(programs[2].id, 1, event)])
        applied, _ = await store.apply_changes(second, migration)
        assert not applied
        both = {SELECTION_TOKEN: after.token, **migration}  # a current selection token
        applied, _ = await store.apply_changes(second, both)
        assert not applied
        async with store.read() as reader:
            islands = {p.id: p.island_idx for p in await reader.get_many([p.id for p in programs])}
    assert islands == {programs[0].id: 0, programs[1].id: 1, programs[2].id: 0,
                       programs[3].id: 0}


async def test_a_due_migration_is_not_refused_by_another_engines_offers(
        store_url: DatabaseURL) -> None:
    """Engine ``a`` holds a state older than ``b``'s offer when its child of the migration's
    generation arrives: the migration applies at once, without a conflict or the lock."""
    config = DatabaseConfig(num_islands=2, archive_size=5, migration_interval=2,
                            migration_rate=0.5, seed=3)
    async with AsyncProgramDatabase(config, store=create_store(store_url, config)) as a, \
            AsyncProgramDatabase(config, store=create_store(store_url, config)) as b:
        root = make_program(score=0.1, generation=0)
        await a.add(root)
        for i in range(4):
            await a.add(make_program(parent=root, score=0.2 + i / 100, generation=1))
        due = make_program(parent=root, score=0.05, generation=2)
        await a.add(due, defer_maintenance=True)  # a's state is now the one after this add
        await b.add(make_program(parent=root, score=0.9, generation=1))  # renews the token
        before = await counters(a.store)
        await a.run_post_add_maintenance(due)
        after = await counters(a.store)
        assert await a.get_last_migration_generation() == 2
    assert after[MAINTENANCE_CONFLICTS] == before[MAINTENANCE_CONFLICTS]
    assert after[MAINTENANCE_LOCKED_RUNS] == before[MAINTENANCE_LOCKED_RUNS] == 0
