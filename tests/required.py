"""Optional pieces of the test environment: a test skips without one, and fails instead
where its ``GENESIS_REQUIRE_*`` variable is set (CI sets them all, so nothing skips there)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["cannot_run"]


def cannot_run(reason: str, variable: str) -> NoReturn:
    """Skip for ``reason``, or fail when the environment variable ``variable`` requires it."""
    if os.environ.get(variable, "") not in ("", "0"):
        pytest.fail(f"{variable}=1 but {reason}", pytrace=False)
    pytest.skip(reason)
