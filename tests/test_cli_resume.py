"""A ``genesis db copy`` killed with SIGKILL mid-way finishes when run again: no duplicate,
no missing row."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from genesis.database import DatabaseURL
from genesis.database.backends.postgres_schema import schema_name
from tests.test_cli_db import ROOT, python_m, text
from tests.test_ops_copy import fresh_pg_run, seeded

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PROGRAMS = 3000
BATCH = 5


def wait_until_part_copied(run: DatabaseURL, child: subprocess.Popen[str]) -> int:
    """Poll the destination until it holds some but not all programs; return that count."""
    query = f"SELECT COALESCE(SUM(programs), 0) FROM {schema_name(run.run)}.islands"
    # Nothing prepared: the same polling query runs often, maybe through PgBouncer.
    with psycopg.connect(run.conninfo(), autocommit=True, prepare_threshold=None) as conn:
        while child.poll() is None:
            try:
                count = conn.execute(query).fetchone()[0]
            except psycopg.errors.UndefinedTable:
                continue  # the copy has not created the run yet
            if 0 < count < PROGRAMS:
                return int(count)
    pytest.fail(f"the copy ended before it could be interrupted: {child.stderr.read()}")


def test_copy_killed_mid_way_is_resumed_by_running_it_again(tmp_path: Path) -> None:
    source, _ = asyncio.run(seeded(tmp_path / "source.db", PROGRAMS - 1))
    with fresh_pg_run() as run:
        command = [sys.executable, "-m", "genesis", "db", "copy", text(source), text(run),
                   "--batch-size", str(BATCH)]
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            seen = wait_until_part_copied(run, child)
        finally:
            child.kill()
            child.communicate()
        assert child.returncode == -9 and 0 < seen < PROGRAMS
        done = python_m("db", "copy", text(source), text(run), "--batch-size", str(BATCH))
        assert done.returncode == 0, done.stderr
        assert f"copied {PROGRAMS:,} programs" in done.stdout
        assert "resumed an interrupted copy:" in done.stdout
        resumed = done.stdout.split("resumed an interrupted copy: ")[1].split()[0]
        assert int(resumed.replace(",", "")) % BATCH == 0  # whole batches, never part of one
        done = python_m("db", "verify", text(source), text(run))
        assert done.returncode == 0, done.stdout
        assert f"identical: {PROGRAMS:,} programs compared" in done.stdout
