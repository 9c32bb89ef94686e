"""``/metrics``: the runs' figures in the Prometheus text format (prometheus-client).

Each scrape reads every open run's counters afresh (island counters, the best program, a
count of the last minute's programs through the timestamp index, the advisory locks held
and awaited on PostgreSQL) and the view's own figures (its connection pools, queries run,
rows read, live subscribers), then renders them from a registry of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from genesis.database.islands import LAST_MIGRATION_KEY
from genesis.database.protocol import (
    MAINTENANCE_CONFLICTS,
    MAINTENANCE_LOCKED_RUNS,
    MAINTENANCE_RUNS,
)
from genesis.view.runs import RunView

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LOCKS = ("maintenance", "islands")


class _Snapshot(Collector):
    """A collector that yields metric families gathered before the scrape."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


async def _families(runs: Sequence[RunView]) -> list[Metric]:
    run = ["run"]
    g = {
        "programs": _gauge("genesis_programs", "Programs stored in the run.", run),
        "correct": _gauge("genesis_programs_correct", "Correct programs in the run.", run),
        "best": _gauge("genesis_best_score", "Best combined score of a correct program.", run),
        "rate": _gauge("genesis_adds_per_second",
                       "Programs added per second over the last minute (their timestamps).", run),
        "archive": _gauge("genesis_archive_programs", "Programs in the archive.", run),
        "iteration": _gauge("genesis_last_iteration", "Highest generation added.", run),
        "migration": _gauge("genesis_last_migration_generation",
                            "Generation of the last island migration (maintenance).", run),
        "schema": _gauge("genesis_schema_version", "Schema version of the run.", run),
        "island": _gauge("genesis_island_programs", "Programs per island.", [*run, "island"]),
        "island_correct": _gauge("genesis_island_programs_correct", "Correct programs per island.",
                                 [*run, "island"]),
        "island_best": _gauge("genesis_island_best_score", "Best correct score per island.",
                              [*run, "island"]),
        "locks": _gauge("genesis_lock_sessions",
                        "Sessions holding (granted) or waiting for a run's write lock "
                        "(PostgreSQL advisory locks, now).", [*run, "lock", "state"]),
        "pool": _gauge("genesis_view_pool_connections",
                       "The view's PostgreSQL pool: connections open, in use, requests waiting.",
                       [*run, "state"]),
        "connections": _gauge("genesis_run_connections",
                              "Server connections of the run's workers, every process's pool "
                              "(application_name genesis/<run>), by state.", [*run, "state"]),
        "subscribers": _gauge("genesis_view_live_subscribers", "Pages receiving live updates.",
                              run),
    }
    maintenance = {
        MAINTENANCE_RUNS: CounterMetricFamily(
            "genesis_maintenance_runs", "Maintenance passes applied (archive, best program, "
            "migrations), by every worker of the run.", labels=run),
        MAINTENANCE_CONFLICTS: CounterMetricFamily(
            "genesis_maintenance_conflicts", "Maintenance decisions refused because another "
            "worker changed the selection state first (then made again).", labels=run),
        MAINTENANCE_LOCKED_RUNS: CounterMetricFamily(
            "genesis_maintenance_locked_runs", "Maintenance passes made under the maintenance "
            "lock (spawning an island, or after repeated conflicts).", labels=run),
    }
    queries = CounterMetricFamily("genesis_view_queries", "Queries the view has run.", labels=run)
    rows = CounterMetricFamily("genesis_view_rows_read", "Rows the view's queries returned.",
                               labels=run)
    now = time.time()
    for view in runs:
        name = [view.name]
        async with view.queries(snapshot=True) as q:
            islands = await q.islands()
            best = await q.top(1)
            recent = await q.added_since(now - 60)
            meta = await q.metadata(["last_iteration", LAST_MIGRATION_KEY, *maintenance])
            archive = len(await q.archive())
            locks = (await q.advisory_locks(view.store.schema, _LOCKS)  # type: ignore[attr-defined]
                     if view.url.is_postgres else [])
            connections = (await q.run_connections(f"genesis/{view.url.run}")
                           if view.url.is_postgres else {})
        g["programs"].add_metric(name, sum(i.programs for i in islands))
        g["correct"].add_metric(name, sum(i.correct for i in islands))
        if best and best[0].score is not None:
            g["best"].add_metric(name, best[0].score)
        g["rate"].add_metric(name, recent / 60)
        g["archive"].add_metric(name, archive)
        for key, family in (("last_iteration", "iteration"), (LAST_MIGRATION_KEY, "migration")):
            value = meta.get(key)
            if value:
                g[family].add_metric(name, float(value))
        for key, counter in maintenance.items():
            counter.add_metric(name, float(meta.get(key) or 0))
        g["schema"].add_metric(name, await view.store.schema_version())
        for island in islands:
            labels = [view.name, str(island.island)]
            g["island"].add_metric(labels, island.programs)
            g["island_correct"].add_metric(labels, island.correct)
            if island.best_score is not None:
                g["island_best"].add_metric(labels, island.best_score)
        if view.url.is_postgres:
            for lock in _LOCKS:
                for state, granted in (("held", True), ("waiting", False)):
                    count = sum(c for n, ok, c in locks if n == lock and ok == granted)
                    g["locks"].add_metric([view.name, lock, state], count)
            for state, count in connections.items():
                g["connections"].add_metric([view.name, state], count)
            pool = (await view.store.stats())["pool"]
            size, idle = pool.get("pool_size", 0), pool.get("pool_available", 0)
            for state, value in (("open", size), ("in_use", size - idle),
                                 ("waiting", pool.get("requests_waiting", 0)),
                                 ("max", pool.get("pool_max", 0))):
                g["pool"].add_metric([view.name, state], value)
        g["subscribers"].add_metric(name, view.feed.subscribers)
        queries.add_metric(name, view.counter.queries)
        rows.add_metric(name, view.counter.rows)
    return [*g.values(), *maintenance.values(), queries, rows]


async def render(runs: Sequence[RunView]) -> bytes:
    """Return the metrics of these runs in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await _families(runs)))
    return generate_latest(registry)
