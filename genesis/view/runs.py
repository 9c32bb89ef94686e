"""The runs a view serves, each opened read-only with its score series and live feed.

A :class:`Catalog` serves one SQLite file, one PostgreSQL run, or every run of a PostgreSQL
database (opened when first asked for). A :class:`RunView` reads through the store's
read-only sessions and keeps the score series current by reading only the programs newer
than the newest one it has seen (:meth:`RunView.refresh`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from genesis.database.backends import create_store
from genesis.database.config import DatabaseConfig
from genesis.database.errors import ConfigurationError, SchemaError
from genesis.database.url import DEFAULT_RUN, DatabaseURL, validate_run_name
from genesis.view.live import Feed
from genesis.view.queries import IslandRow, ProgramRow, QueryCounter, ViewQueries
from genesis.view.scores import ScoreSeries

__all__ = ["Catalog", "RunListing", "RunView", "UnknownRun", "Update"]

_CHUNK = 20_000  # rows per keyset read while catching up
_NEW_ROWS = 50  # newest rows an update carries to the pages


class UnknownRun(LookupError):
    """The view does not serve a run of this name."""


@dataclass(frozen=True)
class RunListing:
    """A run in the catalog's list."""

    name: str
    programs: int
    last_activity: float | None
    schema_version: int


@dataclass
class Update:
    """What changed in a run: new programs (the newest few), counters and the best program."""

    seq: int
    added: int
    new: list[ProgramRow]
    islands: list[IslandRow]
    best: ProgramRow | None

    def as_dict(self) -> dict[str, Any]:
        """Return the update as a JSON-ready dict."""
        islands = [vars(i) for i in self.islands]
        return {"seq": self.seq, "added": self.added, "new": [r.as_dict() for r in self.new],
                "programs": sum(i.programs for i in self.islands),
                "correct": sum(i.correct for i in self.islands),
                "islands": islands, "best": self.best.as_dict() if self.best else None}


def view_config() -> DatabaseConfig:
    """The store settings of a view: few connections per run."""
    return DatabaseConfig(pool_min_size=1, pool_max_size=4, sqlite_readers=2)


def _as_viewer(url: DatabaseURL) -> DatabaseURL:
    """The URL with the view's own application_name, unless it names one: the view's
    connections are then told apart from the workers' (``genesis/<run>``)."""
    if not url.is_postgres or any(key == "application_name" for key, _ in url.options):
        return url
    return replace(url, options=(*url.options, ("application_name", f"genesis-view/{url.run}")))


class RunView:
    """One run, opened read-only."""

    def __init__(self, name: str, url: DatabaseURL) -> None:
        self.name = name
        self.url = url
        self.store = create_store(_as_viewer(url), view_config(), read_only=True)
        self.series = ScoreSeries()
        self.counter = QueryCounter()
        self.feed = Feed(self)
        self._refresh_lock = asyncio.Lock()
        self._loaded = False  # the series has been filled once (that first read is no news)

    async def open(self) -> None:
        """Open the store."""
        await self.store.open()

    async def close(self) -> None:
        """Stop the live feed and release the store's connections."""
        await self.feed.close()
        await self.store.close()

    @asynccontextmanager
    async def queries(self, snapshot: bool = False) -> AsyncIterator[ViewQueries]:
        """Borrow a read-only session (one transaction when ``snapshot``) for the view's reads."""
        async with self.store.read(snapshot=snapshot) as session:
            yield ViewQueries(session, self.counter)  # type: ignore[arg-type]

    async def refresh(self) -> Update | None:
        """Read the programs added since the last refresh into the series; publish them.

        Returns the update sent to live subscribers, or None when nothing was added.
        """
        async with self._refresh_lock:
            news, added, newest = self._loaded, 0, []
            async with self.queries() as q:
                while True:
                    rows = await q.programs_after(self.series.last_seq, _CHUNK)
                    self.series.extend(rows)
                    added += len(rows)
                    newest = (newest + rows)[-_NEW_ROWS:]
                    if len(rows) < _CHUNK:
                        break
                self._loaded = True
                if not added:
                    return None
                update = await self._update(q, added, newest)
        if news:
            self.feed.publish(update)
        return update

    async def _update(self, q: ViewQueries, added: int, new: list[ProgramRow]) -> Update:
        islands = await q.islands()
        best_id = await q.best_id()
        best = (await q.by_ids([best_id]) or [None])[0] if best_id else None
        return Update(self.series.last_seq, added, new, islands, best)

    async def since(self, after: int) -> Update:
        """Return the state of the run with the programs newer than ``after`` (the newest few)."""
        await self.refresh()
        async with self.queries() as q:
            new = await q.programs_after(after, _NEW_ROWS) if after < self.series.last_seq else []
            return await self._update(q, len(new), new)


class Catalog:
    """The runs of one database URL: a SQLite file's run, one PostgreSQL run, or all of them."""

    def __init__(self, url: DatabaseURL, run: str | None = None) -> None:
        if run is not None:
            url = url.with_run(run)  # refuses a SQLite URL with a clear message
        self.url = url
        self.single = url.is_sqlite or run is not None or url.run != DEFAULT_RUN
        self._runs: dict[str, RunView] = {}
        self._opening = asyncio.Lock()

    @property
    def default_run(self) -> str | None:
        """The run the index page opens, or None when the catalog lists several."""
        return self.url.run if self.single else None

    async def listing(self) -> list[RunListing]:
        """Return the runs served, with their sizes."""
        if self.single:
            run = await self.get(self.url.run)
            async with run.queries() as q:
                islands = await q.islands()
                newest = await q.programs_before(None, 1)
            version = await run.store.schema_version()
            return [RunListing(run.name, sum(i.programs for i in islands),
                               newest[0].timestamp if newest else None, version)]
        from genesis.database.backends.postgres_runs import list_runs

        return [RunListing(r.name, r.programs, r.last_activity, r.schema_version)
                for r in await list_runs(self.url)]

    async def get(self, name: str) -> RunView:
        """Return the open run ``name`` (opening it on first use), or raise UnknownRun."""
        if name in self._runs:
            return self._runs[name]
        if self.single and name != self.url.run:
            raise UnknownRun(name)
        try:
            validate_run_name(name)
        except ConfigurationError as exc:
            raise UnknownRun(name) from exc
        async with self._opening:
            if name not in self._runs:
                run = RunView(name, self.url if self.single else self.url.with_run(name))
                try:
                    await run.open()
                except SchemaError as exc:  # no such run (or not readable by this version)
                    await run.close()
                    raise UnknownRun(name) from exc
                self._runs[name] = run
        return self._runs[name]

    def open_runs(self) -> list[RunView]:
        """Return the runs opened so far."""
        return list(self._runs.values())

    async def close(self) -> None:
        """Close every open run."""
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            with contextlib.suppress(Exception):
                await run.close()
