"""``AsyncProgramDatabase``: the evolution semantics, on any storage backend.

This is the API evolution loops await. It owns island assignment, post-add maintenance
(archive, best program, migrations, dynamic islands), parent and inspiration sampling,
similarity, idempotency by ``source_job_id`` and the event logs. It talks to storage only
through the protocol (``genesis.database.protocol``), so it behaves identically on SQLite
and PostgreSQL, and every query it makes is indexed.

Concurrency: single adds are group-committed by the store; maintenance for concurrent adds
is gathered the same way and runs in one transaction holding the ``maintenance`` lock, so
many tasks, processes and machines can share a run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genesis.database.arguments import id_argument, int_argument
from genesis.database.backends import create_store
from genesis.database.backends.group_commit import GroupCommitter
from genesis.database.codec import check_code_size, check_identity, replace_nonfinite
from genesis.database.complexity import analyze_code_metrics
from genesis.database.config import DatabaseConfig
from genesis.database.display import format_summary
from genesis.database.errors import (
    InvalidProgramError,
    MaintenanceError,
    OperationalError,
    ReadOnlyError,
)
from genesis.database.inspirations import Drawn, draw_inspirations
from genesis.database.islands import (
    LAST_MIGRATION_KEY,
    assign_root_island,
    configured_islands,
    island_copies,
    migrate,
    spawn_island,
)
from genesis.database.maintenance import (
    default_policy,
    due_migration,
    maintain,
    needs_maintenance,
    update_archive,
)
from genesis.database.offers import commutes, offer_of
from genesis.database.optimistic import Changes, NeedsLock, RecordingWriter, new_token
from genesis.database.parents import ParentPlan, PlanContext, best_or_random, plan_parent
from genesis.database.program import Program
from genesis.database.projections import EmbeddingStats, kmeans
from genesis.database.protocol import (
    MAINTENANCE_LOCKED_RUNS,
    MAINTENANCE_RUNS,
    MIGRATION_TOKEN,
    SELECTION_TOKEN,
    AttemptEvent,
    GenerationEvent,
    IslandStats,
    ProgramStore,
    SelectionState,
    StoreReader,
    StoreWriter,
)
from genesis.database.questions import RunQuestions
from genesis.database.selection import choose, island_probabilities
from genesis.database.similarity import SimilarityIndex
from genesis.database.url import DatabaseURL, resolve_url

__all__ = ["AsyncProgramDatabase"]


def _maintenance_guards(state: SelectionState, changes: Changes) -> dict[str, str | None]:
    """A maintenance decision holds while the selection token (and, if it migrates, the
    migration token) is still the one it was decided on."""
    guards = {SELECTION_TOKEN: state.token}
    if changes.migrates:
        guards[MIGRATION_TOKEN] = state.metadata.get(MIGRATION_TOKEN)
    return guards


def _migration_guards(state: SelectionState, changes: Changes) -> dict[str, str | None]:
    """A migration holds while the migration token is still the one it was decided on."""
    return {MIGRATION_TOKEN: state.metadata.get(MIGRATION_TOKEN)}

_ISLAND_MEMORY = 50_000  # program ids whose island is remembered (about 5 MB)
_OPTIMISTIC_ATTEMPTS = 4  # decisions redone after conflicts before taking the lock

log = logging.getLogger("genesis.database")

Sample = tuple[Program, list[Program], list[Program]]
FixSample = tuple[Program, list[Program], list[Program], bool]



class AsyncProgramDatabase(RunQuestions):
    """The program database of one evolution run, async-first.

    Open it with ``async with AsyncProgramDatabase(config) as db`` (or ``await db.open()``
    and ``await db.close()``). The backend is chosen by ``config.database_url``,
    ``config.db_path`` or ``DATABASE_URL`` (see :func:`genesis.database.resolve_url`).
    """

    def __init__(
        self,
        config: DatabaseConfig | None = None,
        embedding_model: str | None = None,
        read_only: bool = False,
        *,
        store: ProgramStore | None = None,
    ) -> None:
        self.config = config or DatabaseConfig()
        self.embedding_model = embedding_model  # kept for legacy callers; never contacted
        self.read_only = read_only
        self.url: DatabaseURL = store.url if store is not None else resolve_url(self.config)
        self._store = store
        self._rng = np.random.default_rng(self.config.seed)
        self._similarity = SimilarityIndex()
        self._islands_seen: OrderedDict[str, int] = OrderedDict()
        self._maintenance: GroupCommitter[Program, None] = GroupCommitter(
            self._maintain_batch, max_batch=256
        )
        self._unmaintained: dict[str, Program] = {}  # stored, their maintenance failed
        self._state: SelectionState | None = None  # as of this process's latest flight

    def __repr__(self) -> str:
        mode = " read-only" if self.read_only else ""
        return f"<AsyncProgramDatabase {self.url}{mode}>"

    # Lifecycle ---------------------------------------------------------------------------

    @property
    def store(self) -> ProgramStore:
        """The storage backend (raises if the database is not open)."""
        if self._store is None:
            raise OperationalError("the database is not open; call open() first")
        return self._store

    async def open(self) -> AsyncProgramDatabase:
        """Connect to the run, creating or upgrading its schema."""
        if self._store is None:
            self._store = create_store(self.url, self.config, read_only=self.read_only)
        await self._store.open()
        log.debug("opened %s", self.url)
        return self

    async def close(self) -> None:
        """Finish pending maintenance and writes, then release connections (idempotent)."""
        if self._store is None:
            return
        await self._maintenance.close()
        await self._store.close()

    async def __aenter__(self) -> AsyncProgramDatabase:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def flush(self) -> None:
        """Wait until every add and maintenance queued so far is durable."""
        await self._maintenance.drain()

    async def save(self, path: str | None = None) -> None:
        """Make everything written so far durable (every write already is once awaited)."""
        if path and self.url.is_sqlite and Path(path).resolve() != Path(self.url.path).resolve():
            log.warning("save(%r) ignored: the database is %s", path, self.url)
        await self.flush()

    async def load(self, path: str) -> None:
        """Close this run and open another SQLite file (or URL) in its place."""
        await self.close()
        self.config.db_path = path
        self.config.database_url = None
        self.url = resolve_url(self.config)
        self._store = None
        self._maintenance = GroupCommitter(self._maintain_batch, max_batch=256)
        self._similarity.clear()
        self._islands_seen.clear()
        await self.open()

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("Cannot add program in read-only mode.")

    async def _changing(self, work: Any, lock: str | None) -> Any:
        """A write transaction that changes the selection state: it renews the state's token
        (so that decisions other workers took on the old state are not applied) and drops
        this process's copy.

        The token is renewed first, as every compare-and-set flight does, so both lock the
        token's row before any other row and queue behind each other instead of deadlocking.
        """
        async def renewing(writer: StoreWriter) -> Any:
            for key in (SELECTION_TOKEN, MIGRATION_TOKEN):  # in the order every flight takes
                await writer.set_metadata(key, new_token())
            return await work(writer)

        try:
            return await self.store.transaction(renewing, lock=lock)
        finally:
            self._state = None

    async def _state_now(self) -> SelectionState:
        """The selection state this process holds, or a fresh one (one flight)."""
        if self._state is None:
            async with self.store.read(primary=True) as reader:
                self._state = await reader.selection_state()
        return self._state

    # Adding ------------------------------------------------------------------------------

    async def _prepare(self, program: Program) -> None:
        """Fill what the database computes on arrival (complexity, trimmed logs).

        Sizes are checked before any work; code analysis runs in a worker thread, so a big
        program never stalls the event loop.
        """
        if not isinstance(program, Program):
            raise TypeError(f"expected a Program, got {type(program).__name__}")
        program.in_archive = False
        program.children_count = 0  # derived: counted as children arrive
        if program.metadata is None:
            program.metadata = {}
        if not isinstance(program.metadata, dict):
            raise InvalidProgramError("metadata", f"expected a dict, got "
                                      f"{type(program.metadata).__name__}", program.id)
        check_identity(program)  # before the parent's island is looked up by its id
        check_code_size(program, self.config.max_code_bytes)
        if not self.config.strict_numbers:
            replaced = replace_nonfinite(program)
            if replaced:
                log.warning("program %s: NaN or infinity stored as null in %s", program.id,
                            ", ".join(replaced))
        limit = self.config.max_stdout_log_chars
        log_text = program.metadata.get("stdout_log")
        if limit is not None and isinstance(log_text, str) and len(log_text) > limit:
            program.metadata["stdout_log"] = log_text[:limit]
        if program.complexity == 0 and isinstance(program.code, str):
            metrics = await asyncio.to_thread(analyze_code_metrics, program.code,
                                              str(program.language or "python"))
            program.complexity = float(metrics["complexity_score"])
            program.metadata["code_analysis_metrics"] = metrics

    def _remember_islands(self, programs: Sequence[Program]) -> None:
        """Note where programs live, so adding their children needs no lookup."""
        for program in programs:
            if program.island_idx is not None:
                self._islands_seen[program.id] = program.island_idx
                self._islands_seen.move_to_end(program.id)
        while len(self._islands_seen) > _ISLAND_MEMORY:
            self._islands_seen.popitem(last=False)

    async def _parent_islands(self, parent_ids: Sequence[str]) -> dict[str, int | None]:
        """Islands of parents: from what this process has seen, else from the store.

        A parent that migrated since it was seen here passes on the island it was sampled
        from, as if its child had been added just before the migration.
        """
        known = {pid: self._islands_seen[pid] for pid in parent_ids if pid in self._islands_seen}
        missing = [pid for pid in parent_ids if pid not in known]
        if missing:
            async with self.store.read() as reader:
                known.update({s.id: s.island_idx for s in await reader.summaries(missing)})
        return known

    async def add(
        self, program: Program, verbose: bool = False, defer_maintenance: bool = False
    ) -> str:
        """Store a program; return its id (or, for a known ``source_job_id``, the stored one).

        A child joins its parent's island and bumps the parent's ``children_count``; the run's
        first program goes to island 0 and gets one copy per other island. Unless
        ``defer_maintenance``, the archive, best program and due migrations follow.
        """
        self._check_writable()
        await self._prepare(program)
        stored_id = None
        if program.parent_id:
            island = (await self._parent_islands([program.parent_id])).get(program.parent_id)
            if island is not None:
                program.island_idx = island
                stored_id, self._state = await self.store.add_returning_state(program)
        if stored_id is None:
            stored_id = await self._add_root(program)
        if stored_id != program.id:
            log.info("program %s not added: job %s already produced %s", program.id,
                     program.metadata.get("source_job_id"), stored_id)
            return stored_id
        self._remember_islands([program])
        if verbose:
            print(f"added {program.id} gen={program.generation} island={program.island_idx} "
                  f"score={program.combined_score} correct={program.correct}")
        if not defer_maintenance:
            await self._maintain_stored(program)
        return stored_id

    async def _maintain_stored(self, program: Program) -> None:
        """Maintenance for a program already durable: a failure says it IS stored."""
        try:
            await self.run_post_add_maintenance(program)
        except Exception as exc:
            self._unmaintained[program.id] = program
            log.warning("program %s is stored but its maintenance failed (retried with the "
                        "next one): %s", program.id, exc)
            raise MaintenanceError(program.id, exc) from exc

    async def _add_root(self, program: Program) -> str:
        async def place(writer: StoreWriter) -> str:
            job = program.metadata.get("source_job_id")
            if job is not None:
                existing = await writer.by_source_job_id(str(job))
                if existing is not None:
                    return existing.id
            first = await assign_root_island(writer, program, self.config, self._rng)
            copies = island_copies(program, self.config) if first else []
            await writer.insert([program, *copies])
            return program.id

        return await self._changing(place, "islands")

    async def add_many(
        self, programs: Sequence[Program], defer_maintenance: bool = False
    ) -> list[str]:
        """Store many programs: those whose parent is known in one transaction (all or none).

        Programs without a known parent are placed first, one by one, as in :meth:`add`.
        A ``source_job_id`` already stored makes the transaction fail (DuplicateJobError).
        """
        self._check_writable()
        for program in programs:
            await self._prepare(program)
        earlier: set[str] = set()  # parents produced by earlier programs of the batch
        outside = []
        for program in programs:
            if program.parent_id and program.parent_id not in earlier:
                outside.append(program.parent_id)
            earlier.add(program.id)
        islands = await self._parent_islands(list(dict.fromkeys(outside))) if outside else {}
        placed: dict[str, int | None] = {}
        children = []
        for program in programs:
            island = placed.get(program.parent_id or "", islands.get(program.parent_id or ""))
            if program.parent_id and island is not None:
                program.island_idx = island
                children.append(program)
            else:
                await self._add_root(program)
            placed[program.id] = program.island_idx
        if children:
            await self.store.add_many(children)
            self._state = None
        if not defer_maintenance:
            try:
                await self.run_post_add_maintenance_batch(list(programs))
            except Exception as exc:
                self._unmaintained.update((p.id, p) for p in programs)
                raise MaintenanceError(", ".join(p.id for p in programs[:5]), exc) from exc
        return [p.id for p in programs]

    # Maintenance -------------------------------------------------------------------------

    async def _maintain_batch(self, programs: Sequence[Program]) -> list[None]:
        """Maintenance for a batch: offers where it commutes (the default policy, no
        migration due), else decided from the state and applied by compare-and-set.

        A decision made on a state another worker has changed since is not applied; it is
        made again from the fresh state the failed flight brought back. After a few such
        conflicts, or for a decision that inserts programs (a spawned island), the batch is
        maintained under the maintenance lock instead.
        """
        missed = [p for p in self._unmaintained.values() if p.id not in {q.id for q in programs}]
        batch = [*missed, *programs]
        if commutes(self.config, batch, self._state):
            await self._offer(batch)
        elif default_policy(self.config):  # offers commute with the migrations due
            await self._offer(batch)
            for generation in sorted({p.generation for p in batch
                                      if due_migration(p, self.config)}):
                await self._migrate(generation)
        elif not await self._maintain_optimistically(batch):
            await self._changing(self._maintain_locked(batch), "maintenance")
        for program in batch:
            self._unmaintained.pop(program.id, None)
        return [None] * len(programs)

    def _maintain_locked(self, batch: Sequence[Program]) -> Callable[[StoreWriter], Any]:
        """The work of a maintenance pass made under the maintenance lock, counted."""
        async def work(writer: StoreWriter) -> None:
            await maintain(writer, batch, self.config, self._rng)
            for counter in (MAINTENANCE_RUNS, MAINTENANCE_LOCKED_RUNS):
                await writer.count_up(counter)

        return work

    async def _offer(self, batch: Sequence[Program]) -> None:
        """Maintenance that commutes, in one flight that no other worker can refuse."""
        offer = offer_of(batch, self.config)
        before = self._state.best.id if self._state and self._state.best else None
        self._state = await self.store.apply_offer(offer, self.config.archive_size)
        best = self._state.best
        if offer.best is not None and best is not None and best.id == offer.best.id != before:
            log.info("new best program %s (score %s, generation %d)", best.id,
                     best.combined_score, best.generation)

    async def _maintain_optimistically(self, batch: Sequence[Program]) -> bool:
        """Maintain a batch by compare-and-set; False when the lock must do it instead."""
        known = [p for p in batch if p.id in self._islands_seen]  # stored through this engine
        return await self._compare_and_set(
            lambda writer: maintain(writer, batch, self.config, self._rng),
            _maintenance_guards, known)

    async def _migrate(self, generation: int) -> None:
        """The migration due at ``generation``, by compare-and-set on the migration token
        alone, which only migrations renew: offers arriving meanwhile do not refuse it.
        After a few conflicts the lock does it."""
        if not await self._compare_and_set(
                lambda writer: migrate(writer, generation, self.config, self._rng),
                _migration_guards):
            await self.migrate_islands(generation)

    async def _compare_and_set(
        self, decide: Callable[[RecordingWriter], Awaitable[Any]],
        guards: Callable[[SelectionState, Changes], dict[str, str | None]],
        known: Sequence[Program] = (),
    ) -> bool:
        """Decide from the state and apply what was decided while ``guards`` hold, deciding
        again from the fresh state a refusal brings back; False when the lock must do it
        (a write a flight cannot carry, or refusals again and again)."""
        for _ in range(_OPTIMISTIC_ATTEMPTS):
            state = await self._state_now()
            recorder = RecordingWriter(state, functools.partial(self.store.read, primary=True),
                                       known)
            try:
                await decide(recorder)
            except NeedsLock:
                return False
            if not recorder.changes:
                return True  # nothing to do, or done already by another worker
            applied, self._state = await self.store.apply_changes(
                recorder.changes, guards(state, recorder.changes))
            if applied:
                return True
        return False

    async def run_post_add_maintenance(
        self, program: Program, verbose: bool = False, recompute_embeddings: bool = False
    ) -> None:
        """Update archive, best program, migrations and islands for a stored program."""
        self._check_writable()
        if not self._unmaintained and not needs_maintenance(  # missed ones always go through
                await self._state_now(), program, self.config):
            return
        await self._maintenance.submit(program)

    async def run_post_add_maintenance_batch(
        self, programs: Sequence[Program], verbose: bool = False,
        recompute_embeddings: bool = False,
    ) -> None:
        """Run maintenance for several stored programs (one transaction when possible)."""
        self._check_writable()
        ordered = sorted(programs, key=lambda p: p.generation)
        await asyncio.gather(*(self._maintenance.submit(p) for p in ordered))

    async def check_scheduled_operations(self) -> None:
        """Run the migration due at the last iteration if no worker has run it yet."""
        self._check_writable()
        generation = await self.get_last_iteration()
        interval = self.config.migration_interval
        if interval > 0 and generation > 0 and generation % interval == 0:
            await self.migrate_islands(generation)

    async def migrate_islands(self, generation: int) -> int:
        """Migrate between islands for ``generation`` now; return how many programs moved.

        Runs once per generation however many workers ask (later asks move nothing).
        """
        self._check_writable()
        return await self._changing(
            lambda writer: migrate(writer, generation, self.config, self._rng), "maintenance")

    async def is_stagnant(self, current_generation: int) -> bool:
        """True if dynamic islands are on and the best score is stale for too long."""
        if not self.config.enable_dynamic_islands:
            return False
        since = int(float(await self._metadata("best_score_generation") or 0))
        return current_generation - since >= self.config.stagnation_threshold

    async def check_and_spawn_island_if_stagnant(self, current_generation: int) -> bool:
        """Spawn a new island if the run is stagnant; return True if one was spawned."""
        self._check_writable()
        if not await self.is_stagnant(current_generation):
            return False
        return await self.spawn_new_island(current_generation)

    async def spawn_new_island(self, current_generation: int | None = None) -> bool:
        """Seed a new island (``island_spawn_strategy``); return True if one was made.

        The stagnation clock restarts at ``current_generation`` (default: the last one).
        """
        self._check_writable()
        generation = await self.get_last_iteration() if current_generation is None \
            else current_generation

        async def spawn(writer: StoreWriter) -> bool:
            copies = await spawn_island(writer, self.config, self._rng)
            for copy in copies:
                await update_archive(writer, copy, self.config)
            await writer.set_metadata("best_score_generation", str(generation))
            return bool(copies)

        return await self._changing(spawn, "maintenance")

    # Sampling ----------------------------------------------------------------------------

    async def sample(
        self,
        target_generation: int | None = None,
        novelty_attempt: int | None = None,
        max_novelty_attempts: int | None = None,
        resample_attempt: int | None = None,
        max_resample_attempts: int | None = None,
    ) -> Sample:
        """Return (parent, archive inspirations, top-k inspirations).

        Until every island has a correct program the parent is the run's initial program
        and there are no inspirations.
        """
        parent, archive, top, _ = await self._sample(fix_mode=False)
        return parent, archive, top

    async def sample_with_fix_mode(
        self,
        target_generation: int | None = None,
        novelty_attempt: int | None = None,
        max_novelty_attempts: int | None = None,
        resample_attempt: int | None = None,
        max_resample_attempts: int | None = None,
    ) -> FixSample:
        """Like :meth:`sample`, plus ``needs_fix``: True when no correct program exists yet.

        In fix mode the parent is a random incorrect program and its ancestors are returned
        as archive inspirations.
        """
        return await self._sample(fix_mode=True)

    async def _selection_state(self, reader: StoreReader) -> SelectionState:
        """The selection state this process knows, read in one flight when it knows none.

        Every flight that samples or writes brings the state back with it, so in steady
        state nothing is read for it alone. Choices are made from the state as of this
        process's previous flight: a concurrent worker's change shows one step later, and
        this process's own writes show at once.
        """
        if self._state is None:
            self._state = await reader.selection_state()
        return self._state

    async def _sample(self, fix_mode: bool) -> FixSample:
        async with self.store.read() as reader:
            state = await self._selection_state(reader)
            initialized = [s for s in state.islands if s.correct > 0]
            if len(initialized) < configured_islands(self.config):
                return await self._sample_uninitialized(reader, list(state.islands), fix_mode)
            if state.best is None or not state.best.correct:
                await self._best(reader)  # repairs best_program_id, then reads the state
                self._state = state = await reader.selection_state()
            probabilities = island_probabilities(self.config.island_selection_strategy,
                                                 initialized)
            island = initialized[choose(self._rng, probabilities)]
            ctx = PlanContext(state, self.config, self._rng)
            plan = plan_parent(ctx, island)
            parent, programs, drawn = await self._fetch_parent(reader, plan, island, state)
            if parent is None:
                parent, programs, drawn = await self._fetch_parent(
                    reader, best_or_random(ctx, island), island, state)
            if parent is None:
                raise RuntimeError(f"no parent could be sampled from island {island.island_idx}")
            fresh = self._state or state  # what the flight brought back
            if plan.beam and parent.id != fresh.metadata.get("beam_search_parent_id"):
                await self.set_beam_search_parent_id(parent.id)
            chosen, top = drawn or draw_inspirations(parent.id, parent.island_idx, fresh,
                                                      self.config, self._rng)
            missing = [pid for pid in (*chosen, *top) if pid not in programs]
            if missing:
                programs.update((await reader.fetch(reader.q_programs(missing)))[0])
        archive = [programs[pid] for pid in chosen if pid in programs]
        top_k = [programs[pid] for pid in top if pid in programs]
        self._remember_islands([parent, *archive, *top_k])
        return parent, archive, top_k, False

    async def _fetch_parent(self, reader: StoreReader, plan: ParentPlan, island: IslandStats,
                            state: SelectionState
                            ) -> tuple[Program | None, dict[str, Program], Drawn | None]:
        """Fetch a plan's parent, and the inspirations it implies, in one flight.

        When the plan names the parent by id, the inspirations are drawn first, from the same
        state the parent was chosen from, and come in the same flight (returned as drawn);
        the selection state comes back with it.
        """
        ids = list(plan.ids)
        drawn, saved = None, self._rng.bit_generator.state
        if plan.ids and not plan.nth:
            drawn = draw_inspirations(plan.ids[0], island.island_idx, state, self.config,
                                  self._rng)
            ids += [*drawn[0], *drawn[1]]
        queries = [reader.q_programs(ids)] if ids else []
        queries += [reader.q_nth(**lookup) for lookup in plan.nth]
        if not queries:
            return None, {}, None
        results, self._state = await reader.fetch_with_state(*queries)
        by_id: dict[str, Program] = results[0] if ids else {}
        parent = plan.resolve(by_id, results[1:] if ids else results)
        if drawn is not None and (parent is None or parent.id != plan.ids[0]):
            drawn, self._rng.bit_generator.state = None, saved  # drawn again for the parent
        return parent, by_id, drawn

    async def _sample_uninitialized(
        self, reader: StoreReader, stats: list[IslandStats], fix_mode: bool
    ) -> FixSample:
        correct = sum(s.correct for s in stats)
        incorrect = sum(s.programs - s.correct for s in stats)
        parent = None
        if fix_mode and correct == 0 and incorrect > 0:
            parent = await reader.nth_program(island=None, correct=False, order="score",
                                              descending=True,
                                              offset=int(self._rng.integers(incorrect)))
        parent = parent or await reader.earliest_program()
        if parent is None:
            raise RuntimeError("No programs found in database")
        if not fix_mode or parent.correct:
            return parent, [], [], False
        depth = self.config.num_archive_inspirations + self.config.num_top_k_inspirations
        return parent, await reader.ancestry(parent.id, max_ancestors=depth), [], True

    # Reads -------------------------------------------------------------------------------

    async def get(self, program_id: str) -> Program | None:
        """Return the program with this id, or None."""
        id_argument(program_id)
        async with self.store.read() as reader:
            return await reader.get(program_id)

    async def _best(self, reader: StoreReader) -> Program | None:
        program = await reader.program_named_by("best_program_id")
        if program is not None and program.correct:
            return program
        program = await reader.best_program()
        if program is not None and not self.read_only:
            await self._repair_best_id()
        return program

    async def _repair_best_id(self) -> None:
        async def repair(writer: StoreWriter) -> None:
            stored = await writer.get_metadata("best_program_id")
            current = await writer.get(stored) if stored else None
            if current is None or not current.correct:
                best = await writer.best_program()
                if best is not None:
                    await writer.set_metadata("best_program_id", best.id)

        await self._changing(repair, "maintenance")

    async def get_best_program(self, metric: str | None = None) -> Program | None:
        """Return the best correct program (by combined_score, or a public metric)."""
        async with self.store.read() as reader:
            if metric is None:
                return await self._best(reader)
            return await reader.best_program(metric)

    async def get_top_programs(
        self, n: int = 10, metric: str | None = "combined_score", correct_only: bool = False
    ) -> list[Program]:
        """Return up to ``n`` programs, best first."""
        n = int_argument(n, "n")
        async with self.store.read() as reader:
            return await reader.top_programs(n, metric, correct_only)

    async def get_all_programs(self) -> list[Program]:
        """Return every program (this loads the whole run: prefer iter_programs)."""
        async with self.store.read() as reader:
            return [p async for batch in reader.iter_programs() for p in batch]

    async def get_programs_by_generation(self, generation: int) -> list[Program]:
        """Return the programs of one generation."""
        generation = int_argument(generation, "generation")
        async with self.store.read() as reader:
            return await reader.programs_by_generation(generation)

    async def get_ancestry(self, program_id: str, max_ancestors: int = 10) -> list[Program]:
        """Return up to ``max_ancestors`` ancestors of a program, oldest first."""
        id_argument(program_id)
        max_ancestors = int_argument(max_ancestors, "max_ancestors")
        async with self.store.read() as reader:
            return await reader.ancestry(program_id, max_ancestors)

    async def get_program_count_and_timestamp(self) -> dict[str, Any]:
        """Return {"count": programs, "max_timestamp": newest timestamp or None}."""
        async with self.store.read() as reader:
            count, newest = await reader.count_and_last_timestamp()
        return {"count": count, "max_timestamp": newest}

    async def count(self) -> int:
        """Return the number of programs."""
        async with self.store.read() as reader:
            return await reader.count()

    async def island_stats(self) -> list[IslandStats]:
        """Return per-island program counts, correct counts and best scores."""
        async with self.store.read() as reader:
            return await reader.island_stats()

    async def has_program_with_source_job_id(self, source_job_id: str) -> bool:
        """True if a program produced by this job is stored (answered from an index)."""
        return await self.get_program_by_source_job_id(source_job_id) is not None

    async def get_program_by_source_job_id(self, source_job_id: str) -> Program | None:
        """Return the program produced by this job, if stored."""
        id_argument(str(source_job_id), "source_job_id")
        async with self.store.read() as reader:
            return await reader.by_source_job_id(str(source_job_id))

    async def compute_similarity(
        self, code_embedding: Sequence[float], island_idx: int
    ) -> list[float]:
        """Cosine similarity of an embedding with every embedded program of an island.

        Values are ordered by program id; a program whose embedding has another length
        scores 0.0.
        """
        if code_embedding is None or len(code_embedding) == 0:
            return []
        island_idx = int_argument(island_idx, "island_idx")
        async with self.store.read() as reader:
            _, similarities = await self._similarity.similarities(reader, code_embedding,
                                                                  island_idx)
        return similarities.tolist()

    async def get_most_similar_program(
        self, code_embedding: Sequence[float], island_idx: int
    ) -> Program | None:
        """Return the island's program most similar to an embedding, or None."""
        if code_embedding is None or len(code_embedding) == 0:
            return None
        island_idx = int_argument(island_idx, "island_idx")
        async with self.store.read() as reader:
            ids, similarities = await self._similarity.similarities(reader, code_embedding,
                                                                    island_idx)
            if not ids:
                return None
            return await reader.get(ids[int(np.argmax(similarities))])

    async def update_program_metadata(self, program_id: str, metadata: dict[str, Any]) -> bool:
        """Replace a stored program's metadata; return False if no such program exists."""
        self._check_writable()
        id_argument(program_id)
        if not isinstance(metadata, dict):
            raise InvalidProgramError("metadata", f"expected a dict, got "
                                      f"{type(metadata).__name__}", program_id)
        if not self.config.strict_numbers:
            holder = Program(id=program_id, code="", metadata=metadata)
            if replace_nonfinite(holder):
                metadata = holder.metadata
        return await self.store.transaction(
            lambda writer: writer.replace_metadata(program_id, metadata))

    async def get_generations(self) -> list[int]:
        """Return the distinct generations that have programs, ascending."""
        async with self.store.read() as reader:
            return await reader.generations()

    async def score_percentile(self, score: float, correct_only: bool = True) -> float:
        """Share of scored programs that ``score`` beats (ties count half); 0.5 if none."""
        async with self.store.read() as reader:
            below, equal, total = await reader.score_rank(float(score), correct_only)
        return (below + 0.5 * equal) / total if total else 0.5

    async def recompute_embedding_projections(self, num_clusters: int = 4) -> int:
        """Recompute every embedded program's 2-D/3-D PCA projection and cluster id.

        Embeddings are streamed twice (sums, then projections), never all held at once.
        Returns the number of programs updated: 0 while fewer than ``num_clusters`` exist.
        """
        self._check_writable()
        stats = EmbeddingStats()
        async with self.store.read(snapshot=True) as reader:
            async for batch in reader.iter_embeddings():
                await asyncio.to_thread(stats.add, [blob for _, blob in batch])
        axes = stats.axes()
        if axes is None or axes.count < max(1, num_clusters):
            return 0
        ids: list[str] = []
        parts: list[np.ndarray] = []
        async with self.store.read(snapshot=True) as reader:
            async for batch in reader.iter_embeddings():
                kept = [(pid, blob) for pid, blob in batch if len(blob) == axes.dim * 8]
                if kept:
                    ids += [pid for pid, _ in kept]
                    parts.append(await asyncio.to_thread(axes.project,
                                                         [blob for _, blob in kept]))
        points = np.vstack(parts)
        labels = await asyncio.to_thread(kmeans, points, num_clusters, self.config.seed)
        rows = [(pid, points[i, :2].tolist(), points[i, :3].tolist(), int(labels[i]))
                for i, pid in enumerate(ids)]
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            await self.store.transaction(lambda writer, c=chunk: writer.set_embedding_features(c))
        return len(rows)

    async def population_telemetry(self) -> list[dict[str, Any]]:
        """Per-island aggregates (counts, scores, costs, timings), computed by the database."""
        async with self.store.read() as reader:
            return await reader.island_telemetry()

    # Metadata and events -----------------------------------------------------------------

    async def _metadata(self, key: str) -> str | None:
        async with self.store.read() as reader:
            value = await reader.get_metadata(key)
        return None if value in (None, "", "None") else value

    async def get_metadata(self) -> dict[str, str | None]:
        """Return the whole metadata store."""
        async with self.store.read() as reader:
            return await reader.all_metadata()

    async def get_last_iteration(self) -> int:
        """The highest generation stored so far."""
        value = await self._metadata("last_iteration")
        return int(float(value)) if value is not None else 0

    async def get_best_program_id(self) -> str | None:
        """The id of the tracked best program."""
        return await self._metadata("best_program_id")

    async def get_beam_search_parent_id(self) -> str | None:
        """The current beam-search parent."""
        return await self._metadata("beam_search_parent_id")

    async def set_beam_search_parent_id(self, program_id: str | None) -> None:
        """Set the beam-search parent (ignored in read-only mode)."""
        if self.read_only:
            return
        await self._changing(
            lambda writer: writer.set_metadata("beam_search_parent_id", program_id), None)

    async def get_best_score_ever(self) -> float | None:
        """The best score seen (for stagnation tracking)."""
        value = await self._metadata("best_score_ever")
        return float(value) if value is not None else None

    async def get_best_score_generation(self) -> int:
        """The generation at which the best score was found."""
        value = await self._metadata("best_score_generation")
        return int(float(value)) if value is not None else 0

    async def get_last_migration_generation(self) -> int | None:
        """The generation of the last migration, if any."""
        value = await self._metadata(LAST_MIGRATION_KEY)
        return int(float(value)) if value is not None else None

    async def record_generation_event(
        self, generation: int, status: str, source_job_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append a row to the generation event log."""
        self._check_writable()
        event = GenerationEvent(generation, status, source_job_id, details, time.time())
        await self.store.transaction(lambda writer: writer.record_generation_event(event))

    async def record_attempt_event(
        self, generation: int, stage: str, status: str, details: dict[str, Any] | None = None
    ) -> None:
        """Append a row to the attempt log."""
        self._check_writable()
        event = AttemptEvent(generation, stage, status, details, time.time())
        await self.store.transaction(lambda writer: writer.record_attempt_event(event))

    # Summary -----------------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        """Return counts per island, the best program, archive size and last iteration."""
        async with self.store.read() as reader:
            stats = await reader.island_stats()
            best = await self._best(reader)
            archive = await reader.archive_count()
            count = await reader.count()
            last = await reader.get_metadata("last_iteration")
        return {
            "url": str(self.url),
            "programs": count,
            "correct": sum(s.correct for s in stats),
            "archive": archive,
            "archive_size": self.config.archive_size,
            "last_iteration": int(float(last)) if last else 0,
            "islands": [vars(s) for s in stats],
            "best": None if best is None else {
                "id": best.id, "score": best.combined_score, "generation": best.generation,
                "island": best.island_idx,
            },
        }

    async def print_summary(self, console: Any = None,
                            total_program_target: int | None = None) -> None:
        """Print a summary table of the run (to ``console.print`` if given, else stdout)."""
        text = format_summary(await self.summary(), total_program_target)
        (console.print if console is not None and hasattr(console, "print") else print)(text)
