"""``shinka.database.display``: ``DatabaseDisplay``, the console summaries of a run.

Same constructor as ShinkaEvolve's; the text is printed with the console's ``print`` when
one is given (a rich console renders the island markup), else to stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DatabaseDisplay"]


class DatabaseDisplay:
    """Print one-program and whole-run summaries."""

    def __init__(
        self,
        cursor: Any,
        conn: Any,
        config: Any,
        island_manager: Any,
        count_programs_func: Callable[[], int],
        get_best_program_func: Callable[[], Any | None],
        default_console: Any = None,
    ) -> None:
        self.cursor = cursor
        self.conn = conn
        self.config = config
        self.island_manager = island_manager
        self.count_programs_func = count_programs_func
        self.get_best_program_func = get_best_program_func
        self.default_console = default_console

    def set_default_console(self, console: Any) -> None:
        """Use ``console`` when a method is given none."""
        self.default_console = console

    def _print(self, text: str, console: Any) -> None:
        target = console or self.default_console
        (target.print if target is not None and hasattr(target, "print") else print)(text)

    def print_program_summary(self, program: Any, console: Any = None) -> None:
        """Print one line about a newly added program."""
        self._print(
            f"program {program.id} gen {program.generation} island {program.island_idx} "
            f"score {program.combined_score} correct {program.correct} "
            f"parent {program.parent_id}", console)

    def print_summary(self, console: Any = None, total_program_target: int | None = None) -> None:
        """Print the program count, islands, migration policy and best program."""
        count = self.count_programs_func()
        target = f"/{total_program_target}" if total_program_target else ""
        best = self.get_best_program_func()
        best_text = "none yet" if best is None else \
            f"{best.id} (score {best.combined_score}, gen {best.generation})"
        lines = [f"programs: {count}{target}", f"best: {best_text}"]
        if self.island_manager is not None:
            lines.append(f"islands: {self.island_manager.format_island_display()}")
            lines.append(f"migration: {self.island_manager.get_migration_info()}")
        self._print("\n".join(lines), console)
