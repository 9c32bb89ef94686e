"""``ProgramDatabase.island_manager`` and ``.island_sampler``, answered by the engine.

ShinkaEvolve's runner asks the island manager whether every island has a correct program
yet (before it lets the novelty judge reject proposals), and its tools ask for island
populations and migrations. Each method here is one engine call: counts come from the
run's island counters, migrations and new islands are the engine's own (under its
maintenance lock), so several processes asking at once still migrate once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genesis.database.config import DatabaseConfig
from genesis.database.engine import AsyncProgramDatabase as Engine
from genesis.database.islands import configured_islands
from genesis.database.program import Program
from genesis.database.selection import choose, island_probabilities

if TYPE_CHECKING:
    from genesis.compat.shinka.dbase import ProgramDatabase

__all__ = ["IslandManager", "IslandSampler"]


class IslandManager:
    """ShinkaEvolve's ``CombinedIslandManager`` surface over one program database."""

    def __init__(self, database: ProgramDatabase) -> None:
        self._database = database
        self._rng = np.random.default_rng(database.config.seed)

    @property
    def config(self) -> DatabaseConfig:
        """The database's configuration."""
        return self._database.config

    def get_initialized_islands(self) -> list[int]:
        """Islands that hold at least one correct program, ascending."""
        return [s.island_idx for s in self._database.island_stats() if s.correct > 0]

    def are_all_islands_initialized(self) -> bool:
        """True once every configured island has a correct program."""
        if self.config.num_islands <= 0:
            return True
        return len(self.get_initialized_islands()) >= configured_islands(self.config)

    def get_island_idx(self, program_id: str) -> int | None:
        """The island of a program, or None if it is unknown."""
        program = self._database.get(program_id)
        return None if program is None else program.island_idx

    def get_island_populations(self) -> dict[int, int]:
        """Programs per island."""
        if self.config.num_islands <= 0:
            return {}
        return {s.island_idx: s.programs for s in self._database.island_stats()}

    def should_schedule_migration(self, program: Any) -> bool:
        """True when ``program``'s generation is a migration generation."""
        interval = self.config.migration_interval
        return program.generation > 0 and interval > 0 and program.generation % interval == 0

    def perform_migration(self, current_generation: int) -> bool:
        """Migrate for ``current_generation`` (once per generation); True if any moved."""
        return self._database.migrate_islands(current_generation) > 0

    def spawn_new_island(self) -> bool:
        """Seed a new island with the configured spawn strategy; True if one was made."""
        return self._database.spawn_new_island()

    def assign_island(self, program: Any) -> None:
        """Give ``program`` its parent's island (a root's island is chosen when it is added)."""
        if program.parent_id and program.island_idx is None:
            program.island_idx = self.get_island_idx(program.parent_id)

    def needs_island_copies(self, program: Any) -> bool:
        """True if ``program`` is flagged to be copied to the other islands."""
        return bool((program.metadata or {}).get("_needs_island_copies", False))

    def copy_program_to_islands(self, program: Any) -> list[str]:
        """Nothing to do: the run's first program gets its island copies when it is added."""
        return []

    def get_initial_program(self) -> dict[str, Any] | None:
        """The run's first program as a dict, or None."""
        return _as_dict(self._database._run(_initial_program))

    def get_best_program(self) -> dict[str, Any] | None:
        """The best correct program as a dict, or None."""
        return _as_dict(self._database.get_best_program())

    def get_random_archive_program(self) -> dict[str, Any] | None:
        """A uniformly drawn archive member as a dict, or None."""
        return _as_dict(self._database._run(_random_archive_member, self._rng))

    def get_next_island_index(self) -> int:
        """The index a new island would get: past every island in use and configured."""
        used = [s.island_idx for s in self._database.island_stats()]
        return max(max(used, default=-1) + 1, self.config.num_islands)

    def get_migration_info(self) -> str:
        """The migration policy as ShinkaEvolve prints it, e.g. ``10G, 10%(E)``."""
        text = f"{self.config.migration_interval}G, {self.config.migration_rate * 100:.0f}%"
        return text + "(E)" if self.config.island_elitism else text

    def format_island_display(self) -> str:
        """Island populations in rich markup, e.g. ``I0: 12 | I1: 9``."""
        populations = self.get_island_populations()
        if not populations:
            return f"0 programs in {self.config.num_islands} islands"
        parts = []
        for index, count in sorted(populations.items()):
            colour = f"color({30 + index % 220})"
            parts.append(f"[{colour}]I{index}: {count}[/{colour}]")
        return " | ".join(parts)


def _as_dict(program: Any) -> dict[str, Any] | None:
    return None if program is None else program.to_dict()


async def _initial_program(engine: Engine) -> Program | None:
    async with engine.store.read() as reader:
        return await reader.earliest_program()


async def _random_archive_member(engine: Engine, rng: np.random.Generator) -> Program | None:
    async with engine.store.read() as reader:
        members = await reader.archive_members()
        if not members:
            return None
        return await reader.get(members[int(rng.integers(len(members)))].id)


class IslandSampler:
    """ShinkaEvolve's ``IslandSampler``: pick an island by ``island_selection_strategy``."""

    def __init__(self, database: ProgramDatabase) -> None:
        self._database = database
        self._rng = np.random.default_rng(database.config.seed)

    def sample_island(self, initialized_islands: Sequence[int]) -> int:
        """Draw one of ``initialized_islands`` with the configured strategy's weights."""
        if not initialized_islands:
            raise ValueError("no initialized islands to sample from")
        wanted = set(initialized_islands)
        stats = [s for s in self._database.island_stats() if s.island_idx in wanted]
        if not stats:
            return int(initialized_islands[0])
        strategy = self._database.config.island_selection_strategy
        probabilities = island_probabilities(strategy, stats)
        return stats[choose(self._rng, probabilities)].island_idx
