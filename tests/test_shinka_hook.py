"""The opt-in import hook and ``genesis shinka``: ``shinka.database`` resolves to Genesis.

A stand-in ``shinka`` package (no ShinkaEvolve needed) shows the mechanics: the alias, its
submodules, a clear error for what Genesis does not provide, the refusal to install late,
and the environment ``genesis shinka`` gives a command and the processes it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.cli.shinka import BOOT, shinka_environment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_shinka(tmp_path: Path) -> Path:
    """A folder holding a ``shinka`` package with its own (SQLite) ``shinka.database``."""
    package = tmp_path / "fake" / "shinka"
    (package / "database").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "database" / "__init__.py").write_text("ORIGINAL = True\n")
    (package / "database" / "parents.py").write_text("")
    return package.parent


def _python(code: str, path: list[Path], env: dict[str, str] | None = None,
            argv: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(env or os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([*map(str, path), environ.get("PYTHONPATH", "")])
    return subprocess.run(argv or [sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=60, cwd=ROOT)


HOOKED = """
from genesis.compat.shinka import hook
hook.install()
import shinka.database as d
import genesis.compat.shinka as g
from shinka.database import ProgramDatabase, SystemPromptDatabase
from shinka.database.async_dbase import AsyncProgramDatabase
from shinka.database.inspirations import InspirationContextBuilder
import shinka.database.islands
assert d is g and not hasattr(d, "ORIGINAL")
assert ProgramDatabase is g.ProgramDatabase and AsyncProgramDatabase is g.AsyncProgramDatabase
assert shinka.database.islands.__name__ == "genesis.compat.shinka.islands"
try:
    import shinka.database.parents
except ModuleNotFoundError as exc:
    print("refused:", exc)
hook.uninstall()
import importlib
assert importlib.import_module("shinka.database").ORIGINAL
print("ok")
"""


def test_the_hook_aliases_shinka_database(fake_shinka: Path) -> None:
    done = _python(HOOKED, [fake_shinka, ROOT])
    assert done.returncode == 0, done.stderr
    assert "refused: shinka.database.parents is ShinkaEvolve's own module" in done.stdout
    assert done.stdout.strip().endswith("ok")


def test_the_hook_refuses_to_install_after_shinkaevolve_was_imported(fake_shinka: Path) -> None:
    code = ("import shinka.database\nfrom genesis.compat.shinka import hook\n"
            "try:\n    hook.install()\nexcept RuntimeError as exc:\n    print(exc)\n")
    done = _python(code, [fake_shinka, ROOT])
    assert "already imported; install the Genesis hook before" in done.stdout, done.stderr


CHILD = """
import subprocess, sys
import shinka.database as d
print("child", d.__name__)
out = subprocess.run([sys.executable, "-c", "import shinka.database as d; print(d.__name__)"],
                     capture_output=True, text=True).stdout.strip()
print("grandchild", out)
"""


def test_genesis_shinka_runs_a_command_and_its_children_on_genesis(fake_shinka: Path,
                                                                   tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    marker = tmp_path / "marker"
    (other / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_shinka), str(ROOT),
                                                        str(other)])}
    done = subprocess.run([sys.executable, "-m", "genesis", "shinka", "--run", "exp_1", "--",
                           sys.executable, "-c", CHILD + "import os; print(os.environ["
                           "'GENESIS_RUN'])"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:4] == ["child", "genesis.compat.shinka", "grandchild", "genesis.compat.shinka"]
    assert lines[-1] == "exp_1"
    # The shadowed sitecustomize ran in genesis itself and, chained, in the child and grandchild.
    assert marker.read_text() == "xxx"


def test_genesis_shinka_refuses_a_missing_or_unknown_command() -> None:
    empty = subprocess.run([sys.executable, "-m", "genesis", "shinka"], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert empty.returncode == 2 and "needs a command after --" in empty.stderr
    unknown = subprocess.run([sys.executable, "-m", "genesis", "shinka", "--",
                              "no-such-command-here"], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert unknown.returncode == 127 and "command not found" in unknown.stderr


def test_the_environment_keeps_pythonpath_and_checks_settings() -> None:
    env = shinka_environment("postgresql://u:pw@h/db", "exp_2", {"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOT), "/x"]
    assert env["DATABASE_URL"] == "postgresql://u:pw@h/db" and env["GENESIS_RUN"] == "exp_2"
    with pytest.raises(ValueError, match="--run"):
        shinka_environment(None, "Bad Run", {})
    with pytest.raises(ValueError, match="--url"):
        shinka_environment("mysql://x", None, {})
