"""``shinka.database.async_dbase``: ShinkaEvolve's ``AsyncProgramDatabase`` wrapper.

ShinkaEvolve's async class wraps a synchronous ``ProgramDatabase`` and runs each call in a
thread, opening a new connection every time. Here each ``*_async`` method awaits the Genesis
engine behind that facade directly, on the facade's event loop, without blocking the
caller's loop and without a thread per call. Names, keywords, return shapes and the error
behaviour of ShinkaEvolve 0.0.7 are kept (reads that it answers with ``[]``, ``0`` or
``0.5`` on error still do); ``foo_async`` also works for any synchronous ``foo`` of the
facade, and every other attribute is the facade's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from genesis.compat.shinka.dbase import ProgramDatabase
from genesis.database import portal
from genesis.database.engine import AsyncProgramDatabase as Engine
from genesis.database.program import Program

__all__ = ["AsyncProgramDatabase"]

log = logging.getLogger(__name__)
T = TypeVar("T")
BatchItem = tuple[Program, str | None, list[str] | None, list[str] | None, str | None,
                  dict[str, Any] | None, list[float] | None, float]


class AsyncProgramDatabase:
    """Async access to a ShinkaEvolve ``ProgramDatabase`` (``sync_db``) of Genesis."""

    def __init__(
        self,
        sync_db: ProgramDatabase,
        max_workers: int = 1,
        embedding_recompute_interval: int = 10,
        enable_deadlock_debugging: bool = False,
    ) -> None:
        self.sync_db = sync_db
        self.max_workers = max(1, int(max_workers))
        self.embedding_recompute_interval = max(1, int(embedding_recompute_interval))
        self.enable_deadlock_debugging = enable_deadlock_debugging
        self.programs_added_since_embedding_recompute = 0
        self._embedded_at_last_recompute = 0
        self._embedding_recompute_task: asyncio.Task[None] | None = None

    async def _engine_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        engine: Engine = self.sync_db._engine()
        return await portal.run(functools.partial(getattr(engine, name), *args, **kwargs))

    async def _or_default(self, default: T, name: str, *args: Any) -> T:
        """A read that ShinkaEvolve answers with a default on error: log and answer it."""
        try:
            return await self._engine_call(name, *args)
        except Exception as exc:
            log.error("error in %s: %s", name, exc)
            return default

    # Sampling ----------------------------------------------------------------------------

    async def sample_async(
        self, target_generation: int | None = None, novelty_attempt: int | None = None,
        max_novelty_attempts: int | None = None, resample_attempt: int | None = None,
        max_resample_attempts: int | None = None,
    ) -> tuple[Program, list[Program], list[Program]]:
        """Sample (parent, archive inspirations, top-k inspirations)."""
        return await self._engine_call("sample", target_generation, novelty_attempt,
                                       max_novelty_attempts, resample_attempt,
                                       max_resample_attempts)

    async def sample_with_fix_mode_async(
        self, target_generation: int | None = None, novelty_attempt: int | None = None,
        max_novelty_attempts: int | None = None, resample_attempt: int | None = None,
        max_resample_attempts: int | None = None,
    ) -> tuple[Program, list[Program], list[Program], bool]:
        """Sample (parent, archive inspirations, top-k inspirations, needs_fix)."""
        return await self._engine_call("sample_with_fix_mode", target_generation,
                                       novelty_attempt, max_novelty_attempts,
                                       resample_attempt, max_resample_attempts)

    async def batch_sample_async(
        self, num_samples: int
    ) -> list[tuple[Program, list[Program], list[Program]]]:
        """Sample ``num_samples`` times concurrently; failed samples are left out."""
        results = await asyncio.gather(*(self.sample_async() for _ in range(num_samples)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a sample failed: %s", result)
        return [r for r in results if not isinstance(r, BaseException)]

    async def update_beam_search_parent_async(self, parent_id: str) -> None:
        """Record the beam-search parent (a failure is logged, not raised)."""
        try:
            await self._engine_call("set_beam_search_parent_id", parent_id)
        except Exception as exc:
            log.warning("could not update beam_search_parent_id: %s", exc)

    # Writing -----------------------------------------------------------------------------

    async def add_program_async(
        self,
        program: Program,
        parent_id: str | None = None,
        archive_insp_ids: list[str] | None = None,
        top_k_insp_ids: list[str] | None = None,
        code_diff: str | None = None,
        meta_patch_data: dict[str, Any] | None = None,
        code_embedding: list[float] | None = None,
        embed_cost: float = 0.0,
        verbose: bool = False,
        defer_maintenance: bool = False,
    ) -> bool:
        """Add a program; True if it was stored, False if its ``source_job_id`` already was.

        The keywords overwrite the program's fields when given, as ShinkaEvolve does;
        ``meta_patch_data``, ``code_embedding`` and ``embed_cost`` are kept as attributes of
        the object only (the runner puts them in the program's fields itself).
        """
        if parent_id:
            program.parent_id = parent_id
        if archive_insp_ids:
            program.archive_inspiration_ids = archive_insp_ids
        if top_k_insp_ids:
            program.top_k_inspiration_ids = top_k_insp_ids
        if code_diff:
            program.code_diff = code_diff
        if meta_patch_data:
            program.meta_patch_data = meta_patch_data  # type: ignore[attr-defined]
        if code_embedding:
            program.code_embedding = code_embedding  # type: ignore[attr-defined]
        program.embed_cost = embed_cost  # type: ignore[attr-defined]
        stored = await self._engine_call("add", program, verbose, defer_maintenance)
        added = stored == program.id
        if added:
            self._count_added(program)
        return added

    async def add_programs_batch_async(self, programs_data: Sequence[BatchItem]) -> None:
        """Add several programs, each given as ShinkaEvolve's 8-tuple of add arguments."""
        for program, parent, archive, top_k, diff, meta, embedding, cost in programs_data:
            await self.add_program_async(program, parent, archive, top_k, diff, meta,
                                         embedding, cost)

    async def run_program_maintenance_async(
        self, program: Program, verbose: bool = False, recompute_embeddings: bool = False
    ) -> None:
        """Run the archive/best/migration maintenance deferred at add time."""
        await self._engine_call("run_post_add_maintenance", program, verbose,
                                recompute_embeddings)

    async def update_program_metadata_async(self, program_id: str,
                                            metadata: dict[str, Any]) -> None:
        """Replace a stored program's metadata."""
        await self._engine_call("update_program_metadata", program_id, dict(metadata))

    async def record_attempt_event_async(self, generation: int, stage: str, status: str,
                                         details: dict[str, Any] | None = None) -> None:
        """Append an attempt lifecycle event."""
        await self._engine_call("record_attempt_event", generation, stage, status, details)

    async def record_generation_event_async(self, generation: int, status: str,
                                            source_job_id: str | None = None,
                                            details: dict[str, Any] | None = None) -> None:
        """Append a generation lifecycle event."""
        await self._engine_call("record_generation_event", generation, status, source_job_id,
                                details)

    # Reads -------------------------------------------------------------------------------

    async def get_async(self, program_id: str) -> Program | None:
        """The program with this id, or None."""
        return await self._engine_call("get", program_id)

    async def get_best_program_async(self) -> Program | None:
        """The best correct program, or None."""
        return await self._engine_call("get_best_program")

    async def has_program_with_source_job_id_async(self, source_job_id: str) -> bool:
        """True if the job's program is stored."""
        return await self._engine_call("has_program_with_source_job_id", source_job_id)

    async def get_program_by_source_job_id_async(self, source_job_id: str) -> Program | None:
        """The program the job produced, if stored."""
        return await self._engine_call("get_program_by_source_job_id", source_job_id)

    async def get_programs_by_generation_async(self, generation: int) -> list[Program]:
        """The programs of one generation ([] on error)."""
        return await self._or_default([], "get_programs_by_generation", generation)

    async def get_total_program_count_async(self) -> int:
        """The number of programs (0 on error)."""
        return await self._or_default(0, "count")

    async def get_persisted_generation_ids_async(self) -> list[int]:
        """The distinct stored generations, ascending ([] on error)."""
        return await self._or_default([], "get_generations")

    async def get_top_programs_async(self, n: int = 10,
                                     correct_only: bool = True) -> list[Program]:
        """Up to ``n`` programs, best first ([] on error)."""
        try:
            return await self._engine_call("get_top_programs", n, "combined_score",
                                           correct_only)
        except Exception as exc:
            log.error("error in get_top_programs: %s", exc)
            return []

    async def compute_percentile_async(self, score: float, correct_only: bool = True) -> float:
        """Share of scored programs that ``score`` beats, ties half (0.5 if none or error)."""
        return await self._or_default(0.5, "score_percentile", score, correct_only)

    # Embedding projections ---------------------------------------------------------------

    def _count_added(self, program: Program) -> None:
        """Recompute projections in the background as the run grows (geometric spacing).

        ShinkaEvolve recomputes after every ``embedding_recompute_interval`` adds, which
        re-reads every embedding each time; here a recomputation also waits until the run
        has grown by a tenth, so the total work stays proportional to n log n.
        """
        if not program.embedding or not self.sync_db.embedding_model or self.sync_db.read_only:
            return
        self.programs_added_since_embedding_recompute += 1
        due = max(self.embedding_recompute_interval, self._embedded_at_last_recompute // 10)
        running = self._embedding_recompute_task is not None and \
            not self._embedding_recompute_task.done()
        if self.programs_added_since_embedding_recompute >= due and not running:
            self._embedding_recompute_task = asyncio.ensure_future(self._recompute())

    async def _recompute(self) -> None:
        self.programs_added_since_embedding_recompute = 0
        try:
            self._embedded_at_last_recompute = await self._engine_call(
                "recompute_embedding_projections")
        except Exception as exc:
            log.error("error in background embedding recomputation: %s", exc)

    async def force_recompute_embeddings_async(self) -> None:
        """Recompute every program's PCA projections and cluster now, and wait for it."""
        task = self._embedding_recompute_task
        if task is not None and not task.done():
            await task
        await self._recompute()

    async def close_async(self) -> None:
        """Stop background work (the synchronous database stays open, as in ShinkaEvolve)."""
        task = self._embedding_recompute_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def __getattr__(self, name: str) -> Any:
        if name == "sync_db":  # not set yet (copying, unpickling): no delegation loop
            raise AttributeError(name)
        if name.endswith("_async") and callable(getattr(self.sync_db, name[:-6], None)):
            method: Callable[..., Any] = getattr(self.sync_db, name[:-6])

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await asyncio.to_thread(method, *args, **kwargs)

            return call
        return getattr(self.sync_db, name)

