"""Every example of README.md runs as written: its Python blocks and its `genesis` commands.

Each ```python block runs in a fresh folder, once with DATABASE_URL unset (SQLite in that
folder) and once against a fresh run on the PostgreSQL test server (DATABASE_URL and
GENESIS_RUN set): the README's Python examples are all backend-neutral, as it promises.
The `genesis` command lines of the ```bash blocks run in README order in one folder, later
ones using the files earlier ones wrote, with this checkout's ``python -m genesis``;
`genesis demo` gets :data:`DEMO_LIMITS` appended (the last value of an option wins). What
does not run is listed below with its reason: a line that is neither run nor listed fails
the test, and so does a listed entry the README no longer has.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, TEST_PG_URL, drop_pg_run, require_postgres

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=")

SKIPPED_BLOCKS = {  # a bash block holding this text does not run, for this reason
    "db.example.org": "it talks to a remote PostgreSQL server",
    "docker compose": "it starts containers (tests/test_postgres_docker.py checks the files)",
    "genesis shinka": "it runs a ShinkaEvolve project (tests/test_shinka_runner.py runs one)",
    "@db/genesis": "it copies to a remote PostgreSQL host named db",
}
SKIPPED_COMMANDS = {  # commands of the other bash blocks that are not `genesis` commands
    "pip install": "it changes the environment the tests run in",
    "apt-get install": "it installs system packages (CI does it: .ci/run)",
    "python -m pytest": "it is the test suite itself",
    "ruff check": "it is the linter",
    "bash benchmarks/setup_shinka.sh": "it downloads ShinkaEvolve from PyPI",
    "python -m benchmarks": "the benchmarks take minutes",
}
DEMO_LIMITS = ["--programs", "12", "--seconds", "15", "--workers", "2", "--eval-workers", "1"]


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of one language, in order."""
    return [m.group(2) for m in BLOCK.finditer(README) if m.group(1) == language]


def commands() -> tuple[list[list[str]], set[str]]:
    """The `genesis` commands to run (with their variable assignments), and the skips used."""
    runnable: list[list[str]] = []
    used: set[str] = set()
    for block in blocks("bash"):
        marker = next((m for m in SKIPPED_BLOCKS if m in block), None)
        if marker is not None:
            used.add(marker)
            continue
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            for chained, group in itertools.groupby(words, lambda word: word == "&&"):
                if chained:
                    continue
                segment = list(group)
                program = [w for w in segment if not ASSIGNMENT.match(w)]
                if program[:1] == ["genesis"]:
                    runnable.append(segment)
                    continue
                text = " ".join(program)
                skip = next((s for s in SKIPPED_COMMANDS if text.startswith(s)), None)
                assert skip is not None, f"README bash line neither run nor skipped: {line!r}"
                used.add(skip)
    return runnable, used


def environment(**extra: str) -> dict[str, str]:
    """This checkout importable, and no database settings but ``extra``."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "GENESIS_RUN", "GENESIS_DATA_DIR", "GENESIS_DEBUG")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_every_skip_is_still_needed() -> None:
    _, used = commands()
    assert set(SKIPPED_BLOCKS) | set(SKIPPED_COMMANDS) == used


@pytest.mark.slow
def test_the_genesis_commands_run(tmp_path: Path) -> None:
    runnable, _ = commands()
    assert any(c[:3] == ["genesis", "db", "stats"] for c in runnable)
    for segment in runnable:
        assignments = dict(w.split("=", 1) for w in segment if ASSIGNMENT.match(w))
        argv = [w for w in segment if not ASSIGNMENT.match(w)][1:]
        if argv[0] == "demo":
            argv += DEMO_LIMITS
        done = subprocess.run([sys.executable, "-m", "genesis", *argv], cwd=tmp_path,
                              env=environment(**assignments), capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"{shlex.join(segment)}:\n{done.stderr}"


VIEW_ADDRESS = "127.0.0.1:8765"  # an example that talks to it gets a `genesis view` served
SEED_RUN = """
from genesis.database import DatabaseConfig, Program, ProgramDatabase
with ProgramDatabase(DatabaseConfig()) as db:
    db.add(Program(id="p0", code="x = 1\\n", correct=True, combined_score=0.5))
"""


@contextmanager
def view_served(folder: Path, env: dict[str, str]) -> Iterator[None]:
    """Serve the configured run (seeded with a program) with `genesis view` on its port."""
    subprocess.run([sys.executable, "-c", SEED_RUN], cwd=folder, env=env, check=True,
                   timeout=120)
    server = subprocess.Popen([sys.executable, "-m", "genesis", "view", "--port",
                               VIEW_ADDRESS.rsplit(":", 1)[1]], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{VIEW_ADDRESS}/api/runs", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("genesis view did not start: "
                                         f"{server.stderr.read()}") from None
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_the_python_examples_run(index: int, backend: str, tmp_path: Path) -> None:
    code = blocks("python")[index]
    example = tmp_path / "example.py"
    example.write_text(code)
    run = require_postgres().with_run(f"t_{uuid.uuid4().hex[:16]}") \
        if backend == "postgres" else None
    env = environment(**({"DATABASE_URL": TEST_PG_URL, "GENESIS_RUN": run.run} if run else {}))
    try:
        with view_served(tmp_path, env) if VIEW_ADDRESS in code else nullcontext():
            done = subprocess.run([sys.executable, example.name], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
    finally:
        if run is not None:
            drop_pg_run(run)
    assert done.returncode == 0, done.stderr
    if run is not None:
        assert [p.name for p in tmp_path.iterdir()] == ["example.py"]  # all in PostgreSQL


def test_the_license_changelog_and_guide_exist_and_every_link_resolves() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "Apache-2.0" }' in pyproject
    license_text = " ".join((ROOT / "LICENSE").read_text().split())
    assert license_text.startswith("Apache License Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a notice
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert version is not None
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## Unreleased\n" in changelog and f"\n## {version.group(1)}\n" in changelog
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert {"LICENSE", "CHANGELOG.md", "docs/migrating-from-shinkaevolve.md"} <= set(links)
    assert [link for link in links if not (ROOT / link).exists()] == []
