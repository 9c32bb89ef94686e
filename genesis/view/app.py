"""The Starlette application of ``genesis view``: routes, errors, safety headers, lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genesis.database.errors import GenesisError
from genesis.database.url import DatabaseURL
from genesis.view import api, pages
from genesis.view.runs import Catalog, UnknownRun
from genesis.view.security import TokenGate

__all__ = ["create_app"]

_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _SafetyHeaders:
    """ASGI middleware adding a strict content security policy and related headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status)
    return pages.templates.TemplateResponse(request, "error.html", {
        "status": status, "message": message, "run": None, "base": "", "root": "",
        "database": str(request.app.state.catalog.url), "single": True}, status_code=status)


async def _unknown_run(request: Request, exc: Exception) -> Response:
    return _error(request, 404, f"this view serves no run named {exc}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _database_error(request: Request, exc: Exception) -> Response:
    return _error(request, 503, f"the database could not answer: {exc}")


def create_app(url: DatabaseURL, *, run: str | None = None, token: str | None = None) -> Starlette:
    """Return the read-only view of ``url`` (one run, or every run of a PostgreSQL database).

    With ``token`` every request must carry it (see :mod:`genesis.view.security`).
    """
    catalog = Catalog(url, run)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await catalog.close()

    middleware = [Middleware(_SafetyHeaders)]
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    static = StaticFiles(directory=Path(__file__).parent / "static")
    app = Starlette(
        routes=[*pages.routes, *api.routes, Mount("/static", static, name="static")],
        middleware=middleware, lifespan=lifespan,
        exception_handlers={UnknownRun: _unknown_run, HTTPException: _http_error,
                            GenesisError: _database_error})
    app.state.catalog = catalog
    return app
