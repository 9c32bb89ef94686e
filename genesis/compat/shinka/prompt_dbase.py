"""ShinkaEvolve 0.0.7's ``shinka.database.prompt_dbase`` on Genesis storage.

The prompt-evolution store of ShinkaEvolve's runner, with its names, fields, defaults,
return shapes and selection rules: prompts are sampled from an archive of
``archive_size`` by UCB1 with an optimistic prior for prompts with fewer than
``min_programs_for_fitness`` correct programs, and epsilon-greedy exploration (drawn from
``np.random``, so ``np.random.seed`` reproduces ShinkaEvolve's choices); a prompt's fitness
is the mean percentile of the correct programs made with it.

The store is chosen by :func:`genesis.database.url.resolve_url`: a SQLite file that
ShinkaEvolve itself can open (``results/prompts.sqlite``), or the run's schema on a
PostgreSQL server, shared by every machine of the run (see :mod:`.prompt_store`).

Where ShinkaEvolve misbehaved, this module deliberately does not:

* every write is one transaction serialised with the run's other prompt writers, so
  concurrent fitness updates are never lost, and ``last_generation`` and
  ``best_prompt_id`` are read from the database, never from a stale copy;
* the best prompt is recomputed by every write; ShinkaEvolve compared only the prompt just
  written with the remembered best, which stayed best after its own fitness fell or after
  ``recompute_all_percentiles``;
* a fitness update of a prompt that is already archived leaves the archive alone
  (ShinkaEvolve then evicted the worst member and failed on the re-insert);
* no statement is retried blindly (ShinkaEvolve retried even a duplicate insert five times);
* NaN and infinity are stored as null (0.0 in numeric columns) with a warning naming the
  field, where ShinkaEvolve wrote bare ``NaN`` tokens or failed a NOT NULL constraint.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from bisect import bisect_left
from dataclasses import asdict, dataclass, field, fields
from types import TracebackType
from typing import Any

import numpy as np

from genesis.compat.shinka.prompt_store import (
    PromptStore,
    finite_number,
    open_prompt_store,
)
from genesis.database.codec import without_nonfinite
from genesis.database.errors import ConfigurationError
from genesis.database.url import DatabaseURL, resolve_url

__all__ = [
    "SystemPrompt",
    "SystemPromptConfig",
    "SystemPromptDatabase",
    "clean_nan_values",
    "create_system_prompt",
]

logger = logging.getLogger(__name__)


def clean_nan_values(obj: Any) -> Any:
    """Return ``obj`` with every NaN and infinity (also inside containers) replaced by None."""
    return without_nonfinite(obj, "value")[0]


@dataclass
class SystemPromptConfig:
    """Settings of a SystemPromptDatabase: ShinkaEvolve's, then Genesis' URL and run name."""

    db_path: str | None = None
    archive_size: int = 10
    ucb_exploration_constant: float = 1.0  # c in UCB1
    min_programs_for_fitness: int = 3  # correct programs before fitness counts
    epsilon: float = 0.1  # probability of a uniform draw from the archive
    use_optimistic_prior: bool = True  # bounded prior for new prompts instead of infinity
    database_url: str | None = None
    run_name: str | None = None

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.database_url:
            try:
                shown["database_url"] = str(DatabaseURL.parse(self.database_url))
            except ConfigurationError:
                shown["database_url"] = "<invalid URL>"
        return f"SystemPromptConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass
class SystemPrompt:
    """An evolved system prompt and the record of the programs made with it."""

    id: str
    prompt_text: str
    name: str | None = None
    description: str | None = None
    parent_id: str | None = None
    generation: int = 0  # the prompt generation
    program_generation: int = 0  # the program generation at which it was evolved
    patch_type: str = "init"  # init, diff, full or cross
    timestamp: float = field(default_factory=time.time)
    program_count: int = 0  # programs made with it
    correct_program_count: int = 0  # correct ones: only they count for fitness
    total_percentile: float = 0.0  # sum of the correct programs' percentiles
    fitness: float = 0.0  # mean percentile, 0 to 1
    program_scores: list[float] = field(default_factory=list)  # for percentile recomputation
    total_improvement: float = 0.0  # legacy, summed but unused
    program_ids: list[str] = field(default_factory=list)
    in_archive: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict, NaN and infinity replaced by None."""
        return clean_nan_values(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemPrompt:
        """Build a prompt from a dict; unknown keys are ignored, old ones filled in."""
        data = dict(data)
        if not isinstance(data.get("metadata"), dict):
            data["metadata"] = {}
        if not isinstance(data.get("program_ids"), list):
            data["program_ids"] = []
        data.setdefault("correct_program_count", data.get("program_count", 0))
        data.setdefault("total_percentile", 0.0)
        data.setdefault("program_scores", [])
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def update_fitness(self, percentile: float, correct: bool = True,
                       improvement: float = 0.0, program_score: float = 0.0) -> None:
        """Count one more program; a correct one adds its percentile to the fitness mean."""
        self.program_count += 1
        if correct:
            self.correct_program_count += 1
            self.total_percentile += percentile
            self.total_improvement += improvement
            self.program_scores.append(program_score)
            self.fitness = self.total_percentile / self.correct_program_count


def create_system_prompt(
    prompt_text: str,
    parent_id: str | None = None,
    generation: int = 0,
    program_generation: int = 0,
    patch_type: str = "init",
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
) -> SystemPrompt:
    """Return a new prompt with a fresh UUID and the current time."""
    return SystemPrompt(id=str(uuid.uuid4()), prompt_text=prompt_text, name=name,
                        description=description, parent_id=parent_id, generation=generation,
                        program_generation=program_generation, patch_type=patch_type,
                        timestamp=time.time(), metadata=metadata or {})


def _prompt(row: dict[str, Any] | None) -> SystemPrompt | None:
    return None if row is None else SystemPrompt.from_dict(row)


def _is_score(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class SystemPromptDatabase:
    """The archive of evolved system prompts, their fitness, and UCB sampling."""

    def __init__(self, config: SystemPromptConfig, read_only: bool = False) -> None:
        self.config = config
        self.read_only = read_only
        self.url = resolve_url(config)  # type: ignore[arg-type]
        self._store: PromptStore = open_prompt_store(self.url, read_only=read_only)
        logger.debug("SystemPrompt DB %s opened with %d prompts", self.url,
                     self._count_prompts_in_db())

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<SystemPromptDatabase {self.url} {mode}>"

    def __enter__(self) -> SystemPromptDatabase:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ShinkaEvolve's attributes -----------------------------------------------------------

    @property
    def conn(self) -> Any:
        """The driver connection (sqlite3 or psycopg), for legacy callers running raw SQL."""
        return self._store.conn

    @property
    def cursor(self) -> Any:
        """A new cursor on the driver connection (ShinkaEvolve's web UI sets PRAGMAs on it)."""
        return None if self._store.conn is None else self._store.conn.cursor()

    @property
    def last_generation(self) -> int:
        """The highest prompt generation added so far (0 before any)."""
        value = self._store.metadata("last_generation")
        return int(value) if value is not None else 0

    @property
    def best_prompt_id(self) -> str | None:
        """The id of the best prompt, as recorded by the last write."""
        value = self._store.metadata("best_prompt_id")
        return None if value in (None, "None") else value

    def _count_prompts_in_db(self) -> int:
        """Return the number of prompts (ShinkaEvolve's runner calls it on resume)."""
        return self._store.count()

    # Writes ------------------------------------------------------------------------------

    def add(self, prompt: SystemPrompt, verbose: bool = False) -> str:
        """Store a new prompt (an evolved one always enters the archive); return its id."""
        with self._store.transaction() as tx:
            tx.insert(asdict(prompt))
            stored = _prompt(tx.get(prompt.id))
            assert stored is not None
            self._update_archive(tx, stored, force=prompt.parent_id is not None)
            last = tx.metadata("last_generation")
            tx.set_metadata("last_generation",
                            str(max(int(last) if last is not None else 0, stored.generation)))
            self._refresh_best(tx)
        logger.info("SystemPrompt %s added to DB - generation: %s, patch_type: %s",
                    prompt.id, prompt.generation, prompt.patch_type)
        if verbose:
            logger.info("Added prompt %s... (gen=%s, patch=%s, fitness=%.4f)", prompt.id[:8],
                        stored.generation, stored.patch_type, stored.fitness)
        return prompt.id

    def update_fitness(self, prompt_id: str, percentile: float, program_id: str | None = None,
                       correct: bool = True, improvement: float = 0.0,
                       program_score: float = 0.0) -> None:
        """Count a program made with a prompt; a correct one adds its percentile (0 to 1)."""
        with self._store.transaction() as tx:
            prompt = _prompt(tx.get(prompt_id))
            if prompt is None:
                logger.warning("Prompt %s not found for fitness update", prompt_id)
                return
            prompt.update_fitness(finite_number("percentile", percentile, prompt_id), correct,
                                  finite_number("improvement", improvement, prompt_id),
                                  program_score)
            count = prompt.correct_program_count
            prompt.fitness = prompt.total_percentile / count if count > 0 else 0.0
            if program_id:
                prompt.program_ids.append(program_id)
            tx.update_fitness(asdict(prompt))
            self._update_archive(tx, prompt, force=False)
            self._refresh_best(tx)
        logger.debug("Updated prompt %s... fitness to %.4f (percentile=%s, correct=%s)",
                     prompt_id[:8], prompt.fitness, percentile, correct)

    def recompute_all_percentiles(self, all_program_scores: list[float] | None = None,
                                  program_id_to_score: dict[str, float] | None = None) -> None:
        """Recompute every prompt's fitness as its programs' mean percentile in a population.

        The population is ``all_program_scores`` (else every stored program score). A
        prompt's programs are scored by ``program_id_to_score`` when given (else their
        stored scores); a score's percentile is the share of the others it strictly beats.
        """
        with self._store.transaction() as tx:
            prompts = [SystemPrompt.from_dict(row) for row in tx.prompts()]
            if all_program_scores is None:
                all_program_scores = [s for p in prompts for s in p.program_scores]
            population = sorted(s for s in all_program_scores if _is_score(s))
            if not population:
                logger.warning("No program scores found, skipping percentile recompute")
                return
            others = len(population) - 1
            updates = []
            for prompt in prompts:
                if program_id_to_score is None:
                    scores = prompt.program_scores
                else:
                    scores = [program_id_to_score[pid] for pid in prompt.program_ids
                              if pid in program_id_to_score]
                percentiles = [bisect_left(population, s) / others if others > 0 else 1.0
                               for s in scores if _is_score(s)]
                if percentiles:
                    total = sum(percentiles)
                    updates.append((total, total / len(percentiles), prompt.id))
            tx.set_percentiles(updates)
            self._refresh_best(tx)
        logger.info("Recomputed percentiles of %d prompts against %d scores", len(updates),
                    len(population))

    def _is_better(self, prompt1: SystemPrompt, prompt2: SystemPrompt) -> bool:
        """Enough correct programs beats too few; then higher fitness; then the newer one."""
        minimum = self.config.min_programs_for_fitness
        reliable1 = prompt1.correct_program_count >= minimum
        reliable2 = prompt2.correct_program_count >= minimum
        if reliable1 != reliable2:
            return reliable1
        if prompt1.fitness != prompt2.fitness:
            return prompt1.fitness > prompt2.fitness
        return prompt1.timestamp > prompt2.timestamp

    def _update_archive(self, tx: PromptStore, prompt: SystemPrompt, force: bool) -> None:
        """Archive ``prompt`` if there is room, else instead of a worse (or, forced, any) worst."""
        if self.config.archive_size <= 0 or prompt.in_archive:
            return
        if tx.archive_count() < self.config.archive_size:
            tx.archive_add(prompt.id)
            return
        row = tx.archive_worst(self.config.min_programs_for_fitness)
        assert row is not None
        worst = SystemPrompt(prompt_text="", **row)
        if force or self._is_better(prompt, worst):
            tx.archive_remove(worst.id)
            tx.archive_add(prompt.id)
            logger.info("Prompt %s... %s archive, replacing %s...", prompt.id[:8],
                        "force-added to" if force else "entered the", worst.id[:8])

    def _refresh_best(self, tx: PromptStore) -> None:
        best = tx.best_id(self.config.min_programs_for_fitness)
        if best != tx.metadata("best_prompt_id"):
            tx.set_metadata("best_prompt_id", best)
            logger.info("New best prompt: %s", best)

    # Reads -------------------------------------------------------------------------------

    def get(self, prompt_id: str) -> SystemPrompt | None:
        """Return a prompt by id, or None."""
        return _prompt(self._store.get(prompt_id))

    def get_all_prompts(self) -> list[SystemPrompt]:
        """Return every prompt, oldest first."""
        return [SystemPrompt.from_dict(row) for row in self._store.prompts()]

    def get_archive(self) -> list[SystemPrompt]:
        """Return the archived prompts, the fittest (then newest) first."""
        return [SystemPrompt.from_dict(row) for row in self._store.prompts(
            "a.prompt_id IS NOT NULL", order="p.fitness DESC, p.timestamp DESC, p.id")]

    def get_prompts_by_generation(self, generation: int) -> list[SystemPrompt]:
        """Return the prompts of one prompt generation."""
        return [SystemPrompt.from_dict(row)
                for row in self._store.prompts("p.generation = ?", (generation,))]

    def get_lineage(self, prompt_id: str, max_ancestors: int = 10) -> list[SystemPrompt]:
        """Return up to ``max_ancestors`` ancestors of a prompt, the oldest first."""
        return [SystemPrompt.from_dict(row)
                for row in self._store.lineage(prompt_id, max_ancestors)]

    def get_best_prompt(self) -> SystemPrompt | None:
        """Return the recorded best prompt (else the best by fitness), or None."""
        recorded = self.best_prompt_id
        prompt = self.get(recorded) if recorded else None
        if prompt is None:
            if recorded:
                logger.warning("Tracked best_prompt_id '%s' not found.", recorded)
            best = self._store.best_id(self.config.min_programs_for_fitness)
            prompt = self.get(best) if best else None
        return prompt

    def get_total_evolution_costs(self) -> float:
        """Return the LLM cost of prompt evolution: the sum of metadata['llm']['cost']."""
        return self._store.total_cost()

    def sample(self, exploration_constant: float | None = None,
               epsilon: float | None = None) -> SystemPrompt | None:
        """Choose a prompt from the archive: uniformly with probability epsilon, else by UCB1.

        UCB1 is ``fitness + c * sqrt(ln N / n)`` (n: the prompt's correct programs, N: the
        archive's). A prompt with fewer than ``min_programs_for_fitness`` correct programs
        scores the best established fitness (0.5 without one) plus c, or infinity without
        ``use_optimistic_prior`` (then one of those is drawn at random).
        """
        archive = self.get_archive()
        if not archive:
            logger.warning("No prompts in archive to sample from")
            return None
        if len(archive) == 1:
            return archive[0]
        eps = self.config.epsilon if epsilon is None else epsilon
        if eps > 0 and np.random.random() < eps:
            return archive[np.random.randint(len(archive))]
        c = self.config.ucb_exploration_constant
        if exploration_constant is not None:
            c = exploration_constant
        minimum = self.config.min_programs_for_fitness
        total_correct = sum(p.correct_program_count for p in archive)
        if total_correct == 0:
            return archive[np.random.randint(len(archive))]
        prior = math.inf
        if self.config.use_optimistic_prior:
            established = [p.fitness for p in archive if p.correct_program_count >= minimum]
            prior = (max(established) if established else 0.5) + c
        scores = np.array([
            prior if p.correct_program_count < minimum
            else p.fitness + c * np.sqrt(np.log(total_correct) / p.correct_program_count)
            for p in archive])
        unexplored = np.flatnonzero(np.isinf(scores))
        index = np.random.choice(unexplored) if unexplored.size else int(np.argmax(scores))
        return archive[index]

    # Lifecycle ---------------------------------------------------------------------------

    def save(self, path: str | None = None) -> None:
        """Nothing to do: every write is committed before it returns (kept for old callers)."""

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._store.close()

    def print_summary(self) -> None:
        """Print the number of prompts, the archive and the best prompt."""
        archive = self.get_archive()
        best = self.get_best_prompt()
        lines = ["SystemPrompt Database Summary",
                 f"Total prompts: {self._count_prompts_in_db()}",
                 f"Archive size: {len(archive)}/{self.config.archive_size}"]
        if best:
            lines.append(f"Best prompt: {best.id[:8]}... (fitness={best.fitness:.4f}, "
                         f"programs={best.program_count})")
        if archive:
            lines.append(f"  {'ID':<11}  {'Gen':>4}  {'Patch':<6}  {'Fitness':>7}  "
                         f"{'Programs':>8}")
            lines += [f"  {p.id[:8] + '...':<11}  {p.generation:>4}  {p.patch_type:<6}  "
                      f"{p.fitness:>7.4f}  {p.program_count:>8}" for p in archive[:10]]
        print("\n".join(lines))
