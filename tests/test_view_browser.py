"""The view in a real browser: headless Chromium (Debian's package) driven by Playwright.

Chromium is found on PATH (``chromium``) or at ``GENESIS_CHROMIUM``. Without it (or without
Playwright) these tests skip, unless ``GENESIS_REQUIRE_BROWSER=1`` (set by CI), which makes
them fail. ``GENESIS_UPDATE_SCREENSHOTS=1`` writes the run and lineage screenshots (taken
at a fixed seed) to ``docs/`` for the README.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genesis.database import DatabaseConfig, DatabaseURL, create_store
from genesis.view import create_app
from genesis.view.server import serve_in_thread
from tests.factories import make_program
from tests.required import cannot_run
from tests.view_support import SCRIPT, program, seed_run

T = TypeVar("T")
DOCS = Path(__file__).resolve().parent.parent / "docs"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _unavailable(reason: str) -> None:
    cannot_run(reason, "GENESIS_REQUIRE_BROWSER")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium shared by the module's tests."""
    executable = os.environ.get("GENESIS_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        _unavailable("no chromium on PATH (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a thread of its own (Playwright owns this one)."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed back to the caller below
            result.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


async def _add_child(url: DatabaseURL, parent_id: str, program_id: str) -> None:
    async with create_store(url, DatabaseConfig(pool_max_size=2)) as store:
        async with store.read() as reader:
            parent = await reader.get(parent_id)
        assert parent is not None
        await store.add(program(random.Random(2), parent, 5000, id=program_id))


def _screenshot(page: Any, tmp_path: Path, name: str, backend: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    if backend == "sqlite" and os.environ.get("GENESIS_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / name)


def test_run_page_plot_program_lineage_and_live_updates(
        browser: Any, store_url: DatabaseURL, backend: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    info = in_thread(seed_run(store_url, count=60, seed=3))
    run = store_url.run
    if store_url.is_sqlite:  # the page shows the file as it was named: a short, relative path
        monkeypatch.chdir(tmp_path)
        store_url = DatabaseURL.sqlite(Path(store_url.path).name)
    with serve_in_thread(create_app(store_url)) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
        page.goto(f"{base}/")
        assert page.url == f"{base}/runs/{run}/"
        assert page.inner_text('[data-field="programs"]') == str(info["programs"])
        assert page.inner_text('[data-field="correct"]') == str(info["correct"])
        marks = page.locator("svg.plot circle.mark")
        assert marks.count() == info["programs"]
        assert sum(int(c) for c in marks.evaluate_all("m => m.map(e => e.dataset.count)")) \
            == info["programs"]
        page.wait_for_selector("#live:not([hidden])", timeout=5000)
        _screenshot(page, tmp_path, "view-run.png", backend)

        # A program added while the page is open shows within 2 s.
        parent = info["best"]
        started = time.monotonic()
        in_thread(_add_child(store_url, parent, "added-live"))
        page.wait_for_selector('#recent a[title="added-live"]', timeout=2000)
        assert time.monotonic() - started < 4  # the add itself, plus the 2 s above
        page.wait_for_function(
            f"document.querySelector('[data-field=programs]').textContent === "
            f"'{info['programs'] + 1}'", timeout=2000)
        page.wait_for_function(f"document.querySelectorAll('svg.plot circle.mark').length "
                               f"=== {info['programs'] + 1}", timeout=3000)

        # Clicking a program opens its page, with its code.
        page.click('#recent a[title="added-live"]')
        page.wait_for_url(f"**/runs/{run}/programs/added-live")
        code = httpx.get(f"{base}/api/runs/{run}/programs/added-live").json()["program"]["code"]
        assert page.inner_text("#code").rstrip("\n") == code.rstrip("\n")
        assert page.locator("#diff .add, #diff .del").count() > 0

        # The best program's lineage reaches generation 0; nodes lead to their own lineage.
        page.goto(f"{base}/runs/{run}/lineage")
        assert page.locator(f'a.node.focus[data-id="{info["best"]}"]').count() == 1
        assert page.locator('a.node[data-generation="0"]').count() == 1
        _screenshot(page, tmp_path, "view-lineage.png", backend)
        page.click('a.node[data-generation="0"]')
        page.wait_for_url(f"**/runs/{run}/lineage/**")
        assert page.locator("a.node.focus").get_attribute("data-generation") == "0"

        # A program holding <script> shows it as text and runs nothing.
        page.goto(f"{base}/runs/{run}/programs/{info['hostile']}")
        assert SCRIPT in page.inner_text("#code") and SCRIPT in page.inner_text("#feedback")
        assert page.evaluate("window.__pwned") is None

        # /metrics as the browser gets it parses with prometheus_client's parser.
        page.goto(f"{base}/metrics")
        families = {f.name: f for f in text_string_to_metric_families(page.inner_text("body"))}
        assert families["genesis_programs"].samples[0].value == info["programs"] + 1
        page.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_downsampled_plot_counts_every_program(browser: Any, store_url: DatabaseURL) -> None:
    async def fill() -> int:
        rng = random.Random(4)
        async with create_store(store_url, DatabaseConfig()) as store:
            programs = [make_program(island=i % 3, rng=rng, generation=i // 40,
                                     correct=rng.random() < 0.8) for i in range(2500)]
            await store.add_many(programs)
        return len(programs)

    total = in_thread(fill())
    with serve_in_thread(create_app(store_url)) as base:
        page = browser.new_page()
        page.goto(f"{base}/runs/default/")
        assert page.get_attribute("svg.plot", "data-mode") == "buckets"
        marks = page.locator("svg.plot circle.mark")
        assert 0 < marks.count() < total
        assert sum(int(c) for c in marks.evaluate_all("m => m.map(e => e.dataset.count)")) \
            == total
        page.close()
