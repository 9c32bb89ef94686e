"""``benchmarks.scaling --server-cpus``: the CPU split, and a lone primary pinned to its CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from benchmarks.replication import Replication
from benchmarks.scaling import split_cpus
from tests.replication import replication_or_skip

pytestmark = pytest.mark.postgres


def test_the_workers_get_every_cpu_the_server_does_not() -> None:
    available = os.sched_getaffinity(0)
    if len(available) < 2:
        pytest.skip("one CPU: nothing to split")
    first = min(available)
    assert split_cpus([first]) == ({first}, available - {first})


@pytest.mark.parametrize(("cpus", "message"), [
    (lambda available: sorted(available), "leaves no CPU for the workers"),
    (lambda available: [max(available) + 1], "is not one this process may use"),
])
def test_a_bad_split_names_the_option(cpus, message: str) -> None:
    with pytest.raises(SystemExit, match=f"--server-cpus: .*{message}"):
        split_cpus(cpus(os.sched_getaffinity(0)))


def test_a_lone_primary_runs_on_its_cpus_only() -> None:
    cpu = min(os.sched_getaffinity(0))
    server = Replication(replication_or_skip(), synchronous=False, standby=False, cpus={cpu},
                         settings="fsync = on\n").start()
    try:
        assert server.standby == 0
        with psycopg.connect(server.primary_url().conninfo(), autocommit=True) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
        assert backend is not None and fsync == ("on",)  # the settings come last, so win
        postmaster = int(Path(server.folders[server.primary], "postmaster.pid")
                         .read_text().split()[0])
        assert os.sched_getaffinity(postmaster) == {cpu}
        assert os.sched_getaffinity(int(backend[0])) == {cpu}  # forked backends inherit it
    finally:
        server.close()
    assert not server.root.exists()
