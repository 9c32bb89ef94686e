"""`genesis demo` through the real entry point, and the progress display."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genesis.cli import main
from genesis.cli.demo import MAX_WORKERS
from genesis.cli.progress import Progress

ROOT = Path(__file__).resolve().parent.parent


def _command(data_dir: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    return [sys.executable, "-m", "genesis", "demo", "--programs", "12", "--seconds", "60",
            "--workers", "2", "--eval-workers", "1", *extra], env


def _demo(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command, env = _command(data_dir, *extra)
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env,
                          cwd=ROOT)


def _count(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "evolution.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
    finally:
        conn.close()


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
    assert "island" in second.stdout and "best program" not in second.stdout  # summary only
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


@pytest.mark.parametrize("option", [("--workers", "0"), ("--workers", "-1"), ("--programs", "-5"),
                                    ("--seconds", "0"), ("--seconds", "-1"),
                                    ("--eval-workers", "0"), ("--islands", "0")])
def test_demo_refuses_limits_that_would_do_nothing(
    option: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--programs", "3", "--seconds", "30", *option])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"genesis demo: error: argument {option[0]}: must be" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_demo_adds_exactly_the_programs_asked_for_however_many_workers(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--workers", "1000", "--programs", "5")
    assert done.returncode == 0, done.stderr
    assert f"--workers 1000 is more than {MAX_WORKERS}; using {MAX_WORKERS}" in done.stderr
    assert _count(tmp_path) == 2 + 5  # the initial program and its island copy, plus 5
    assert "added 5 programs" in done.stdout


@pytest.mark.slow
def test_demo_stops_at_its_time_limit_with_many_workers(tmp_path: Path) -> None:
    done = _demo(tmp_path, "--workers", "10000", "--programs", "100000", "--seconds", "3")
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.search(r", 0:0\d/0:03 \(100%\)", last) and "ETA 0:00" in last  # the clock
    assert f"added {_count(tmp_path) - 2} programs" in done.stdout


@pytest.mark.slow
def test_ctrl_c_prints_the_summary_of_what_was_done(tmp_path: Path) -> None:
    command, env = _command(tmp_path, "--programs", "100000")
    with subprocess.Popen(command, env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        line = "..."
        while line and not line.startswith("evolving  "):
            line = proc.stderr.readline()  # until the first progress line: a program was added
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    added = _count(tmp_path) - 2
    assert f"interrupted: added {added} programs" in out and "island" in out
    assert "Traceback" not in err


def test_progress_against_the_time_limit_when_it_ends_the_run() -> None:
    stream = io.StringIO()
    with Progress("evolving", total=1000, unit="programs", stream=stream, every=3600,
                  seconds=0.05) as progress:
        progress.advance(490)
        time.sleep(0.06)
    first, last = stream.getvalue().splitlines()
    assert first.startswith("evolving  490/1,000 programs (49%)")
    assert last.startswith("evolving  490/1,000 programs, 0:00/0:00 (100%)")
