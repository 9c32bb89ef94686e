"""Maintenance that commutes: offers to the archive and the best program, on each backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.offers import commutes, offer_of
from genesis.database.program import Program
from genesis.database.protocol import MAINTENANCE_RUNS, SelectionState
from tests.conftest import drop_pg_run
from tests.factories import make_program

ARCHIVE = 4


def _state(**metadata: str) -> SelectionState:
    return SelectionState((), (), None, metadata)


def test_the_offer_of_a_batch() -> None:
    old = make_program(score=0.5, generation=3, timestamp=1.0)
    newer_tie = make_program(score=0.5, generation=5, timestamp=2.0)
    wrong = make_program(score=0.9, correct=False)
    unscored = make_program(score=None)
    unscored.combined_score = None
    offer = offer_of([newer_tie, wrong, old, unscored], DatabaseConfig())
    assert offer.archive == (newer_tie.id, old.id, unscored.id)  # correct ones only
    assert offer.best is newer_tie  # a tie goes to the newer program
    assert offer.best_generation == 3  # the first generation that reached the score
    assert offer_of([wrong], DatabaseConfig()).best is None
    assert offer_of([old], DatabaseConfig(archive_size=0)).archive == ()


@pytest.mark.parametrize("options", [
    {"archive_selection_strategy": "crowding"}, {"enable_dynamic_islands": True},
    {"archive_criteria": {"combined_score": 1.0, "loc": -0.5}},
])
def test_other_policies_do_not_commute(options: dict) -> None:
    assert not commutes(DatabaseConfig(**options), [make_program()], None)


def test_a_due_migration_does_not_commute_until_the_state_shows_it_done() -> None:
    config = DatabaseConfig(migration_interval=10)
    due = make_program(generation=20)
    assert commutes(config, [make_program(generation=19)], None)
    assert not commutes(config, [due], None)
    assert not commutes(config, [due], _state(**{LAST_MIGRATION_KEY: "10"}))
    assert commutes(config, [due], _state(**{LAST_MIGRATION_KEY: "20"}))


async def _apply(store_url: DatabaseURL, programs: list[Program], order: list[list[int]]
                 ) -> tuple[set[str], dict[str, str | None]]:
    config = DatabaseConfig(archive_size=ARCHIVE)
    async with create_store(store_url, config) as store:
        await store.add_many(programs)
        for batch in order:
            await store.apply_offer(offer_of([programs[i] for i in batch], config), ARCHIVE)
        async with store.read() as reader:
            archive = {m.id for m in await reader.archive_members()}
            keys = ("best_program_id", "best_score_ever", "best_score_generation",
                    MAINTENANCE_RUNS)
            return archive, {key: await reader.get_metadata(key) for key in keys}


async def test_offers_in_any_order_give_the_same_archive_and_best(store_url: DatabaseURL,
                                                                  tmp_path: Path) -> None:
    rng = random.Random(7)
    programs = [make_program(score=round(rng.random(), 2), generation=g, timestamp=float(g),
                             correct=g % 5 != 0) for g in range(1, 16)]
    programs.append(make_program(score=max(p.combined_score for p in programs if p.correct),
                                 generation=16, timestamp=16.0))  # ties the best, later
    ranked = sorted((p for p in programs if p.correct),
                    key=lambda p: (p.combined_score, p.timestamp), reverse=True)
    outcomes = []
    for attempt in range(3):
        indexes = list(range(len(programs)))
        rng.shuffle(indexes)
        batches = [indexes[i:i + 3] for i in range(0, len(indexes), 3)]
        url = store_url.with_run(f"{store_url.run}_{attempt}") if store_url.is_postgres \
            else DatabaseURL.sqlite(tmp_path / f"run{attempt}.db")
        try:
            outcomes.append(await _apply(url, programs, batches))
        finally:
            if store_url.is_postgres:
                drop_pg_run(url)
    archive, best = outcomes[0]
    assert archive == {p.id for p in ranked[:ARCHIVE]}
    assert best["best_program_id"] == programs[-1].id  # the newer of the two best
    assert float(best["best_score_ever"]) == ranked[0].combined_score
    first = min(p.generation for p in programs
                if p.correct and p.combined_score == ranked[0].combined_score)
    assert best["best_score_generation"] == str(first)
    assert all(outcome[0] == archive for outcome in outcomes)
    assert all({k: v for k, v in o[1].items() if k != MAINTENANCE_RUNS} ==
               {k: v for k, v in best.items() if k != MAINTENANCE_RUNS} for o in outcomes)


async def test_a_worse_offer_changes_nothing(store_url: DatabaseURL) -> None:
    config = DatabaseConfig(archive_size=1)
    good, worse = make_program(score=0.8, generation=1), make_program(score=0.3, generation=2)
    async with create_store(store_url, config) as store:
        await store.add_many([good, worse])
        await store.apply_offer(offer_of([good], config), 1)
        state = await store.apply_offer(offer_of([worse], config), 1)
        assert [m.id for m in state.archive] == [good.id]
        assert state.best is not None and state.best.id == good.id
        assert state.metadata["best_score_generation"] == "1"
        # An offer of a program that is not stored changes nothing either.
        ghost = make_program(score=0.99, generation=3)
        state = await store.apply_offer(offer_of([ghost], config), 1)
        assert state.best.id == good.id and [m.id for m in state.archive] == [good.id]
