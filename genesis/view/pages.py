"""The HTML pages: run list, run, lineage, program, compare, find (server-rendered, autoescaped)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from genesis.database.engine import AsyncProgramDatabase
from genesis.database.errors import InvalidArgumentError, OperationalError
from genesis.view import data
from genesis.view.runs import Catalog, RunView
from genesis.view.svg import bars, plot_figure, tree

__all__ = ["catalog_of", "int_param", "routes", "run_of", "templates"]

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_environment.filters.update(
    score=lambda v: "-" if v is None else f"{v:.4f}",
    when=lambda t: "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)),
    short=lambda i: i if len(i) <= 10 else i[:8] + "…",
    isl=lambda i: "isl-none" if i is None or i < 0 else f"isl-{i % 8}",
    pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str),
)
templates = Jinja2Templates(env=_environment)
FIND_LIMIT = 50  # hits and rows shown by the find page


def int_param(request: Request, name: str, default: int | None = None, low: int = 0,
              high: int = 2**62) -> int | None:
    """Return an integer query parameter within [low, high]; a bad value is a 400."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return value


def catalog_of(request: Request) -> Catalog:
    """The catalog of the app serving this request."""
    return request.app.state.catalog


async def run_of(request: Request) -> RunView:
    """The run named in the path (UnknownRun, a 404, if the view does not serve it)."""
    return await catalog_of(request).get(request.path_params["run"])


def _page(request: Request, name: str, run: RunView | None, **context: Any) -> Response:
    catalog = catalog_of(request)
    base = f"{request.scope.get('root_path', '')}/runs/{run.name}" if run else ""
    return templates.TemplateResponse(request, name, {
        "database": str(catalog.url), "backend": catalog.url.backend,
        "single": catalog.single, "run": run.name if run else None, "base": base,
        "root": request.scope.get("root_path", ""), **context})


async def index(request: Request) -> Response:
    """The run list of a PostgreSQL database, or the one run served."""
    catalog = catalog_of(request)
    if catalog.default_run is not None:
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/runs/{catalog.default_run}/", 307)
    return _page(request, "runs.html", None, runs=await catalog.listing())


async def run_page(request: Request) -> Response:
    """The run: counters, plot, islands, archive, best programs, newest programs."""
    run = await run_of(request)
    before = int_param(request, "before")
    view = await data.overview(run, before)
    return _page(request, "run.html", run, view=view, figure=plot_figure(view.plot),
                 bars=bars(view.rate), live=before is None)


async def plot_fragment(request: Request) -> Response:
    """The score plot alone (live pages replace theirs with it)."""
    run = await run_of(request)
    await run.refresh()
    return _page(request, "_plot.html", run, figure=plot_figure(run.series.plot()))


async def lineage_page(request: Request) -> Response:
    """A program's ancestry and children as a tree (the best program's by default)."""
    run = await run_of(request)
    found = await data.lineage(run, request.path_params.get("program_id"),
                               int_param(request, "depth", 200, 1, data.MAX_DEPTH) or 200,
                               int_param(request, "children_after", 0) or 0)
    if found is None:
        raise HTTPException(404, "no such program (or the run has no correct program yet)")
    return _page(request, "lineage.html", run, lineage=found,
                 tree=tree(found.chain, found.children))


async def program_page(request: Request) -> Response:
    """A program: code, diff against its parent, metrics, feedback, relatives."""
    run = await run_of(request)
    detail = await data.program_detail(run, request.path_params["program_id"],
                                       int_param(request, "children_after", 0) or 0)
    if detail is None:
        raise HTTPException(404, "no such program")
    return _page(request, "program.html", run, detail=detail, p=detail.program)


async def program_at(request: Request) -> Response:
    """Redirect from a sequence number (a point of the plot) to the program's page."""
    run = await run_of(request)
    async with run.queries() as q:
        program_id = await q.id_at(int(request.path_params["seq"]))
    if program_id is None:
        raise HTTPException(404, "no such program")
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/runs/{run.name}/programs/{quote(program_id)}", 303)


async def compare_page(request: Request) -> Response:
    """Two programs side by side."""
    run = await run_of(request)
    left, right = request.query_params.get("a", ""), request.query_params.get("b", "")
    found = await data.compare(run, left, right) if left and right else None
    if found is None and (left or right):
        raise HTTPException(404, "give two existing program ids as ?a=...&b=...")
    return _page(request, "compare.html", run, comparison=found, a=left, b=right)


async def find_page(request: Request) -> Response:
    """Code search (``?q=``) and a filter (``?where=``) over the run, with their results."""
    run = await run_of(request)
    text, where = request.query_params.get("q", ""), request.query_params.get("where", "")
    db = AsyncProgramDatabase(store=run.store)
    hits, rows, problem = None, None, None
    try:
        if text.strip():
            hits = await db.search_code(text, limit=FIND_LIMIT)
        if where.strip():
            rows = await db.query(where, order_by="combined_score desc", limit=FIND_LIMIT)
    except (InvalidArgumentError, OperationalError) as exc:
        problem = str(exc)
    response = _page(request, "find.html", run, q=text, where=where, hits=hits, rows=rows,
                     problem=problem, limit=FIND_LIMIT)
    if problem is not None:
        response.status_code = 400
    return response


routes = [
    Route("/", index),
    Route("/runs/{run}/", run_page),
    Route("/runs/{run}/plot", plot_fragment),
    Route("/runs/{run}/lineage", lineage_page),
    Route("/runs/{run}/lineage/{program_id:path}", lineage_page),
    Route("/runs/{run}/programs/{program_id:path}", program_page),
    Route("/runs/{run}/seq/{seq:int}", program_at),
    Route("/runs/{run}/compare", compare_page),
    Route("/runs/{run}/find", find_page),
]
