"""The async storage protocol: what every backend provides to the evolution engine.

A backend is a :class:`ProgramStore`. Reads happen in a :class:`StoreReader` obtained from
``store.read()``; read-modify-write sequences happen in a :class:`StoreWriter`, either
interactively with ``async with store.write(lock=...)`` or, preferably, as a function given
to ``store.transaction(work, lock=...)``; either is one transaction. Single programs from
many tasks go through ``store.add()``, which gathers concurrent calls into one transaction
(group commit).

Every query the engine needs is indexed: nothing here loads a whole table. Island counts
come from a small ``islands`` table kept exact by the database itself (triggers), so
``island_stats()`` costs O(number of islands) whatever the size of the run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from genesis.database.code_search import SearchHit, SearchTerms
from genesis.database.json_indexes import JsonIndex
from genesis.database.program import Program
from genesis.database.query_language import Field, Node, OrderKey
from genesis.database.url import DatabaseURL

__all__ = [
    "MIGRATION_TOKEN",
    "SELECTION_TOKEN",
    "AttemptEvent",
    "GenerationEvent",
    "IslandStats",
    "LineageStep",
    "Order",
    "ProgramStore",
    "ProgramSummary",
    "RunTotals",
    "SelectionState",
    "StoreReader",
    "StoreWriter",
    "UpgradeProgress",
]

Order = Literal["score", "generation", "timestamp", "id"]
T = TypeVar("T")


@dataclass(frozen=True)
class IslandStats:
    """Counts of one island: all programs, correct ones, and the best correct score."""

    island_idx: int
    programs: int
    correct: int
    best_score: float | None


@dataclass(frozen=True)
class ProgramSummary:
    """The few columns selection needs, without code, metrics or embedding."""

    id: str
    island_idx: int | None
    generation: int
    combined_score: float | None
    correct: bool
    children_count: int
    timestamp: float


@dataclass(frozen=True)
class LineageStep:
    """A program met on a walk through the lineage, ``depth`` steps away (``get`` it whole)."""

    depth: int
    id: str
    parent_id: str | None
    generation: int
    island_idx: int | None
    combined_score: float | None
    correct: bool


@dataclass(frozen=True)
class RunTotals:
    """Counts over a whole run: programs, correct ones, and its generations."""

    programs: int
    correct: int
    generations: int
    last_generation: int | None


@dataclass(frozen=True)
class SelectionState:
    """What sampling and maintenance decide from, read in one flight: the islands' counts,
    the archive, the best program and the run's selection metadata.

    ``token`` changes with every write to the archive, the best program, the islands'
    membership or the migration and stagnation clocks: maintenance applies its decisions
    only while the token it decided from is still current (compare-and-set).
    """

    islands: tuple[IslandStats, ...]
    archive: tuple[ProgramSummary, ...]
    best: ProgramSummary | None
    metadata: dict[str, str | None]

    @property
    def token(self) -> str | None:
        """The token of this state (None before the first maintenance)."""
        return self.metadata.get(SELECTION_TOKEN)


SELECTION_TOKEN = "selection_token"  # metadata_store key of the selection state's token
# metadata_store key renewed by every migration: concurrent migrations refuse each other's
# decisions on it, while offers (which renew only the selection token) do not.
MIGRATION_TOKEN = "migration_token"
# metadata_store counters of maintenance, for monitoring (genesis view's /metrics):
MAINTENANCE_RUNS = "maintenance_runs"  # maintenance passes applied
MAINTENANCE_CONFLICTS = "maintenance_conflicts"  # decisions refused: another worker came first
MAINTENANCE_LOCKED_RUNS = "maintenance_locked_runs"  # passes made under the maintenance lock


@dataclass(frozen=True)
class GenerationEvent:
    """A row of the generation event log."""

    generation: int
    status: str
    source_job_id: str | None
    details: dict[str, Any] | None
    created_at: float


@dataclass(frozen=True)
class AttemptEvent:
    """A row of the attempt log."""

    generation: int
    stage: str
    status: str
    details: dict[str, Any] | None
    created_at: float


class UpgradeProgress(Protocol):
    """What a schema upgrade counts its batched work on (``genesis.cli.progress.Progress``)."""

    total: int | None

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more programs done."""
        ...


@runtime_checkable
class StoreReader(Protocol):
    """Indexed reads of one run."""

    async def get(self, program_id: str) -> Program | None:
        """Return the program with this id, or None."""
        ...

    async def get_many(self, program_ids: Sequence[str]) -> list[Program]:
        """Return the programs with these ids in the given order, skipping missing ones."""
        ...

    async def summaries(self, program_ids: Sequence[str]) -> list[ProgramSummary]:
        """Return summaries of these programs in the given order, skipping missing ones."""
        ...

    async def count(self) -> int:
        """Return the number of programs."""
        ...

    async def count_and_last_timestamp(self) -> tuple[int, float | None]:
        """Return the number of programs and the newest timestamp."""
        ...

    async def island_stats(self) -> list[IslandStats]:
        """Return per-island counts, ordered by island index."""
        ...

    async def totals(self) -> RunTotals:
        """Return the run's program and correct counts and its distinct generations."""
        ...

    async def earliest_program(self) -> Program | None:
        """Return the program with the smallest timestamp (the run's initial program)."""
        ...

    async def best_program(self, metric: str | None = None) -> Program | None:
        """Return the best correct program by combined_score (or a public metric)."""
        ...

    async def top_programs(
        self, n: int, metric: str | None = "combined_score", correct_only: bool = False
    ) -> list[Program]:
        """Return up to ``n`` programs, best first, by combined_score/timestamp/a metric."""
        ...

    async def nth_program(
        self,
        *,
        island: int | None,
        correct: bool | None,
        order: Order,
        descending: bool,
        offset: int = 0,
        min_generation: int | None = None,
    ) -> Program | None:
        """Return the program at ``offset`` in an indexed ordering of one island (or all)."""
        ...

    async def programs_by_generation(self, generation: int) -> list[Program]:
        """Return the programs of one generation."""
        ...

    def iter_programs(self, batch_size: int = 500) -> AsyncIterator[list[Program]]:
        """Yield every program in insertion order, ``batch_size`` at a time."""
        ...

    async def children(
        self, program_id: str, *, correct_only: bool = True, limit: int = 100
    ) -> list[Program]:
        """Return up to ``limit`` children of a program, best score first."""
        ...

    async def ancestry(self, program_id: str, max_ancestors: int = 10) -> list[Program]:
        """Return up to ``max_ancestors`` ancestors, oldest first."""
        ...

    async def lineage(self, program_id: str, direction: Literal["up", "down"] = "up",
                      max_depth: int | None = None) -> list[LineageStep]:
        """Return the ancestors (up) or descendants (down) of a program, nearest first."""
        ...

    async def common_ancestor(self, first: str, second: str) -> str | None:
        """Return the id of the nearest program both descend from (either one itself)."""
        ...

    async def search_code(self, terms: SearchTerms, *, limit: int = 20,
                          island: int | None = None, correct: bool | None = None
                          ) -> list[SearchHit]:
        """Return the programs whose code holds every word, best first, with a snippet."""
        ...

    async def query_rows(self, where: Node | None, columns: Sequence[Field],
                         order: Sequence[OrderKey], limit: int) -> list[dict[str, Any]]:
        """Return the chosen fields of the programs matching ``where``, in ``order``."""
        ...

    def iter_values(self, where: Node | None, columns: Sequence[Field],
                    batch_size: int = 5000) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Yield the chosen fields' values (a tuple per program) in insertion order."""
        ...

    async def json_keys(self, column: str) -> list[str]:
        """Return the distinct top-level keys of a JSON column."""
        ...

    async def json_indexes(self) -> list[JsonIndex]:
        """Return the run's JSON path indexes."""
        ...

    async def archive_members(self) -> list[ProgramSummary]:
        """Return every archive member (correct or not), sorted by id, in one query."""
        ...

    async def program_named_by(self, key: str) -> Program | None:
        """Return the program whose id a metadata key holds (best, beam parent), or None."""
        ...

    async def archive_summaries(self, island: int | None = None) -> list[ProgramSummary]:
        """Return the archive's correct members (of one island, or all)."""
        ...

    async def archive_count(self) -> int:
        """Return the number of archive members."""
        ...

    async def migration_candidates(self, islands: Sequence[int]
                                   ) -> dict[int, list[ProgramSummary]]:
        """Return each island's correct programs of generation > 0 (one round trip)."""
        ...

    async def by_source_job_id(self, job_id: str) -> Program | None:
        """Return the program produced by this job, through the unique index."""
        ...

    async def get_metadata(self, key: str) -> str | None:
        """Return a metadata_store value (None if absent)."""
        ...

    async def all_metadata(self) -> dict[str, str | None]:
        """Return the whole metadata_store."""
        ...

    async def embedding_ids(self, island: int) -> list[str]:
        """Return the ids of an island's programs that have an embedding, sorted."""
        ...

    async def embeddings(self, program_ids: Sequence[str]) -> dict[str, bytes]:
        """Return float64 embedding blobs of these programs."""
        ...

    async def generation_events(self) -> list[GenerationEvent]:
        """Return the generation event log, oldest first."""
        ...

    async def attempt_events(self) -> list[AttemptEvent]:
        """Return the attempt log, oldest first."""
        ...

    async def generations(self) -> list[int]:
        """Return the distinct generations stored, ascending (an index skip scan)."""
        ...

    async def score_rank(self, score: float, correct_only: bool) -> tuple[int, int, int]:
        """Return how many scored programs score below, equal to, and in all."""
        ...

    def iter_embeddings(self, batch_size: int = 1000) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Yield (id, float64 blob) of every embedded program in id order, in batches."""
        ...

    async def island_telemetry(self) -> list[dict[str, Any]]:
        """Return per-island aggregates: counts, scores, costs and timings from metadata."""
        ...


@runtime_checkable
class StoreWriter(StoreReader, Protocol):
    """One write transaction; it commits when the ``async with`` block exits cleanly."""

    async def insert(self, programs: Sequence[Program], *, count_children: bool = True) -> None:
        """Insert programs; bump parents' children_count and last_iteration."""
        ...

    async def set_metadata(self, key: str, value: str | None) -> None:
        """Set a metadata_store value."""
        ...

    async def delete_metadata(self, key: str) -> None:
        """Remove a metadata_store key (nothing if absent)."""
        ...

    async def raise_metadata(self, key: str, value: float) -> bool:
        """Set a numeric metadata value if it is larger than the stored one."""
        ...

    async def count_up(self, key: str) -> None:
        """Add one to a metadata counter (created at 1)."""
        ...

    async def archive_add(self, program_ids: Sequence[str]) -> None:
        """Add programs to the archive."""
        ...

    async def archive_remove(self, program_ids: Sequence[str]) -> None:
        """Remove programs from the archive."""
        ...

    async def move_program(self, program_id: str, island: int, event: dict[str, Any]) -> None:
        """Move a program to another island and append ``event`` to its migration history."""
        ...

    async def replace_metadata(self, program_id: str, metadata: dict[str, Any]) -> bool:
        """Replace a program's metadata (its job id column follows); True if it exists."""
        ...

    async def set_embedding_features(
        self, rows: Sequence[tuple[str, list[float], list[float], int | None]]
    ) -> None:
        """Store (id, 2-D projection, 3-D projection, cluster id) of embedded programs."""
        ...

    async def record_generation_event(self, event: GenerationEvent) -> None:
        """Append to the generation event log."""
        ...

    async def record_attempt_event(self, event: AttemptEvent) -> None:
        """Append to the attempt log."""
        ...


@runtime_checkable
class ProgramStore(Protocol):
    """A backend: lifecycle, reads, transactions, and group-committed inserts."""

    url: DatabaseURL
    read_only: bool

    async def open(self) -> None:
        """Connect, create or upgrade the schema, and get ready to serve."""
        ...

    async def close(self) -> None:
        """Flush pending inserts and release every connection (idempotent)."""
        ...

    async def __aenter__(self) -> ProgramStore: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def read(self, *, snapshot: bool = False, primary: bool = False
             ) -> AbstractAsyncContextManager[StoreReader]:
        """Borrow a reader; with ``snapshot`` all its reads see one consistent state.

        ``primary``: never a standby's (reads that decide writes: maintenance).
        """
        ...

    def write(self, *, lock: str | None = None) -> AbstractAsyncContextManager[StoreWriter]:
        """Open a write transaction; ``lock`` serialises writers that name the same key."""
        ...

    async def transaction(
        self, work: Callable[[StoreWriter], Awaitable[T]], *, lock: str | None = None
    ) -> T:
        """Run ``await work(writer)`` as one write transaction and return its result.

        ``work`` may await only the writer's methods: SQLite runs it whole on its writer
        thread (holding the write lock no longer than the SQL takes), and PostgreSQL runs
        it again when the transaction surely did not commit (lost connection, deadlock).
        """
        ...

    async def add(self, program: Program, *, count_children: bool = True) -> str:
        """Insert one program through group commit; return the id stored for it.

        If ``metadata["source_job_id"]`` names a job whose program is already stored, nothing
        is inserted and that program's id is returned.
        """
        ...

    async def add_returning_state(
        self, program: Program, *, count_children: bool = True
    ) -> tuple[str, SelectionState | None]:
        """Like :meth:`add`, also returning the selection state read after the commit."""
        ...

    async def add_many(
        self, programs: Sequence[Program], *, count_children: bool = True
    ) -> list[str]:
        """Insert programs in one transaction (all or none) and return their ids."""
        ...

    async def apply_changes(self, changes: Any, guards: Mapping[str, str | None]
                            ) -> tuple[bool, SelectionState]:
        """Apply a maintenance decision if each token key still holds its expected value.

        Returns whether it was applied, and the selection state after the attempt.
        """
        ...

    async def apply_offer(self, offer: Any, archive_size: int) -> SelectionState:
        """Apply an offer to the archive and the best program, whatever the state.

        Returns the selection state after it.
        """
        ...

    async def create_json_index(self, index: JsonIndex) -> bool:
        """Build an index on a JSON path and record it; False if it was already there."""
        ...

    async def drop_json_index(self, index: JsonIndex) -> bool:
        """Drop the index on a JSON path; False if there was none."""
        ...

    async def schema_version(self) -> int:
        """Return the schema version of the database."""
        ...

    def describe(self) -> str:
        """Say where the run lives: the file, or the server and database it resolved to."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Return backend statistics (pool counters, file or table sizes)."""
        ...
