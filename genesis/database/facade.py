"""``ProgramDatabase``: ShinkaEvolve's synchronous API over :class:`AsyncProgramDatabase`.

Old callers keep working unchanged::

    from genesis.database import DatabaseConfig, Program, ProgramDatabase

    db = ProgramDatabase(DatabaseConfig(db_path="evolution_db.sqlite"))
    db.add(Program(id="p0", code="...", correct=True, combined_score=0.5))
    parent, archive, top_k = db.sample()

Every method is the async method of the same name, run on a shared background event loop
(:mod:`genesis.database.portal`) and sharing its docstring. The facade may be used from
several threads at once, and after ``os.fork()`` the child reopens its own connections
on first use. Inside async code, use ``AsyncProgramDatabase`` directly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from genesis.database import portal
from genesis.database.config import DatabaseConfig
from genesis.database.engine import AsyncProgramDatabase
from genesis.database.errors import OperationalError

__all__ = ["ProgramDatabase"]

# Objects a forked child inherited: never closed there (closing would act on sockets and
# file locks the parent still uses), only kept from the garbage collector.
_INHERITED: list[Any] = []


def _sync(name: str) -> Callable[..., Any]:
    """A synchronous method running ``AsyncProgramDatabase.<name>`` on the portal."""
    coroutine = getattr(AsyncProgramDatabase, name)

    @functools.wraps(coroutine)
    def method(self: ProgramDatabase, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    return method


def _value(name: str, doc: str) -> property:
    """A read-only attribute fetched fresh from the database (never a stale copy)."""
    return property(lambda self: self._call(name), doc=doc)


class ProgramDatabase:
    """The legacy synchronous program database (thread-safe, fork-safe)."""

    def __init__(
        self,
        config: DatabaseConfig,
        embedding_model: str = "text-embedding-3-small",
        read_only: bool = False,
    ) -> None:
        self.config = config
        self.embedding_model = embedding_model
        self.read_only = read_only
        self._closed = False
        self._open()
        portal.closing_at_exit(self)

    def _open(self) -> None:
        self._pid = os.getpid()
        self._db = AsyncProgramDatabase(self.config, self.embedding_model, self.read_only)
        portal.call(self._db.open)

    def _engine(self) -> AsyncProgramDatabase:
        """The async engine behind this facade (reopened after a fork)."""
        if self._closed:
            raise OperationalError("the database is closed")
        if os.getpid() != self._pid:  # forked: the parent's connections are not ours
            _INHERITED.append(self._db)
            self._open()
        return self._db

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._engine(), name)
        return portal.call(functools.partial(method, *args, **kwargs))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ProgramDatabase {self._db.url} {state}>"

    def close(self) -> None:
        """Finish pending maintenance and writes, then release connections (idempotent)."""
        if self._closed:
            return
        if os.getpid() == self._pid:
            portal.call(self._db.close)
        self._closed = True

    def __enter__(self) -> ProgramDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> Any:
        """The database URL (password hidden in its str and repr)."""
        return self._db.url

    def set_display_console(self, console: Any) -> None:
        """Accepted for compatibility; summaries print to stdout or ``console``."""
        self.display_console = console

    # Writing.
    add = _sync("add")
    add_many = _sync("add_many")
    run_post_add_maintenance = _sync("run_post_add_maintenance")
    run_post_add_maintenance_batch = _sync("run_post_add_maintenance_batch")
    check_scheduled_operations = _sync("check_scheduled_operations")
    check_and_spawn_island_if_stagnant = _sync("check_and_spawn_island_if_stagnant")
    migrate_islands = _sync("migrate_islands")
    spawn_new_island = _sync("spawn_new_island")
    record_generation_event = _sync("record_generation_event")
    record_attempt_event = _sync("record_attempt_event")
    set_beam_search_parent_id = _sync("set_beam_search_parent_id")
    update_program_metadata = _sync("update_program_metadata")
    recompute_embedding_projections = _sync("recompute_embedding_projections")
    save = _sync("save")
    load = _sync("load")
    flush = _sync("flush")

    # Sampling and reading.
    sample = _sync("sample")
    sample_with_fix_mode = _sync("sample_with_fix_mode")
    get = _sync("get")
    get_best_program = _sync("get_best_program")
    get_top_programs = _sync("get_top_programs")
    get_all_programs = _sync("get_all_programs")
    get_programs_by_generation = _sync("get_programs_by_generation")
    get_ancestry = _sync("get_ancestry")

    # Questions (genesis.database.questions).
    search_code = _sync("search_code")
    query = _sync("query")
    lineage = _sync("lineage")
    common_ancestor = _sync("common_ancestor")
    to_dataframe = _sync("to_dataframe")
    create_index = _sync("create_index")
    drop_index = _sync("drop_index")
    indexes = _sync("indexes")

    get_program_count_and_timestamp = _sync("get_program_count_and_timestamp")
    count = _sync("count")
    island_stats = _sync("island_stats")
    has_program_with_source_job_id = _sync("has_program_with_source_job_id")
    get_program_by_source_job_id = _sync("get_program_by_source_job_id")
    compute_similarity = _sync("compute_similarity")
    get_most_similar_program = _sync("get_most_similar_program")
    is_stagnant = _sync("is_stagnant")
    get_metadata = _sync("get_metadata")
    get_last_iteration = _sync("get_last_iteration")
    get_best_program_id = _sync("get_best_program_id")
    get_beam_search_parent_id = _sync("get_beam_search_parent_id")
    get_best_score_ever = _sync("get_best_score_ever")
    get_best_score_generation = _sync("get_best_score_generation")
    get_last_migration_generation = _sync("get_last_migration_generation")
    get_generations = _sync("get_generations")
    score_percentile = _sync("score_percentile")
    population_telemetry = _sync("population_telemetry")
    summary = _sync("summary")
    print_summary = _sync("print_summary")

    # ShinkaEvolve's "thread-safe" variants (every method here is thread-safe), with their
    # own parameter names and defaults: callers pass them positionally.
    get_most_similar_program_thread_safe = get_most_similar_program
    get_programs_by_generation_thread_safe = get_programs_by_generation

    def compute_similarity_thread_safe(self, vec: Any, island_idx: int) -> list[float]:
        """Cosine similarity of ``vec`` with every embedded program of an island."""
        return self._call("compute_similarity", vec, island_idx)

    def get_top_programs_thread_safe(self, n: int = 10, correct_only: bool = True) -> list[Any]:
        """Up to ``n`` programs by combined score, best first (correct ones by default)."""
        return self._call("get_top_programs", n, "combined_score", correct_only)

    # Legacy attributes, read from the database on every access.
    last_iteration = _value("get_last_iteration", "The highest generation stored so far.")
    best_program_id = _value("get_best_program_id", "The id of the tracked best program.")
    best_score_ever = _value("get_best_score_ever", "The best score seen so far.")
    best_score_generation = _value("get_best_score_generation",
                                   "The generation at which the best score was found.")

    @property
    def beam_search_parent_id(self) -> str | None:
        """The current beam-search parent."""
        return self._call("get_beam_search_parent_id")

    @beam_search_parent_id.setter
    def beam_search_parent_id(self, program_id: str | None) -> None:
        self._call("set_beam_search_parent_id", program_id)
