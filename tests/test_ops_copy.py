"""``copy_run``: whole runs between backends, consistent, refusing, forcing and resuming."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from genesis.cli.progress import Progress
from genesis.database import ConfigurationError, DatabaseURL, Program, create_store
from genesis.database.protocol import SELECTION_TOKEN, AttemptEvent, GenerationEvent
from genesis.ops import MARKER_KEY, RefusedError, SourceChangedError, copy_run, verify_runs
from genesis.ops import copy as copy_module
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.factories import make_program

METADATA = {"last_iteration": "7", "best_program_id": None, "best_score_ever": "0.75",
            "note": "ünïcode ✓", "empty": ""}


@contextmanager
def fresh_pg_run() -> Iterator[DatabaseURL]:
    """A new run on the test server, dropped afterwards (skips without a server)."""
    url = new_pg_run_url()
    try:
        yield url
    finally:
        drop_pg_run(url)


def lineage(count: int, seed: int = 0) -> list[Program]:
    """Programs in parent-before-child order over three islands, with awkward values."""
    rng = random.Random(seed)
    made: list[Program] = []
    for index in range(count):
        parent = rng.choice(made) if made and rng.random() < 0.8 else None
        made.append(make_program(
            parent=parent, island=index % 3, rng=rng, in_archive=index % 7 == 0,
            embedding_dim=6 if index % 4 == 0 else 0,
            public_metrics={"zero": -0.0, "big": 1.5e17, "tiny": 5e-324, "int": 3,
                            "nested": {"b": [1, 2.5], "a": None}},
            metadata={"z": 1, "a": {"y": "ü", "x": [True, False]}, "job": f"j{index}"},
        ))
    made.append(make_program(island=None, correct=False, score=None))
    return made


async def populate(url: DatabaseURL, programs: list[Program], events: int = 3) -> None:
    """Store programs (children bump their parents' counters), metadata and event logs."""
    async with create_store(url) as store:
        for start in range(0, len(programs), 50):
            await store.add_many(programs[start:start + 50])
        async with store.write() as writer:
            for key, value in METADATA.items():
                await writer.set_metadata(key, value)
            for index in range(events):
                await writer.record_generation_event(GenerationEvent(
                    index, "done", f"job{index}", {"k": [index, 0.5], "w": -0.0}, 100.0 + index))
                await writer.record_attempt_event(AttemptEvent(
                    index, "eval", "ok", None if index % 2 else {"s": 1.25}, 200.5 + index))


async def seeded(path: Path, count: int, seed: int = 0) -> tuple[DatabaseURL, list[Program]]:
    """A SQLite run at ``path`` holding ``lineage(count, seed)``, metadata and events."""
    url = DatabaseURL.sqlite(path)
    programs = lineage(count, seed)
    await populate(url, programs)
    return url, programs


async def assert_same(first: DatabaseURL, second: DatabaseURL) -> None:
    """Both runs hold the same data, as ``verify`` sees it."""
    report = await verify_runs(first, second)
    assert report.ok, report.lines()


class Interrupt(Exception):
    """Stands for Ctrl-C in the middle of a copy."""


class InterruptingProgress(Progress):
    """A progress display that interrupts the copy after ``batches`` batches."""

    def __init__(self, batches: int) -> None:
        super().__init__("copy", stream=io.StringIO())
        self.batches = batches

    def advance(self, count: int = 1) -> None:
        super().advance(count)
        self.batches -= 1
        if self.batches == 0:
            raise Interrupt


async def test_round_trip_through_each_backend_is_lossless(
    store_url: DatabaseURL, tmp_path: Path
) -> None:
    source, programs = await seeded(tmp_path / "source.db", 80)
    there = await copy_run(source, store_url, batch_size=16)
    assert (there.programs, there.copied, there.resumed) == (81, 81, False)
    # the selection state's token is one of the metadata keys
    assert (there.metadata_keys, there.generation_events, there.attempt_events) == (6, 3, 3)
    assert there.archive == sum(p.in_archive for p in programs)
    back = DatabaseURL.sqlite(tmp_path / "back.db")
    await copy_run(store_url, back, batch_size=1000)
    await assert_same(source, store_url)
    await assert_same(source, back)
    async with create_store(store_url, read_only=True) as store, store.read() as reader:
        metadata = await reader.all_metadata()
        assert metadata.pop(SELECTION_TOKEN) and metadata == METADATA
        stored = {p.id: p async for batch in reader.iter_programs() for p in batch}
    assert [p.id for p in stored.values()] == [p.id for p in programs]  # insertion order kept
    children = {p.id: 0 for p in programs}
    for program in programs:
        if program.parent_id:
            children[program.parent_id] += 1
    assert {pid: p.children_count for pid, p in stored.items()} == children


async def test_copy_between_two_postgres_runs(tmp_path: Path) -> None:
    source, _ = await seeded(tmp_path / "source.db", 30)
    with fresh_pg_run() as first, fresh_pg_run() as second:
        await copy_run(source, first)
        result = await copy_run(first, second, batch_size=7)
        assert result.programs == 31
        await assert_same(source, second)


async def test_non_empty_destination_is_refused_unless_forced(
    store_url: DatabaseURL, tmp_path: Path
) -> None:
    source, _ = await seeded(tmp_path / "source.db", 20)
    async with create_store(store_url) as store:
        await store.add(make_program())
    with pytest.raises(RefusedError, match=r"not empty \(1 programs.*--force"):
        await copy_run(source, store_url)
    async with create_store(store_url, read_only=True) as store, store.read() as reader:
        assert await reader.count() == 1  # nothing was written
    result = await copy_run(source, store_url, force=True)
    assert result.copied == 21
    await assert_same(source, store_url)
    with pytest.raises(RefusedError, match="not empty"):  # a finished copy is not redone
        await copy_run(source, store_url)


async def test_interrupted_copy_resumes_without_duplicates(
    store_url: DatabaseURL, tmp_path: Path
) -> None:
    source, _ = await seeded(tmp_path / "source.db", 60)
    with pytest.raises(Interrupt):
        await copy_run(source, store_url, batch_size=10, progress=InterruptingProgress(3))
    async with create_store(store_url, read_only=True) as store, store.read() as reader:
        assert await reader.count() == 30
        assert MARKER_KEY in await reader.all_metadata()
        assert await reader.generation_events() == []
    result = await copy_run(source, store_url, batch_size=10)
    assert (result.resumed, result.programs, result.copied, result.skipped) == (True, 61, 31, 30)
    await assert_same(source, store_url)


async def test_resume_refuses_a_source_that_changed(store_url: DatabaseURL, tmp_path: Path) -> None:
    source, programs = await seeded(tmp_path / "source.db", 30)
    with pytest.raises(Interrupt):
        await copy_run(source, store_url, batch_size=10, progress=InterruptingProgress(1))
    async with create_store(source) as store, store.write() as writer:
        await writer.move_program(programs[0].id, 2, {"generation": 9, "from": 0, "to": 2})
    with pytest.raises(SourceChangedError, match=f"{programs[0].id}.*island_idx.*--force"):
        await copy_run(source, store_url, batch_size=10)
    await copy_run(source, store_url, force=True)
    await assert_same(source, store_url)


async def test_unfinished_copy_of_another_source_is_refused(tmp_path: Path) -> None:
    first, _ = await seeded(tmp_path / "a.db", 20, seed=1)
    second, _ = await seeded(tmp_path / "b.db", 20, seed=2)
    target = DatabaseURL.sqlite(tmp_path / "target.db")
    with pytest.raises(Interrupt):
        await copy_run(first, target, batch_size=5, progress=InterruptingProgress(1))
    with pytest.raises(RefusedError, match=r"unfinished copy of sqlite:///.*/a\.db"):
        await copy_run(second, target)
    with pytest.raises(RefusedError, match="holds an unfinished copy itself"):
        await copy_run(target, tmp_path / "elsewhere.db")
    await copy_run(first, target)
    await assert_same(first, target)


async def test_bad_arguments_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(Exception, match="not found"):
        await copy_run(missing, tmp_path / "out.db")
    assert not missing.exists() and not (tmp_path / "out.db").exists()
    source = tmp_path / "source.db"
    await seeded(source, 3)
    with pytest.raises(ConfigurationError, match="same run"):
        await copy_run(source, f"sqlite:///{source}")
    with pytest.raises(ConfigurationError, match="batch size"):
        await copy_run(source, tmp_path / "out.db", batch_size=0)


async def test_force_never_deletes_a_file_that_is_not_a_program_database(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    await seeded(source, 3)
    precious = tmp_path / "notes.db"
    precious.write_text("my notes\n" * 100)
    with pytest.raises(Exception, match="not an SQLite program database"):
        await copy_run(source, precious, force=True)
    assert precious.read_text() == "my notes\n" * 100


async def test_batches_are_bounded_by_count_and_by_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = DatabaseURL.sqlite(tmp_path / "source.db")
    programs = [make_program(embedding_dim=2000 if i >= 10 else 0) for i in range(40)]
    async with create_store(url) as store:
        await store.add_many(programs)
        monkeypatch.setattr(copy_module, "BATCH_BYTES", 250_000)
        async with store.read() as reader:
            sizes, ids = [], []
            async for batch in copy_module.batches_of(reader, 7):
                sizes.append(len(batch))
                ids += [p.id for p in batch]
    assert ids == [p.id for p in programs]
    # Ten small programs, then big ones (~82 KB each): a batch closes at 7 programs or once
    # it reaches the budget.
    assert sizes == [7, 6, 4, 4, 4, 4, 4, 4, 3]
