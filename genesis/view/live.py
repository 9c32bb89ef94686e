"""Live updates: one change watcher per run, shared by every open page, sent as SSE.

A watcher runs while at least one page listens. It waits for a sign that the run changed,
then calls :meth:`RunView.refresh`, which reads only the programs newer than the newest one
seen. The sign is cheap and never reads the table:

- SQLite: ``PRAGMA data_version`` on a dedicated read-only connection (it changes when any
  other connection commits), checked every 0.2 s;
- PostgreSQL: ``LISTEN`` on the run's channel (:func:`channel`), on which every inserting
  statement notifies at commit (schema version 3), with the newest ``seq`` checked through
  its unique index every few seconds as a safety net (a notification lost with a dropped
  connection, or a transaction-pooling PgBouncer in between, which does not carry them);
  a run of an older schema is polled that way once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from genesis.database.url import DatabaseURL

if TYPE_CHECKING:
    from genesis.view.runs import RunView, Update

__all__ = ["Feed", "channel", "listen", "pg_changes", "sqlite_changes", "sse"]

log = logging.getLogger("genesis.view")
SQLITE_INTERVAL = 0.2
POSTGRES_INTERVAL = 1.0
LISTEN_CHECK = POSTGRES_INTERVAL  # safety-net checks while listening (no LISTEN behind
# a transaction-pooling PgBouncer: then updates come as fast as polling brings them)
NOTIFYING_VERSION = 3  # the PostgreSQL schema version from which inserts notify
_QUEUE = 16  # updates a slow page may fall behind by before older ones are dropped


def channel(schema: str) -> str:
    """Return the NOTIFY channel of a run's schema (the schema's name)."""
    return schema


async def listen(url: DatabaseURL, name: str, timeout: float | None = None
                 ) -> AsyncIterator[str | None]:
    """Yield the payload of every notification on channel ``name``, on a connection of its own.

    With ``timeout``, None is yielded after that many seconds without a notification.
    """
    from psycopg import sql

    from genesis.database.backends.postgres_connect import connect

    async with await connect(url) as conn:
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        while True:
            async for notification in conn.notifies(timeout=timeout):
                yield notification.payload
            yield None


async def sqlite_changes(path: str, interval: float = SQLITE_INTERVAL) -> AsyncIterator[None]:
    """Yield whenever another connection has committed to the SQLite file at ``path``."""
    uri = f"file:{Path(path).resolve().as_posix()}?mode=ro"
    async with aiosqlite.connect(uri, uri=True, isolation_level=None) as conn:
        seen = None
        while True:
            async with conn.execute("PRAGMA data_version") as cursor:
                row = await cursor.fetchone()
            version = row[0] if row else None
            if seen is not None and version != seen:
                yield
            seen = version
            await asyncio.sleep(interval)


async def pg_changes(run: RunView, interval: float = POSTGRES_INTERVAL,
                     notify: bool | None = None) -> AsyncIterator[None]:
    """Yield whenever a PostgreSQL run has a program newer than the last one seen.

    ``notify`` (default: when the run's schema notifies) listens instead of polling.
    """
    if notify is None:
        notify = await run.store.schema_version() >= NOTIFYING_VERSION
    if notify:
        schema = getattr(run.store, "schema", "")
        async for payload in listen(run.url, channel(schema), timeout=LISTEN_CHECK):
            if payload is not None or await _newer(run):
                yield
        return
    while True:
        if await _newer(run):
            yield
        await asyncio.sleep(interval)


async def _newer(run: RunView) -> bool:
    """True if the run has a program newer than the newest the view has seen."""
    async with run.queries() as q:
        newest = await q.newest_seq()
    return newest > run.series.last_seq


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """Format one server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Feed:
    """The live updates of one run, fanned out to every subscribed page."""

    def __init__(self, run: RunView) -> None:
        self._run = run
        self._queues: set[asyncio.Queue[Update]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """Pages listening now."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[Update]:
        """Return a queue that receives every update; start watching if nobody was."""
        queue: asyncio.Queue[Update] = asyncio.Queue(_QUEUE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name=f"genesis-view-{self._run.name}")
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Update]) -> None:
        """Stop sending to ``queue``; stop watching when nobody listens."""
        self._queues.discard(queue)
        if not self._queues and self._task is not None:
            self._task.cancel()
            self._task = None

    def publish(self, update: Update) -> None:
        """Send an update to every subscriber (dropping its oldest one if it lags)."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(update)

    def _changes(self) -> AsyncIterator[None]:
        url = self._run.url
        return sqlite_changes(url.path) if url.is_sqlite else pg_changes(self._run)

    async def _watch(self) -> None:
        while True:
            try:
                async for _ in self._changes():
                    await self._run.refresh()
            except Exception as exc:  # the database went away: keep trying, quietly
                log.warning("live updates of run %s paused: %s", self._run.name, exc)
                await asyncio.sleep(POSTGRES_INTERVAL)

    async def close(self) -> None:
        """Stop watching."""
        self._queues.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
