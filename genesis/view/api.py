"""The JSON API under ``/api/`` (documented in the README) and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from genesis.view import data, metrics
from genesis.view.live import sse
from genesis.view.pages import catalog_of, int_param, run_of

__all__ = ["routes"]

T = TypeVar("T")
KEEPALIVE = 15.0  # seconds between comments on an idle event stream


def _json(payload: object) -> JSONResponse:
    return JSONResponse(payload, headers={"cache-control": "no-store"})


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise HTTPException(404, f"no such {what}")
    return value


async def runs(request: Request) -> Response:
    """Every run served, with its size."""
    return _json({"runs": [vars(r) for r in await catalog_of(request).listing()]})


async def summary(request: Request) -> Response:
    """A run's counters, best, islands, archive and rate (``GET /api/runs/{run}``)."""
    view = await data.overview(await run_of(request), limit=0)
    return _json(view.as_dict())


async def programs(request: Request) -> Response:
    """A keyset page of program summaries: newest first (``before``) or oldest first (``after``).

    ``limit`` (1-1000, default 100). The response's ``next`` holds the parameters of the
    following page, or is null on the last one.
    """
    run = await run_of(request)
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    after = int_param(request, "after")
    async with run.queries() as q:
        if after is not None:
            rows = await q.programs_after(after, limit)
            cursor = {"after": rows[-1].seq} if len(rows) == limit else None
        else:
            rows = await q.programs_before(int_param(request, "before"), limit)
            cursor = {"before": rows[-1].seq} if len(rows) == limit else None
    return _json({"programs": [r.as_dict() for r in rows], "next": cursor})


async def program(request: Request) -> Response:
    """One program in full (without its embedding), its diff, relatives and inspirations."""
    detail = await data.program_detail(await run_of(request), request.path_params["program_id"],
                                       int_param(request, "children_after", 0) or 0)
    return _json(_found(detail, "program").as_dict())


async def lineage(request: Request) -> Response:
    """A program's ancestors (oldest first) and children; the best program's by default."""
    found = await data.lineage(await run_of(request), request.query_params.get("id"),
                               int_param(request, "depth", 200, 1, data.MAX_DEPTH) or 200,
                               int_param(request, "children_after", 0) or 0)
    return _json(_found(found, "program").as_dict())


async def compare(request: Request) -> Response:
    """Two programs (``?a=&b=``): their code diff, fields and metrics side by side."""
    found = await data.compare(await run_of(request), request.query_params.get("a", ""),
                               request.query_params.get("b", ""))
    return _json(_found(found, "program").as_dict())


async def plot(request: Request) -> Response:
    """The score-by-generation plot's marks (one per program, or per bucket) and best line."""
    run = await run_of(request)
    await run.refresh()
    points = int_param(request, "max_points", 2000, 1, 100_000) or 2000
    return _json(run.series.plot(points).as_dict())


async def events(request: Request) -> Response:
    """Server-sent events: an ``update`` whenever programs are added (``?after=seq``)."""
    run = await run_of(request)
    after = int_param(request, "after", 0) or 0
    with contextlib.suppress(ValueError):  # a reconnecting EventSource says where it was
        after = max(after, int(request.headers.get("last-event-id", "")))
    queue = run.feed.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            first = await run.since(after)
            yield sse("update", first.as_dict(), first.seq)
            while True:
                try:
                    update = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield sse("update", update.as_dict(), update.seq)
        finally:
            run.feed.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def prometheus(request: Request) -> Response:
    """Metrics of the open runs in the Prometheus text format."""
    catalog = catalog_of(request)
    if catalog.single:
        await catalog.get(catalog.url.run)
    return Response(await metrics.render(catalog.open_runs()), media_type=metrics.CONTENT_TYPE)


routes = [
    Route("/api/runs", runs),
    Route("/api/runs/{run}", summary),
    Route("/api/runs/{run}/programs", programs),
    Route("/api/runs/{run}/programs/{program_id:path}", program),
    Route("/api/runs/{run}/lineage", lineage),
    Route("/api/runs/{run}/compare", compare),
    Route("/api/runs/{run}/plot", plot),
    Route("/api/runs/{run}/events", events),
    Route("/metrics", prometheus),
]
