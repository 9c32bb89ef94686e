"""pandas DataFrames of a run (the optional ``frames`` extra: pandas, pyarrow)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from genesis.database.errors import ConfigurationError

__all__ = ["collect_frame", "require"]


def require(module: str, purpose: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(f"{purpose} needs {module}: pip install "
                                 "\"genesis-evolve[frames]\"") from None


async def collect_frame(batches: AsyncIterator[list[tuple[Any, ...]]], names: list[str]
                        ) -> Any:
    """Build one DataFrame with columns ``names`` from batches of value tuples, a frame each."""
    pandas = require("pandas", "to_dataframe")
    frames = [pandas.DataFrame.from_records(batch, columns=names) async for batch in batches]
    if not frames:
        return pandas.DataFrame(columns=names)
    return pandas.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
