"""The view's find page: code search and a filter from the run page, on both backends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from genesis.database import DatabaseURL
from genesis.view import create_app
from tests.view_support import SCRIPT, seed_run


@pytest.fixture
async def client(store_url: DatabaseURL) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the view of a seeded run."""
    await seed_run(store_url)
    app = create_app(store_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://view") as http:
        http.run = store_url.run  # type: ignore[attr-defined]
        yield http
    await app.state.catalog.close()


def _ids(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'/programs/([^"]+)" title=', body)


async def test_the_run_page_has_a_search_box_and_a_filter_box(client: httpx.AsyncClient
                                                              ) -> None:
    page = (await client.get(f"/runs/{client.run}/")).text
    assert f'action="/runs/{client.run}/find"' in page
    assert 'name="q"' in page and 'name="where"' in page


async def test_find_searches_code_and_filters(client: httpx.AsyncClient) -> None:
    page = await client.get(f"/runs/{client.run}/find",
                            params={"q": "window.__pwned", "where": "correct and generation > 3"})
    assert page.status_code == 200
    hits = _ids(page.text, "hits")
    assert len(hits) == 1 and "[window].__[pwned]" in page.text  # the snippet, as text
    assert SCRIPT not in page.text and "&lt;script&gt;" in page.text
    rows = _ids(page.text, "rows")
    api = (await client.get(f"/api/runs/{client.run}")).json()
    assert rows and len(rows) <= api["correct"]


async def test_find_shows_a_bad_filter_with_its_position(client: httpx.AsyncClient) -> None:
    page = await client.get(f"/runs/{client.run}/find", params={"where": "scor > 1"})
    assert page.status_code == 400
    assert "where: unknown field &#39;scor&#39;" in page.text and "position 0" in page.text
    assert 'value="scor &gt; 1"' in page.text  # the box keeps what was typed
