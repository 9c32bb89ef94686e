"""Statistics of a run: ``genesis db stats``.

Everything comes from indexed queries and the island counters, read in one snapshot, plus
the backend's own statistics (file sizes for SQLite; pool counters, table and index sizes
for PostgreSQL) and where the run lives (for PostgreSQL: the server, database and user the
URL resolved to, libpq's defaults and ``PG*`` variables included). Nothing is written.
"""

from __future__ import annotations

from typing import Any

from genesis.database.url import DatabaseURL
from genesis.ops.stores import as_url, open_source

__all__ = ["run_stats"]


def _size(storage: dict[str, Any]) -> int:
    """Bytes the run occupies: the SQLite file and its log, or the schema's tables."""
    if storage.get("backend") == "sqlite":
        return int(storage.get("file_bytes", 0)) + int(storage.get("wal_bytes", 0))
    return sum(int(table["total_bytes"]) for table in storage.get("tables", {}).values())


def _iteration(value: str | None) -> int | None:
    """The ``last_iteration`` metadata value as a number (None if absent or not a number)."""
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


async def run_stats(url: DatabaseURL | str) -> dict[str, Any]:
    """Return a run's statistics as a JSON-ready dict."""
    url = as_url(url)
    async with open_source(url) as store:
        async with store.read(snapshot=True) as reader:
            totals = await reader.totals()
            islands = await reader.island_stats()
            best = await reader.best_program()
            archive = await reader.archive_count()
            last_iteration = await reader.get_metadata("last_iteration")
            _, last_activity = await reader.count_and_last_timestamp()
        version = await store.schema_version()
        storage = await store.stats()
        location = store.describe()
    return {
        "url": str(url),
        "location": location,
        "backend": url.backend,
        "schema_version": version,
        "programs": totals.programs,
        "correct": totals.correct,
        "incorrect": totals.programs - totals.correct,
        "islands": [{"island": s.island_idx, "programs": s.programs, "correct": s.correct,
                     "best_score": s.best_score} for s in islands],
        "best": None if best is None else {
            "id": best.id, "score": best.combined_score, "generation": best.generation,
            "island": best.island_idx},
        "archive": archive,
        "last_iteration": _iteration(last_iteration),
        "generations": totals.generations,
        "last_generation": totals.last_generation,
        "last_activity": last_activity,
        "size_bytes": _size(storage),
        "storage": storage,
    }
