"""The ShinkaEvolve 0.0.7 virtual environment that tests compare Genesis with.

``bash benchmarks/setup_shinka.sh`` makes it (``SHINKA_VENV`` overrides where). Tests that
need it skip with the reason when it is missing, and fail instead under
``GENESIS_REQUIRE_SHINKA=1`` (set by CI, which builds it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.required import cannot_run

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("SHINKA_VENV", ROOT / "benchmarks" / ".venv-shinka"))


def shinka_python() -> Path:
    """Return the venv's interpreter, or skip (fail under GENESIS_REQUIRE_SHINKA=1)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        reason = f"ShinkaEvolve venv missing at {VENV}: run bash benchmarks/setup_shinka.sh"
        cannot_run(reason, "GENESIS_REQUIRE_SHINKA")
    return python


def run_in_shinka(script: str, *args: str, env: dict[str, str] | None = None,
                  timeout: float = 120) -> Any:
    """Run a Python script in ShinkaEvolve's venv; return the JSON it prints last."""
    done = subprocess.run([str(shinka_python()), "-c", script, *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise AssertionError(f"ShinkaEvolve script failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
