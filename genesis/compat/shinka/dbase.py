"""``shinka.database.dbase``: ShinkaEvolve's ``ProgramDatabase``, ``Program``, ``DatabaseConfig``.

``ProgramDatabase`` is Genesis' synchronous facade plus what ShinkaEvolve's runner, novelty
judge, summarizer and web UI use beyond the legacy API: ``island_manager`` and
``island_sampler``, ``cursor``/``conn`` for their own SQL, ``get_programs_summary()``,
``get_population_telemetry()``, and the private helpers its async wrapper calls. Every one
maps onto the engine; nothing here keeps state that other processes could not see.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from genesis.compat.shinka.cursor import LegacyConnection, LegacyCursor
from genesis.compat.shinka.islands import IslandManager, IslandSampler
from genesis.database import portal
from genesis.database.config import DatabaseConfig
from genesis.database.engine import AsyncProgramDatabase as Engine
from genesis.database.facade import ProgramDatabase as Facade
from genesis.database.program import Program

__all__ = ["DatabaseConfig", "Program", "ProgramDatabase"]

T = TypeVar("T")
log = logging.getLogger("genesis.compat.shinka")
_SUMMARY_FIELDS = (
    "id", "parent_id", "generation", "timestamp", "combined_score", "correct", "complexity",
    "island_idx", "children_count", "public_metrics", "private_metrics", "metadata",
    "embedding_pca_2d", "embedding_pca_3d", "embedding_cluster_id", "language",
    "text_feedback", "top_k_inspiration_ids", "archive_inspiration_ids", "migration_history",
    "in_archive",
)


async def _program_summaries(engine: Engine) -> list[dict[str, Any]]:
    """Every program without its code and embedding, in insertion order, one snapshot."""
    rows: list[dict[str, Any]] = []
    async with engine.store.read(snapshot=True) as reader:
        async for batch in reader.iter_programs():
            rows += [{name: getattr(p, name) for name in _SUMMARY_FIELDS} for p in batch]
    return rows


async def _set_run_metadata(engine: Engine, key: str, value: str | None) -> None:
    await engine.store.transaction(lambda writer: writer.set_metadata(key, value))


class ProgramDatabase(Facade):
    """ShinkaEvolve's synchronous ``ProgramDatabase`` on the Genesis engine."""

    def __init__(
        self,
        config: DatabaseConfig,
        embedding_model: str = "text-embedding-3-small",
        read_only: bool = False,
    ) -> None:
        if config.sqlite_legacy_embedding is None:  # ShinkaEvolve reads SQLite files itself
            config.sqlite_legacy_embedding = True
        super().__init__(config, embedding_model, read_only)
        self.display_console: Any = None
        self.embedding_client: Any = None  # embeddings arrive with programs; none is made here
        self.island_manager = IslandManager(self)
        self.island_sampler = IslandSampler(self)
        self._legacy: LegacyConnection | None = None
        self._legacy_cursor: LegacyCursor | None = None
        self._warn_if_restarting()

    def _warn_if_restarting(self) -> None:
        """Say so when ShinkaEvolve's runner cannot see that this run already exists.

        The runner resumes only when its SQLite file exists; on PostgreSQL there is none, so
        a rerun in the same results folder starts over inside the same run.
        """
        path = self.config.db_path
        if self.read_only or not self.url.is_postgres or not path or Path(path).exists():
            return
        last = self.last_iteration
        if last > 0:
            log.warning("run %r at %s already holds generations up to %d; ShinkaEvolve "
                        "resumes only from its SQLite file, so this start adds a new initial "
                        "program to the same run (name a new run with GENESIS_RUN or "
                        "`genesis shinka --run` to keep them apart)", self.url.run,
                        self.url.endpoint, last)

    def _run(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``function(engine, *args)`` on the portal loop."""
        return portal.call(functools.partial(function, self._engine(), *args))

    @property
    def conn(self) -> LegacyConnection:
        """A DB-API connection to the run, for ShinkaEvolve's own SQL (see ``cursor``)."""
        if self._legacy is None:
            self._legacy = LegacyConnection(self)
        return self._legacy

    @property
    def cursor(self) -> LegacyCursor:
        """The shared cursor ShinkaEvolve's code runs its SQL on (``?`` placeholders)."""
        if self._legacy_cursor is None:
            self._legacy_cursor = self.conn.cursor()
        return self._legacy_cursor

    def get_programs_summary(self) -> list[dict[str, Any]]:
        """Every program as a dict without code or embedding (what the web UI plots)."""
        return self._run(_program_summaries)

    def get_population_telemetry(self) -> list[dict[str, Any]]:
        """Per-island aggregates (counts, scores, costs, timings) computed by the database."""
        return self.population_telemetry()

    def _count_programs_in_db(self) -> int:
        return self.count()

    def _update_metadata_in_db(self, key: str, value: str | None) -> None:
        if not self.read_only:
            self._run(_set_run_metadata, key, value)

    def _recompute_embeddings_and_clusters(self, num_clusters: int = 4) -> None:
        if not self.read_only:
            self.recompute_embedding_projections(num_clusters)

    _recompute_embeddings_and_clusters_thread_safe = _recompute_embeddings_and_clusters

    def close(self) -> None:
        """Close the raw-SQL connection (uncommitted statements roll back), then the run."""
        if self._legacy is not None:
            self._legacy.close()
            self._legacy = self._legacy_cursor = None
        super().close()
