"""`genesis demo` through the real entry point, and the progress display."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genesis.cli.progress import Progress

ROOT = Path(__file__).resolve().parent.parent


def _demo(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "genesis", "demo", "--programs", "12", "--seconds", "60",
         "--workers", "2", "--eval-workers", "1", *extra],
        capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)


@pytest.mark.slow
def test_demo_runs_and_a_rerun_continues_the_run(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "best program" in first.stdout and "island" in first.stdout
    assert "evolving" in first.stderr  # the progress line
    assert f"genesis view sqlite:///{tmp_path / 'evolution.db'}" in first.stdout
    database = tmp_path / "evolution.db"
    count = sqlite3.connect(database).execute("SELECT COUNT(*) FROM programs").fetchone()[0]
    assert count >= 2 + 12
    second = _demo(tmp_path, "--quiet")
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0] >= count + 12
    assert conn.execute("SELECT COUNT(*) FROM programs WHERE generation = 0").fetchone()[0] == 2


def test_demo_reports_a_bad_url_in_one_line(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--url", "mysql://u:hunter2@h/db")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unsupported scheme" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_progress_plain_lines_and_eta() -> None:
    stream = io.StringIO()
    with Progress("copy", total=10, unit="programs", stream=stream, every=3600) as progress:
        progress.advance(4)
        progress.note(best="2.5")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("copy  4/10 programs (40%)")  # the first update shows at once
    assert lines[-1].endswith("best 2.5") and len(lines) == 2
    limited = Progress("run", total=1_000_000, stream=io.StringIO(), seconds=5)
    limited.done = 1
    time.sleep(0.01)
    assert "ETA 0:0" in limited.line()  # the time limit, not a million items, bounds it
