"""Unit tests of the group committer: batching, isolation, failure, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from genesis.database import OperationalError
from genesis.database.backends.group_commit import GroupCommitter


class Recorder:
    """A flush that records its batches and fails items named 'bad'."""

    def __init__(self, delay: float = 0.01, fail_all: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail_all = fail_all

    async def __call__(self, items: Sequence[str]) -> list[str | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail_all:
            raise OperationalError("disk on fire")
        return [ValueError(i) if i == "bad" else i.upper() for i in items]


async def test_concurrent_submissions_share_batches() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, max_batch=10)
    results = await asyncio.gather(*(committer.submit(f"x{i}") for i in range(25)))
    assert results == [f"X{i}" for i in range(25)]
    assert [len(b) for b in flush.batches] == [10, 10, 5]
    assert [item for batch in flush.batches for item in batch] == [f"x{i}" for i in range(25)]


async def test_a_failing_item_fails_only_its_caller() -> None:
    committer = GroupCommitter(Recorder(), max_batch=10)
    results = await asyncio.gather(committer.submit("a"), committer.submit("bad"),
                                   committer.submit("c"), return_exceptions=True)
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)


async def test_a_failing_transaction_fails_every_caller_in_it() -> None:
    committer = GroupCommitter(Recorder(fail_all=True))
    results = await asyncio.gather(*(committer.submit(str(i)) for i in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)


async def test_cancelled_caller_before_its_batch_is_not_written() -> None:
    flush = Recorder(delay=0.05)
    committer = GroupCommitter(flush)
    first = asyncio.create_task(committer.submit("first"))
    await asyncio.sleep(0.01)  # "first" is being written
    doomed = asyncio.create_task(committer.submit("doomed"))
    kept = asyncio.create_task(committer.submit("kept"))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await first == "FIRST" and await kept == "KEPT"
    assert "doomed" not in [item for batch in flush.batches for item in batch]


async def test_close_waits_for_pending_and_refuses_new_items() -> None:
    flush = Recorder(delay=0.02)
    committer = GroupCommitter(flush)
    pending = [asyncio.create_task(committer.submit(str(i))) for i in range(5)]
    await asyncio.sleep(0)
    await committer.close()
    assert all(task.done() for task in pending)
    with pytest.raises(OperationalError, match="closed"):
        await committer.submit("late")


async def test_an_item_submitted_as_a_flusher_finishes_is_still_written() -> None:
    flush = Recorder(delay=0)
    committer = GroupCommitter(flush)
    for index in range(200):  # sequential submissions race the flusher's exit every time
        assert await asyncio.wait_for(committer.submit(str(index)), timeout=5) == str(index)


async def test_concurrent_flushes_share_the_work() -> None:
    flush = Recorder(delay=0.02)
    committer = GroupCommitter(flush, max_batch=4, concurrency=3)
    results = await asyncio.gather(*(committer.submit(f"x{i}") for i in range(12)))
    assert results == [f"X{i}" for i in range(12)]
    assert sorted(len(b) for b in flush.batches) == [4, 4, 4]
