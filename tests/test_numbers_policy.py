"""Non-finite numbers: never a refused program (stored as null, one warning), unless strict.

An evaluator returning NaN must not crash a days-long run: on both backends the engine
stores a non-finite score and every non-finite JSON number as null, drops an embedding that
holds one, and logs one warning naming the fields. ``strict_numbers=True`` refuses instead.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from genesis.database import (
    AsyncProgramDatabase,
    DatabaseConfig,
    DatabaseURL,
    InvalidProgramError,
    Program,
)


def _config(store_url: DatabaseURL, **options: object) -> DatabaseConfig:
    return DatabaseConfig(database_url=str(store_url) if store_url.is_postgres else None,
                          db_path=store_url.path or None, pool_max_size=4, seed=1, **options)


def _nan_program(pid: str = "p1") -> Program:
    return Program(id=pid, code="def f():\n    return 1\n", correct=True,
                   combined_score=math.nan,
                   public_metrics={"loss": math.inf, "ok": 1.5, "arr": np.array([1.0, np.nan])},
                   private_metrics={"deep": {"x": [1.0, -math.inf]}},
                   metadata={"m": np.float64("nan"), "keep": "text"},
                   embedding=[0.1, math.nan, 0.3])


async def test_non_finite_numbers_are_stored_as_null_with_one_warning(
        store_url: DatabaseURL, caplog: pytest.LogCaptureFixture) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        with caplog.at_level(logging.WARNING, logger="genesis.database"):
            await db.add(_nan_program())
        stored = await db.get("p1")
        assert stored is not None
        assert stored.combined_score is None
        assert stored.public_metrics == {"loss": None, "ok": 1.5, "arr": [1.0, None]}
        assert stored.private_metrics == {"deep": {"x": [1.0, None]}}
        assert stored.metadata["m"] is None and stored.metadata["keep"] == "text"
        assert stored.embedding == []
        warnings = [r for r in caplog.records if "NaN or infinity" in r.getMessage()]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        for field in ("combined_score", "public_metrics['loss']", "embedding[1]",
                      "private_metrics['deep']['x'][1]", "metadata['m']"):
            assert field in message
        # A null score counts as no score: the program is never the best one.
        assert await db.get_best_program() is None
        await db.add(Program(id="p2", code="x = 2\n", parent_id="p1", correct=True,
                             combined_score=0.1, generation=1))
        assert (await db.get_best_program()).id == "p2"


async def test_metadata_updates_follow_the_same_policy(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url)) as db:
        await db.add(Program(id="p1", code="x = 1\n"))
        assert await db.update_program_metadata("p1", {"cost": math.nan, "n": 2})
        assert (await db.get("p1")).metadata == {"cost": None, "n": 2}
        assert not await db.update_program_metadata("missing", {})


async def test_strict_numbers_refuses_and_stores_nothing(store_url: DatabaseURL) -> None:
    async with AsyncProgramDatabase(_config(store_url, strict_numbers=True)) as db:
        with pytest.raises(InvalidProgramError) as info:
            await db.add(Program(id="p1", code="x = 1\n", combined_score=math.nan))
        assert info.value.field == "combined_score"
        assert await db.count() == 0
        program = Program(id="p2", code="x = 1\n", public_metrics={"loss": math.inf})
        with pytest.raises(InvalidProgramError, match=r"public_metrics\['loss'\]"):
            await db.add(program)
        assert await db.count() == 0
