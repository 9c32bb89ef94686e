"""The ``Program`` record: one candidate program of an evolution run."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["PROGRAM_FIELDS", "Program"]


@dataclass
class Program:
    """A candidate program with its lineage, scores, feedback and embedding.

    Field names and defaults are ShinkaEvolve's, so records written by old code load as is.
    ``text_feedback`` may be given as a list of lines; it is stored joined with newlines.
    ``in_archive`` is read from the archive table and ``children_count`` is maintained by
    the database when children are added.
    """

    id: str
    code: str
    language: str = "python"
    parent_id: str | None = None
    archive_inspiration_ids: list[str] = field(default_factory=list)
    top_k_inspiration_ids: list[str] = field(default_factory=list)
    island_idx: int | None = None
    generation: int = 0
    timestamp: float = field(default_factory=time.time)
    code_diff: str | None = None
    combined_score: float | None = 0.0
    public_metrics: dict[str, Any] = field(default_factory=dict)
    private_metrics: dict[str, Any] = field(default_factory=dict)
    text_feedback: str | list[str] = ""
    correct: bool = False
    children_count: int = 0
    complexity: float = 0.0
    embedding: list[float] = field(default_factory=list)
    embedding_pca_2d: list[float] = field(default_factory=list)
    embedding_pca_3d: list[float] = field(default_factory=list)
    embedding_cluster_id: int | None = None
    migration_history: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    in_archive: bool = False
    system_prompt_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return every field as a plain dict (containers are copied)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in PROGRAM_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Program:
        """Build a program from a dict, ignoring unknown keys and empty JSON values."""
        values = {key: value for key, value in data.items() if key in _FIELD_SET}
        for name, kind in _CONTAINERS.items():
            if name in values and not isinstance(values[name], kind):
                values[name] = kind()
        if values.get("text_feedback") is None and "text_feedback" in values:
            values["text_feedback"] = ""
        return cls(**values)


PROGRAM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Program))
_FIELD_SET = frozenset(PROGRAM_FIELDS)
_CONTAINERS: dict[str, type] = {
    "archive_inspiration_ids": list,
    "top_k_inspiration_ids": list,
    "public_metrics": dict,
    "private_metrics": dict,
    "embedding": list,
    "embedding_pca_2d": list,
    "embedding_pca_3d": list,
    "migration_history": list,
    "metadata": dict,
}
