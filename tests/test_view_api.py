"""The view's pages and JSON API on both backends, through the ASGI app."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, create_store
from genesis.database.errors import GenesisError
from genesis.view import create_app
from tests.view_support import SCRIPT, seed_run


@pytest.fixture
async def seeded(store_url: DatabaseURL) -> dict[str, Any]:
    """A seeded run: its URL and what was written."""
    return {"url": store_url, **await seed_run(store_url)}


@pytest.fixture
async def client(seeded: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the view of the seeded run."""
    app = create_app(seeded["url"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://view") as http:
        http.run = seeded["url"].run  # type: ignore[attr-defined]
        yield http
    await app.state.catalog.close()


async def test_index_leads_to_the_run_page_with_its_counts(client: httpx.AsyncClient,
                                                           seeded: dict[str, Any]) -> None:
    page = await client.get("/", follow_redirects=True)
    assert page.status_code == 200 and page.url.path == f"/runs/{client.run}/"
    assert f'data-field="programs">{seeded["programs"]}<' in page.text
    assert f'data-field="correct">{seeded["correct"]}<' in page.text
    summary = (await client.get(f"/api/runs/{client.run}")).json()
    assert (summary["programs"], summary["correct"]) == (seeded["programs"], seeded["correct"])
    assert summary["best"]["id"] == seeded["best"]
    assert sum(i["programs"] for i in summary["islands"]) == seeded["programs"]
    assert len(summary["archive"]) == 8
    runs = (await client.get("/api/runs")).json()["runs"]
    assert [r["name"] for r in runs] == [client.run] and runs[0]["schema_version"] >= 2


async def test_programs_pages_cover_the_run_once(client: httpx.AsyncClient,
                                                 seeded: dict[str, Any]) -> None:
    forward: list[dict[str, Any]] = []
    params: dict[str, Any] = {"after": 0, "limit": 7}
    while params:
        page = (await client.get(f"/api/runs/{client.run}/programs", params=params)).json()
        forward += page["programs"]
        params = page["next"] and {**page["next"], "limit": 7}
    assert len(forward) == seeded["programs"] == len({p["id"] for p in forward})
    assert [p["seq"] for p in forward] == sorted(p["seq"] for p in forward)
    newest = (await client.get(f"/api/runs/{client.run}/programs", params={"limit": 5})).json()
    assert [p["id"] for p in newest["programs"]] == [p["id"] for p in forward[::-1][:5]]
    assert "code" not in newest["programs"][0]
    older = await client.get(f"/runs/{client.run}/", params={"before": newest["next"]["before"]})
    assert f'data-seq="{forward[-6]["seq"]}"' in older.text


@pytest.mark.parametrize("max_points", [2000, 10])
async def test_the_plot_accounts_for_every_program(client: httpx.AsyncClient,
                                                   seeded: dict[str, Any],
                                                   max_points: int) -> None:
    plot = (await client.get(f"/api/runs/{client.run}/plot",
                             params={"max_points": max_points})).json()
    assert plot["mode"] == ("points" if max_points > seeded["programs"] else "buckets")
    assert sum(m["count"] for m in plot["marks"]) == plot["programs"] == seeded["programs"]
    best = [b[1] for b in plot["best"]]
    assert best == sorted(best) and plot["best"][0][0] == 0


async def test_program_page_escapes_what_it_shows(client: httpx.AsyncClient,
                                                  seeded: dict[str, Any]) -> None:
    page = await client.get(f"/runs/{client.run}/programs/{seeded['hostile']}")
    assert page.status_code == 200
    assert SCRIPT not in page.text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    detail = (await client.get(f"/api/runs/{client.run}/programs/{seeded['hostile']}")).json()
    assert detail["program"]["text_feedback"] == f"saw {SCRIPT}"
    assert f"+# {SCRIPT}" in detail["diff"] and detail["diff_source"] == "parent"
    assert "embedding" not in detail["program"]
    parent = detail["program"]["parent_id"]
    assert detail["parent"]["id"] == parent
    compare = await client.get(f"/runs/{client.run}/compare",
                               params={"a": parent, "b": seeded["hostile"]})
    assert compare.status_code == 200 and SCRIPT not in compare.text


async def test_lineage_of_the_best_program_reaches_generation_zero(
        client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    lineage = (await client.get(f"/api/runs/{client.run}/lineage")).json()
    assert lineage["focus"]["id"] == seeded["best"]
    chain = [*lineage["ancestors"], lineage["focus"]]
    assert chain[0]["generation"] == 0 and chain[0]["parent_id"] is None
    assert all(b["parent_id"] == a["id"] for a, b in itertools.pairwise(chain))
    short = (await client.get(f"/api/runs/{client.run}/lineage",
                              params={"id": seeded["best"], "depth": 2})).json()
    assert len(short["ancestors"]) == 2 and short["truncated"]
    page = await client.get(f"/runs/{client.run}/lineage/{chain[1]['id']}")
    assert page.status_code == 200 and f'data-id="{chain[2]["id"]}"' in page.text


async def test_errors_are_404_and_400(client: httpx.AsyncClient) -> None:
    assert (await client.get("/runs/nosuchrun/")).status_code == 404
    assert (await client.get("/api/runs/nosuchrun")).json()["error"].startswith("this view")
    assert (await client.get(f"/runs/{client.run}/programs/nope")).status_code == 404
    assert (await client.get(f"/api/runs/{client.run}/programs/nope")).status_code == 404
    bad = await client.get(f"/api/runs/{client.run}/programs", params={"limit": "x"})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


async def test_metrics_parse_and_agree_with_the_run(client: httpx.AsyncClient,
                                                    seeded: dict[str, Any]) -> None:
    text = (await client.get("/metrics")).text
    samples = {(s.name, s.labels.get("island", s.labels.get("state"))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("genesis_programs", None)] == seeded["programs"]
    assert samples[("genesis_programs_correct", None)] == seeded["correct"]
    assert samples[("genesis_schema_version", None)] >= 2
    assert samples[("genesis_island_programs", "0")] + samples[
        ("genesis_island_programs", "1")] == seeded["programs"]
    assert samples[("genesis_view_queries_total", None)] > 0
    assert 1 <= samples[("genesis_maintenance_runs_total", None)] <= seeded["programs"]
    assert samples[("genesis_maintenance_conflicts_total", None)] == 0  # one writer
    assert samples[("genesis_maintenance_locked_runs_total", None)] >= 0
    if seeded["url"].is_postgres:
        assert samples[("genesis_view_pool_connections", "max")] == 4
        assert ("genesis_lock_sessions", "waiting") in samples


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_metrics_count_the_workers_connections_not_the_views(
        client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    def connections(text: str) -> dict[str, float]:
        return {s.labels["state"]: s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "genesis_run_connections"}

    assert connections((await client.get("/metrics")).text) == {}  # only the view is connected
    config = DatabaseConfig(pool_min_size=3, pool_max_size=3)
    async with AsyncProgramDatabase(config, store=create_store(seeded["url"], config)) as db:
        await db.sample()
        assert connections((await client.get("/metrics")).text) == {"idle": 3}


async def test_the_view_reads_through_read_only_sessions(client: httpx.AsyncClient) -> None:
    await client.get(f"/api/runs/{client.run}")
    run = client._transport.app.state.catalog.open_runs()[0]  # type: ignore[attr-defined]
    assert run.store.read_only
    async with run.store.read() as session:
        with pytest.raises(GenesisError):
            await session.rows("DELETE FROM archive")
