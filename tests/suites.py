"""The behavioural suites, to collect again in a module that changes how a run is reached
(through PgBouncer, with reads on a standby): that module overrides ``backend`` and
``store_url`` and does ``globals().update(behavioural_suites())``."""

from __future__ import annotations

from typing import Any

from tests import test_engine, test_store

__all__ = ["behavioural_suites"]


def behavioural_suites() -> dict[str, Any]:
    """Every test of ``tests/test_store.py`` and ``tests/test_engine.py``, and the engine
    suite's ``open_db`` fixture, by name."""
    return {name: getattr(suite, name) for suite in (test_store, test_engine)
            for name in dir(suite) if name.startswith("test_") or name == "open_db"}
