"""Group commit: many concurrent single writes, one transaction.

Callers ``await submit(item)``. While a transaction is being written, new items queue up;
the next transaction takes all of them (up to ``max_batch``). With ``concurrency`` above 1
(PostgreSQL, whose transactions commit side by side) up to that many transactions are
written at once, each taking whatever is queued when it starts. A caller resumes only after
the transaction holding its item has committed, and gets its own outcome: one failing item
does not fail the others (the flush function isolates failures and returns one outcome per
item). If the transaction itself fails, every caller in it gets the error.

A caller cancelled before its item is taken removes the item; once the item is in a
transaction it is written even if the caller stops waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from genesis.database.errors import OperationalError

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")
Flush = Callable[[Sequence[T]], Awaitable[Sequence["R | BaseException"]]]


class GroupCommitter(Generic[T, R]):
    """Gather concurrent submissions into batches, written by up to ``concurrency`` flushes."""

    def __init__(self, flush: Flush[T, R], max_batch: int = 512, concurrency: int = 1) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._pending: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item`` and return its outcome once its transaction has committed."""
        if self._closed:
            raise OperationalError("the store is closed; no more writes are accepted")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        # A finished flusher leaves the set only in a later loop turn: count live ones.
        if sum(not task.done() for task in self._tasks) < self._concurrency:
            task = asyncio.create_task(self._run(), name="genesis-group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch: list[tuple[T, asyncio.Future[R]]] = []
            while self._pending and len(batch) < self._max_batch:
                item, future = self._pending.popleft()
                if not future.cancelled():
                    batch.append((item, future))
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | BaseException] = await self._flush([i for i, _ in batch])
        except asyncio.CancelledError:
            failure = OperationalError("the write was interrupted; its outcome is unknown")
            self._settle(batch, [failure] * len(batch))
            raise
        except BaseException as exc:  # every caller of a failed transaction gets the error
            outcomes = [exc] * len(batch)
        self.batches += 1
        self.items += len(batch)
        self._settle(batch, outcomes)

    @staticmethod
    def _settle(
        batch: list[tuple[T, asyncio.Future[R]]], outcomes: Sequence[R | BaseException]
    ) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def drain(self) -> None:
        """Wait until every item queued so far is written."""
        while self._tasks:
            await asyncio.shield(asyncio.gather(*self._tasks, return_exceptions=True))

    async def close(self) -> None:
        """Refuse new items and wait until every queued item is written."""
        self._closed = True
        await self.drain()
