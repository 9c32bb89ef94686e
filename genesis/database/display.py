"""Plain-text rendering of a run's summary (``print_summary`` and the CLI)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary"]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_summary(summary: dict[str, Any], total_program_target: int | None = None) -> str:
    """Render the dict returned by ``AsyncProgramDatabase.summary()`` as a small table."""
    target = f" / {total_program_target}" if total_program_target else ""
    lines = [
        f"Run {summary['url']}",
        f"  programs {summary['programs']}{target}, correct {summary['correct']}, "
        f"archive {summary['archive']}/{summary['archive_size']}, "
        f"last generation {summary['last_iteration']}",
        "",
        f"  {'island':>6}  {'programs':>8}  {'correct':>7}  {'best score':>10}",
    ]
    for island in summary["islands"]:
        lines.append(f"  {island['island_idx']:>6}  {island['programs']:>8}  "
                     f"{island['correct']:>7}  {_score(island['best_score']):>10}")
    best = summary.get("best")
    if best:
        lines += ["", f"  best: {best['id']} score {_score(best['score'])} "
                      f"(generation {best['generation']}, island {best['island']})"]
    return "\n".join(lines)
