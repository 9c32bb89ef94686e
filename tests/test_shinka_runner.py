"""ShinkaEvolve 0.0.7's own runner, unchanged, on Genesis: SQLite and PostgreSQL, both modes.

Each case starts the fake OpenAI-compatible LLM (``tests/shinka_runner/fake_llm.py``), then
runs ``genesis shinka -- <ShinkaEvolve's python> tests/shinka_runner/drive.py`` on a task in
ShinkaEvolve's example format: 2 islands, the novelty judge on, prompt evolution on, local
evaluation, 12 generations. PostgreSQL is selected by ``DATABASE_URL`` alone (the runner
keeps passing its SQLite ``db_path``); the run is named after the results folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from genesis.database.backends.sqlite_schema import SCHEMA_VERSION
from tests.conftest import require_postgres
from tests.shinka_runner.fake_llm import serve
from tests.shinka_venv import ROOT, shinka_python

pytestmark = [pytest.mark.slow, pytest.mark.shinka]
DRIVE = ROOT / "tests" / "shinka_runner" / "drive.py"
GENERATIONS = 12


def _run(mode: str, results: Path, llm_url: str, database_url: str | None) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "GENESIS_RUN")}
    env["PYTHONPATH"] = str(ROOT)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    python = str(shinka_python())
    done = subprocess.run(
        [python, "-m", "genesis", "shinka", "--", python, str(DRIVE), "--mode", mode,
         "--results-dir", str(results), "--llm-url", llm_url,
         "--generations", str(GENERATIONS), "--timeout", "240"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, \
        f"exit {done.returncode}\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _assert_complete(result: dict, counts: dict[str, int]) -> None:
    assert result["generations"] == list(range(GENERATIONS))  # 12/12 stored
    assert result["parents_exist"]
    assert result["best_score"] >= result["initial_score"]
    assert result["log_error_count"] == 0, result["log_errors"]
    assert counts.get("novelty", 0) > 0 and result["novelty_checks"] > 0  # the judge ran
    assert result["prompt_count"] > 1 and result["evolved_prompts"] >= 1
    assert result["islands"] == [0, 1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_runner_on_sqlite(mode: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    with serve(seed=1) as llm:
        result = _run(mode, results, llm.base_url, None)
        counts = llm.counts
    _assert_complete(result, counts)
    # The run is in the results folder, in Genesis' schema, readable by ShinkaEvolve.
    assert (results / "programs.sqlite").exists() and (results / "prompts.sqlite").exists()
    check = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
             "print(c.execute('PRAGMA user_version').fetchone()[0], "
             "c.execute('SELECT COUNT(*) FROM islands').fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", check, str(results / "programs.sqlite")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == str(SCHEMA_VERSION)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_runner_on_postgres_selected_by_database_url(mode: str, tmp_path: Path) -> None:
    server = require_postgres()
    folder = f"shinka_{mode}_{uuid.uuid4().hex[:8]}"
    results = tmp_path / folder
    schema = f"genesis_{folder}"
    try:
        with serve(seed=2) as llm:
            result = _run(mode, results, llm.base_url, server.conninfo())
            counts = llm.counts
        _assert_complete(result, counts)
        assert not (results / "programs.sqlite").exists()  # nothing went to SQLite
        assert not (results / "prompts.sqlite").exists()
        with psycopg.connect(server.conninfo()) as conn:
            programs = conn.execute(f"SELECT COUNT(*) FROM {schema}.programs").fetchone()[0]
            prompts = conn.execute(f"SELECT COUNT(*) FROM {schema}.system_prompts").fetchone()
        assert programs == result["program_count"]
        assert prompts[0] == result["prompt_count"]  # prompts stored in the same backend
    finally:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
