"""The behavioural suite of the storage protocol, run on every backend."""

from __future__ import annotations

import asyncio

import pytest

from genesis.database import (
    DuplicateProgramError,
    InvalidProgramError,
    OperationalError,
    Program,
    ReadOnlyError,
    create_store,
)
from genesis.database.protocol import AttemptEvent, GenerationEvent, ProgramStore
from tests.factories import make_program


async def test_add_then_get_returns_an_equal_program(store: ProgramStore) -> None:
    program = make_program(embedding_dim=16, code_diff="--- a\n+++ b\n",
                           embedding_pca_2d=[0.5, 0.25], migration_history=[{"from": 0}],
                           system_prompt_id="sp1", embedding_cluster_id=3)
    assert await store.add(program) == program.id
    async with store.read() as reader:
        assert await reader.get(program.id) == program
        assert await reader.get("missing") is None


async def test_concurrent_adds_are_all_stored_once(store: ProgramStore) -> None:
    programs = [make_program() for _ in range(200)]
    ids = await asyncio.gather(*(store.add(p) for p in programs))
    assert ids == [p.id for p in programs]
    async with store.read() as reader:
        assert await reader.count() == 200
        stored = await reader.get_many([p.id for p in programs])
    assert stored == programs
    stats = await store.stats()
    assert stats["group_commit_batches"] < 200  # concurrent adds shared transactions


async def test_failing_row_fails_only_its_caller(store: ProgramStore) -> None:
    first = make_program()
    await store.add(first)
    clash = make_program(id=first.id)
    others = [make_program() for _ in range(20)]
    results = await asyncio.gather(store.add(clash), *(store.add(p) for p in others),
                                   return_exceptions=True)
    assert isinstance(results[0], DuplicateProgramError)
    assert results[1:] == [p.id for p in others]
    async with store.read() as reader:
        assert await reader.count() == 21
        assert (await reader.get(first.id)) == first


async def test_invalid_program_is_refused_before_anything_is_written(
    store: ProgramStore,
) -> None:
    with pytest.raises(InvalidProgramError, match="public_metrics"):
        await store.add(make_program(public_metrics={"x": float("nan")}))
    with pytest.raises(InvalidProgramError):
        await store.add_many([make_program(), make_program(combined_score=float("inf"))])
    async with store.read() as reader:
        assert await reader.count() == 0


async def test_add_many_is_all_or_nothing(store: ProgramStore) -> None:
    existing = make_program()
    await store.add(existing)
    batch = [make_program(), make_program(id=existing.id), make_program()]
    with pytest.raises(DuplicateProgramError):
        await store.add_many(batch)
    async with store.read() as reader:
        assert await reader.count() == 1
    fresh = [make_program() for _ in range(50)]
    assert await store.add_many(fresh) == [p.id for p in fresh]
    async with store.read() as reader:
        assert await reader.count() == 51


async def test_source_job_id_is_idempotent(store: ProgramStore) -> None:
    first = make_program(job="job-1")
    assert await store.add(first) == first.id
    again = make_program(job="job-1")
    assert await store.add(again) == first.id
    racing = [make_program(job="job-2") for _ in range(5)]
    winners = await asyncio.gather(*(store.add(p) for p in racing))
    assert len(set(winners)) == 1
    async with store.read() as reader:
        assert await reader.count() == 2
        assert (await reader.by_source_job_id("job-1")).id == first.id
        assert await reader.by_source_job_id("job-3") is None


async def test_repeated_job_in_a_group_commit_keeps_the_rest_exact(store: ProgramStore) -> None:
    root = make_program(job="job-root")
    await store.add(root)
    children = [make_program(parent=root, job=f"job-child-{i}") for i in range(6)]
    repeat = make_program(parent=root, job="job-root")
    ids = await asyncio.gather(*(store.add(p) for p in [*children[:3], repeat, *children[3:]]))
    assert ids == [*(c.id for c in children[:3]), root.id, *(c.id for c in children[3:])]
    async with store.read() as reader:
        assert await reader.count() == 7
        assert (await reader.get(root.id)).children_count == 6  # the repeat counted nothing


async def test_children_count_and_last_iteration(store: ProgramStore) -> None:
    root = make_program(generation=0)
    await store.add(root)
    children = [make_program(parent=root, generation=g) for g in (1, 5, 3)]
    await asyncio.gather(*(store.add(c) for c in children))
    await store.add(make_program(parent=root, generation=2), count_children=False)
    async with store.read() as reader:
        assert (await reader.get(root.id)).children_count == 3
        assert await reader.get_metadata("last_iteration") == "5"


async def test_island_stats_follow_inserts_and_moves(store: ProgramStore) -> None:
    await store.add_many([make_program(island=0, score=0.5), make_program(island=0, score=0.9),
                          make_program(island=1, score=0.7, correct=False),
                          make_program(island=1, score=0.2)])
    async with store.read() as reader:
        stats = {s.island_idx: s for s in await reader.island_stats()}
    assert (stats[0].programs, stats[0].correct, stats[0].best_score) == (2, 2, 0.9)
    assert (stats[1].programs, stats[1].correct, stats[1].best_score) == (2, 1, 0.2)
    async with store.read() as reader:
        best = await reader.best_program()
    async with store.write() as writer:
        await writer.move_program(best.id, 1, {"generation": 4, "from": 0, "to": 1})
    async with store.read() as reader:
        stats = {s.island_idx: s for s in await reader.island_stats()}
        moved = await reader.get(best.id)
    assert (stats[0].programs, stats[0].best_score) == (1, 0.5)
    assert (stats[1].programs, stats[1].correct, stats[1].best_score) == (3, 2, 0.9)
    assert moved.island_idx == 1 and moved.migration_history[-1]["to"] == 1


async def test_best_and_top_programs(store: ProgramStore) -> None:
    programs = [make_program(score=s, correct=c, public_metrics={"acc": 1 - s})
                for s, c in [(0.1, True), (0.9, False), (0.5, True), (0.7, True)]]
    await store.add_many(programs)
    async with store.read() as reader:
        assert (await reader.best_program()).combined_score == 0.7
        assert (await reader.best_program(metric="acc")).combined_score == 0.1
        top = await reader.top_programs(3)
        assert [p.combined_score for p in top] == [0.9, 0.7, 0.5]
        top = await reader.top_programs(3, correct_only=True)
        assert [p.combined_score for p in top] == [0.7, 0.5, 0.1]
        by_metric = await reader.top_programs(2, metric="acc")
        assert [p.combined_score for p in by_metric] == [0.1, 0.5]
        newest = await reader.top_programs(1, metric="timestamp")
        assert newest[0].timestamp == max(p.timestamp for p in programs)
        assert len(await reader.top_programs(10, metric=None)) == 4


async def test_nth_program_orderings(store: ProgramStore) -> None:
    programs = [make_program(score=s, island=i, generation=g)
                for s, i, g in [(0.3, 0, 0), (0.6, 0, 2), (0.9, 1, 1), (0.1, 0, 3)]]
    await store.add_many(programs)
    async with store.read() as reader:
        ranked = [await reader.nth_program(island=0, correct=True, order="score",
                                           descending=True, offset=k) for k in range(4)]
        assert [p.combined_score if p else None for p in ranked] == [0.6, 0.3, 0.1, None]
        latest = await reader.nth_program(island=0, correct=True, order="generation",
                                          descending=True)
        assert latest.generation == 3
        first = await reader.nth_program(island=None, correct=None, order="id",
                                         descending=False, generation=0)
        assert first.generation == 0


async def test_ancestry_generation_and_iteration(store: ProgramStore) -> None:
    chain = [make_program(generation=0)]
    for _ in range(5):
        chain.append(make_program(parent=chain[-1]))
    for program in chain:
        await store.add(program)
    async with store.read() as reader:
        ancestors = await reader.ancestry(chain[-1].id, max_ancestors=3)
        assert [p.id for p in ancestors] == [p.id for p in chain[2:5]]
        assert [p.id for p in await reader.ancestry(chain[0].id)] == []
        assert [p.id for p in await reader.programs_by_generation(2)] == [chain[2].id]
        seen = [p.id async for batch in reader.iter_programs(batch_size=4) for p in batch]
        assert seen == [p.id for p in chain]
        assert (await reader.earliest_program()).id == chain[0].id
        count, last = await reader.count_and_last_timestamp()
        assert count == 6 and last == max(p.timestamp for p in chain)


async def test_archive_membership(store: ProgramStore) -> None:
    programs = [make_program(island=i % 2) for i in range(6)]
    programs.append(make_program(in_archive=True))
    await store.add_many(programs)
    async with store.write() as writer:
        await writer.archive_add([p.id for p in programs[:4]])
        await writer.archive_remove([programs[0].id])
    async with store.read() as reader:
        assert await reader.archive_count() == 4
        members = {s.id for s in await reader.archive_summaries()}
        assert members == {p.id for p in programs[1:4]} | {programs[-1].id}
        island1 = {s.id for s in await reader.archive_summaries(island=1)}
        assert island1 == {programs[1].id, programs[3].id}
        assert (await reader.get(programs[1].id)).in_archive
        assert not (await reader.get(programs[0].id)).in_archive


async def test_metadata_store(store: ProgramStore) -> None:
    async with store.write() as writer:
        await writer.set_metadata("best_program_id", "abc")
        await writer.set_metadata("beam_search_parent_id", None)
        assert await writer.raise_metadata("best_score_ever", 0.5)
        assert not await writer.raise_metadata("best_score_ever", 0.25)
        assert await writer.raise_metadata("best_score_ever", 0.75)
    async with store.read() as reader:
        assert await reader.all_metadata() == {"best_program_id": "abc",
                                               "beam_search_parent_id": None,
                                               "best_score_ever": "0.75"}


async def test_write_transaction_rolls_back_on_error(store: ProgramStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.write() as writer:
            await writer.insert([make_program()])
            await writer.set_metadata("k", "v")
            raise RuntimeError("abort")
    async with store.read() as reader:
        assert await reader.count() == 0
        assert await reader.get_metadata("k") is None


async def test_migration_candidates_and_embeddings(store: ProgramStore) -> None:
    root = make_program(generation=0, embedding_dim=8)
    kids = [make_program(parent=root, embedding_dim=8) for _ in range(3)]
    wrong = make_program(parent=root, correct=False)
    other = make_program(island=1, generation=2)
    await store.add_many([root, *kids, wrong, other, make_program(island=2)])
    async with store.read() as reader:
        candidates = await reader.migration_candidates([0, 1, 2])
        assert {s.id for s in candidates[0]} == {k.id for k in kids}
        assert [s.id for s in candidates[1]] == [other.id] and candidates[2] == []
        ids = await reader.embedding_ids(0)
        assert ids == sorted([root.id, *[k.id for k in kids]])
        blobs = await reader.embeddings(ids)
        assert len(blobs[root.id]) == 8 * 8
        summaries = await reader.summaries([kids[1].id, "nope", root.id])
        assert [s.id for s in summaries] == [kids[1].id, root.id]
        assert summaries[1].children_count == 4


async def test_event_logs(store: ProgramStore) -> None:
    async with store.write() as writer:
        await writer.record_generation_event(GenerationEvent(3, "completed", "job-9",
                                                             {"seconds": 1.5}, 100.0))
        await writer.record_attempt_event(AttemptEvent(3, "patch", "failed", None, 101.0))
    async with store.read() as reader:
        assert await reader.generation_events() == [
            GenerationEvent(3, "completed", "job-9", {"seconds": 1.5}, 100.0)]
        assert await reader.attempt_events() == [AttemptEvent(3, "patch", "failed", None, 101.0)]


async def test_snapshot_reads_see_one_state(store: ProgramStore) -> None:
    await store.add(make_program())
    async with store.read(snapshot=True) as reader:
        before = await reader.count()
        await store.add(make_program())
        assert await reader.count() == before
    async with store.read() as reader:
        assert await reader.count() == before + 1


async def test_read_only_store_refuses_writes(store_url, config) -> None:
    async with create_store(store_url, config) as writer_store:
        await writer_store.add(make_program())
        async with create_store(store_url, config, read_only=True) as reader_store:
            with pytest.raises(ReadOnlyError):
                await reader_store.add(make_program())
            with pytest.raises(PermissionError):
                async with reader_store.write():
                    pass
            async with reader_store.read() as reader:
                assert await reader.count() == 1


async def test_closed_store_refuses_work(store_url, config) -> None:
    opened = create_store(store_url, config)
    await opened.open()
    await opened.close()
    await opened.close()  # idempotent
    with pytest.raises(OperationalError, match="closed"):
        await opened.add(make_program())


async def test_close_flushes_pending_adds(store_url, config) -> None:
    opened = create_store(store_url, config)
    await opened.open()
    tasks = [asyncio.create_task(opened.add(make_program())) for _ in range(30)]
    await asyncio.sleep(0)
    await opened.close()
    assert all(t.done() and not t.exception() for t in tasks)
    async with create_store(store_url, config) as again, again.read() as reader:
        assert await reader.count() == 30


async def test_reopen_keeps_data_and_schema(store_url, config) -> None:
    program = make_program()
    async with create_store(store_url, config) as first:
        await first.add(program)
        version = await first.schema_version()
    async with create_store(store_url, config) as second:
        assert await second.schema_version() == version >= 2
        async with second.read() as reader:
            assert await reader.get(program.id) == program


def test_program_equality_is_field_by_field() -> None:
    assert Program(id="a", code="x", timestamp=1.0) == Program(id="a", code="x", timestamp=1.0)
