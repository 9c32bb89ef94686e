"""``genesis view`` through the real entry point: it serves, and refuses what it must."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from genesis.database import DatabaseURL
from tests.view_support import seed_run

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_genesis_view_serves_a_sqlite_run(tmp_path: Path) -> None:
    url = DatabaseURL.sqlite(tmp_path / "run.db")
    info = await seed_run(url, count=10)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GENESIS_VIEW_TOKEN")}
    server = subprocess.Popen([sys.executable, "-m", "genesis", "view", str(tmp_path / "run.db"),
                               "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            while True:
                try:
                    runs = (await http.get("/api/runs")).json()["runs"]
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, \
                        server.stderr.read() if server.stderr else ""
                    await asyncio.sleep(0.1)
        assert runs[0]["programs"] == info["programs"]
    finally:
        server.terminate()
        out, err = server.communicate(timeout=20)
    assert f"at http://127.0.0.1:{port}/" in out, err


def test_genesis_view_refuses_a_run_name_for_sqlite(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "genesis", "view", str(tmp_path / "x.db"),
                           "--run", "other"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "a SQLite run is its file" in done.stderr
