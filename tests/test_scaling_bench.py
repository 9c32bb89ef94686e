"""``benchmarks.scaling``: medians over sweeps, the ``--server-cpus`` split, and a lone
primary pinned to its CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from benchmarks import scaling
from benchmarks.replication import Replication
from benchmarks.scaling import fill_direct_round_trips, medians, split_cpus
from tests.replication import replication_or_skip


def _record(column: str, workers: int, repeat: int, steps: float,
            server: float | None) -> dict[str, object]:
    return {"column": column, "backend": "x", "rtt_ms": None, "workers": workers,
            "processes": 1, "repeat": repeat, "steps_per_s": steps,
            "round_trips_per_step": 3.0, "client_cpu_ms_per_step": steps / 10,
            "server_cpu_ms_per_step": server, "step_p50_ms": 1.0}


def test_each_configuration_gets_the_median_of_its_sweeps() -> None:
    records = [_record("A", 16, 0, 10.0, 1.0), _record("B", 16, 0, 5.0, None),
               _record("A", 16, 1, 30.0, 3.0), _record("B", 16, 1, 7.0, None),
               _record("A", 16, 2, 20.0, None), _record("B", 16, 2, 6.0, None)]
    by_column = {r["column"]: r for r in medians(records)}
    assert set(by_column) == {"A", "B"}
    assert by_column["A"]["steps_per_s"] == 20.0 and by_column["A"]["sweeps"] == [10, 30, 20]
    assert by_column["A"]["client_cpu_ms_per_step"] == 2.0  # each figure its own median
    assert by_column["A"]["server_cpu_ms_per_step"] == 2.0  # of the sweeps that measured it
    assert by_column["B"]["server_cpu_ms_per_step"] is None
    assert "repeat" not in by_column["A"]


def test_the_direct_column_takes_the_0_ms_count_of_its_own_sweep() -> None:
    records = [{**_record(column, 16, repeat, 1.0, None), "backend": "postgres",
                "rtt_ms": rtt, "round_trips_per_step": trips}
               for repeat, trips in ((0, 3.5), (1, 3.1))
               for column, rtt in (("PG direct", None), ("PG 0 ms", 0.0))]
    fill_direct_round_trips(records)
    direct = [r for r in records if r["rtt_ms"] is None]
    assert [(r["repeat"], r["round_trips_per_step"]) for r in direct] == [(0, 3.5), (1, 3.1)]
    assert all(r["round_trips_from"] == "PG 0 ms" for r in direct)


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process may use CPUs 0-3, whatever the machine has."""
    monkeypatch.setattr(scaling.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})


@pytest.mark.usefixtures("four_cpus")
def test_the_workers_get_every_cpu_the_server_does_not() -> None:
    assert split_cpus([3]) == ({3}, {0, 1, 2})
    assert split_cpus([1, 2]) == ({1, 2}, {0, 3})


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize(("cpus", "message"), [
    ([0, 1, 2, 3], "0,1,2,3 leaves no CPU for the workers"),
    ([1, 7], "CPU 7 is not one this process may use"),
])
def test_a_bad_split_names_the_option(cpus: list[int], message: str) -> None:
    with pytest.raises(SystemExit, match=f"--server-cpus: {message}"):
        split_cpus(cpus)


@pytest.mark.postgres
@pytest.mark.replication
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
