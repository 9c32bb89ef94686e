"""Live updates (change checks, the feed, server-sent events), access tokens, masking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from genesis.cli import main
from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.database.errors import ConfigurationError
from genesis.view import create_app
from genesis.view.live import channel, listen, pg_changes
from genesis.view.runs import Catalog
from genesis.view.security import check_bind, cookie_value
from genesis.view.server import serve_in_thread
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.factories import make_program
from tests.view_support import program, seed_run


async def _add(url: DatabaseURL, parent_id: str, program_id: str) -> None:
    """Add one child of ``parent_id`` from another connection, as a worker would."""
    import random

    async with create_store(url, DatabaseConfig(pool_max_size=2)) as store:
        async with store.read() as reader:
            parent = await reader.get(parent_id)
        assert parent is not None
        await store.add(program(random.Random(1), parent, 9999, id=program_id))


async def test_an_update_reads_only_what_changed(store_url: DatabaseURL) -> None:
    info = await seed_run(store_url, count=40)
    catalog = Catalog(store_url)
    try:
        run = await catalog.get(store_url.run)
        queue = run.feed.subscribe()
        await run.refresh()  # the series has caught up with the seeded run
        before = (run.counter.queries, run.counter.rows)
        await _add(store_url, info["best"], "live-1")
        update = await asyncio.wait_for(queue.get(), 3)
        assert [r.id for r in update.new] == ["live-1"] and update.added == 1
        assert sum(i.programs for i in update.islands) == info["programs"] + 1
        queries, rows = run.counter.queries - before[0], run.counter.rows - before[1]
        # a change check or two, the new rows, island counters, the best program
        assert queries <= 8 and rows <= 1 + len(update.islands) + 4 + 2, (queries, rows)
        run.feed.unsubscribe(queue)
        assert run.feed.subscribers == 0
    finally:
        await catalog.close()


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in event:
                yield event["event"], json.loads(event["data"])
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value


async def test_server_sent_events_bring_a_new_program(store_url: DatabaseURL) -> None:
    info = await seed_run(store_url, count=20)
    app = create_app(store_url)
    with serve_in_thread(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http, http.stream(
                "GET", f"/api/runs/{store_url.run}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response.aiter_lines())
            kind, first = await anext(events)
            assert kind == "update" and first["programs"] == info["programs"]
            await _add(store_url, info["best"], "live-sse")
            kind, update = await asyncio.wait_for(anext(events), 3)
            assert [r["id"] for r in update["new"]] == ["live-sse"]
            assert update["programs"] == info["programs"] + 1


@pytest.mark.postgres
@pytest.mark.direct
async def test_listen_yields_notifications_and_drives_the_feed() -> None:
    url = new_pg_run_url()
    name = channel(f"genesis_{url.run}")
    from genesis.database.backends.postgres_connect import connect

    async def notify() -> None:
        await asyncio.sleep(0.3)
        async with await connect(url) as conn:
            await conn.execute("SELECT pg_notify(%s, '42')", (name,))
            await conn.commit()

    sender = asyncio.create_task(notify())
    payload = await asyncio.wait_for(anext(listen(url, name)), 5)
    await sender
    assert payload == "42"

    class Run:  # what pg_changes needs of a RunView
        store = type("S", (), {"schema": f"genesis_{url.run}"})()

    Run.url = url  # type: ignore[attr-defined]
    sender = asyncio.create_task(notify())
    await asyncio.wait_for(anext(pg_changes(Run(), notify=True)), 5)  # type: ignore[arg-type]
    await sender


@pytest.mark.postgres
@pytest.mark.direct
async def test_an_insert_notifies_the_runs_channel_at_commit() -> None:
    url = new_pg_run_url()
    try:
        async with create_store(url) as store:
            listener = listen(url, channel(store.schema))
            first = asyncio.ensure_future(anext(listener))
            await asyncio.sleep(0.3)  # listening
            assert not first.done()
            await store.add(make_program())
            payload = await asyncio.wait_for(first, 5)
            async with store.read() as reader:
                newest = await reader.rows("SELECT MAX(seq) FROM programs")
            assert payload == str(newest[0][0])
            await listener.aclose()
    finally:
        drop_pg_run(url)


def _gate(token: str) -> Callable[..., httpx.AsyncClient]:
    def client(url: DatabaseURL, **options: Any) -> httpx.AsyncClient:
        app = create_app(url, token=token)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://view", **options)
    return client


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_token_guards_every_request(store_url: DatabaseURL) -> None:
    await seed_run(store_url, count=5)
    token = "s3cret-token-for-tests"
    async with _gate(token)(store_url) as http:
        assert (await http.get("/api/runs")).status_code == 401
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/static/view.css")).status_code == 401
        assert (await http.get("/api/runs", headers={"x-genesis-token": "wrong"})).status_code \
            == 401
        assert (await http.get("/api/runs", headers={"authorization": f"Bearer {token}"})
                ).status_code == 200
        assert (await http.get("/api/runs", headers={"x-genesis-token": token})).status_code \
            == 200
        first = await http.get("/runs/default/", params={"token": token, "before": "3"})
        assert first.status_code == 303 and first.headers["location"] == "/runs/default/?before=3"
        assert token not in first.headers["set-cookie"]
        assert cookie_value(token) in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        http.cookies.set("genesis_view", cookie_value(token))
        assert (await http.get("/runs/default/")).status_code == 200


def test_binding_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GENESIS_VIEW_TOKEN", raising=False)
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("::1", None) is None
    with pytest.raises(ConfigurationError, match="without an access token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigurationError, match="at least 8"):
        check_bind("0.0.0.0", "short")
    assert check_bind("0.0.0.0", "long-enough-token") == "long-enough-token"
    monkeypatch.setenv("GENESIS_VIEW_TOKEN", "from-the-environment")
    assert check_bind("10.1.2.3", None) == "from-the-environment"
    monkeypatch.delenv("GENESIS_VIEW_TOKEN")
    assert main(["view", "sqlite:///nowhere.db", "--host", "0.0.0.0"]) == 2
    assert "without an access token" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_pages_never_show_the_password(store_url: DatabaseURL) -> None:
    await seed_run(store_url, count=5)
    # The test server trusts local connections, so any password is accepted and must not show.
    secret = DatabaseURL.parse(str(store_url).replace("postgresql://postgres@",
                                                      "postgresql://postgres:hunter2pw@"))
    assert secret.password == "hunter2pw"
    app = create_app(secret)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://view") as http:
        for path in ("/", f"/runs/{store_url.run}/", f"/runs/{store_url.run}/lineage",
                     "/api/runs", "/metrics", "/runs/nosuchrun/"):
            page = await http.get(path, follow_redirects=True)
            assert "hunter2pw" not in page.text, path
        assert "postgres:***@" in (await http.get(f"/runs/{store_url.run}/")).text
    await app.state.catalog.close()
