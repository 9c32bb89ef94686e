"""Errors of the operations tooling (copy, restore, backup, drop-run)."""

from __future__ import annotations

from genesis.database.errors import GenesisError

__all__ = ["RefusedError", "SourceChangedError"]


class RefusedError(GenesisError):
    """The operation stopped rather than overwrite or destroy data, or mix two runs' data."""


class SourceChangedError(RefusedError):
    """The source of an interrupted copy changed since the copy began, so it cannot resume."""
