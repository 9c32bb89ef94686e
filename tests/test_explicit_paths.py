"""Explicit locations: a missing folder is an error naming it; a bare URL says where it went.

Only the default data folder (and a legacy ``db_path``'s, as ShinkaEvolve does) is created;
the folder of a file named by a URL or on the command line must exist, and its absence is
one line naming the setting and the path. A PostgreSQL URL that leaves host or database to
libpq is shown with the server, database and user it resolved to.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.cli import main
from genesis.database import (
    AsyncProgramDatabase,
    ConfigurationError,
    DatabaseConfig,
    DatabaseURL,
    create_store,
)
from tests.conftest import drop_pg_run, new_pg_run_url
from tests.factories import make_program

ROOT = Path(__file__).resolve().parent.parent


def one_line(err: str) -> str:
    """The single line of a command's error."""
    assert err.count("\n") == 1 and err.startswith("genesis: error: "), err
    return err


async def test_a_url_never_creates_its_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    url = f"sqlite:///{missing / 'x.db'}"
    with pytest.raises(ConfigurationError) as info:
        await AsyncProgramDatabase(DatabaseConfig(database_url=url)).open()
    assert str(info.value).startswith(f"database_url {missing / 'x.db'}: the folder {missing} "
                                      "does not exist")
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigurationError) as info:
        await AsyncProgramDatabase(DatabaseConfig(db_path="ignored.db")).open()
    assert str(info.value).startswith("DATABASE_URL ")
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("command", ["copy", "backup", "restore", "demo"])
def test_commands_refuse_a_missing_folder_in_one_line(command: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    source = DatabaseURL.sqlite(tmp_path / "source.db")
    with_program(source)
    target = tmp_path / "nonexist2" / "x.db"
    args = {"copy": ["db", "copy", source.path, str(target)],
            "backup": ["db", "backup", source.path, str(target)],
            "restore": ["db", "restore", source.path, str(target)],
            "demo": ["demo", "--url", f"sqlite:///{target}", "--programs", "1"]}[command]
    assert main(args) == 2
    setting = {"copy": "DST", "backup": "FILE", "restore": "URL", "demo": "database_url"}
    assert f"{setting[command]} {target}: the folder {target.parent} does not exist" in \
        one_line(capsys.readouterr().err)
    assert not target.parent.exists()


def with_program(url: DatabaseURL) -> None:
    """Write one program into the run at ``url``."""

    async def write() -> None:
        async with create_store(url) as store:
            await store.add(make_program())

    asyncio.run(write())


async def test_the_default_data_folder_and_a_legacy_db_path_are_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "data" / "here"))
    async with AsyncProgramDatabase(DatabaseConfig()) as db:
        assert Path(db.url.path) == tmp_path / "data" / "here" / "evolution.db"
    legacy = tmp_path / "results_1" / "programs.sqlite"
    async with AsyncProgramDatabase(DatabaseConfig(db_path=str(legacy))):
        assert legacy.exists()


def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for data_dir, problem in ((blocker, "is not a folder"), (blocker / "x", "cannot create")):
        monkeypatch.setenv("GENESIS_DATA_DIR", str(data_dir))
        assert main(["demo", "--programs", "1"]) == 2
        err = one_line(capsys.readouterr().err)
        assert "GENESIS_DATA_DIR" in err and problem in err and str(data_dir) in err


@pytest.mark.postgres
def test_a_bare_postgres_url_names_the_server_it_resolved_to(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_pg_run_url()
    libpq = {"PGHOST": url.host, "PGPORT": str(url.port or 5432), "PGUSER": url.user,
             "PGDATABASE": url.database, "GENESIS_RUN": url.run, "DATABASE_URL": "postgresql://"}
    expected = (f"PostgreSQL at {url.host}:{url.port or 5432}, database {url.database}, "
                f"user {url.user}, run {url.run!r}")
    for name, value in libpq.items():
        monkeypatch.setenv(name, value)
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "genesis", "demo", "--programs", "2", "--seconds", "30",
             "--workers", "1", "--eval-workers", "1"],
            capture_output=True, text=True, timeout=180, cwd=ROOT, env=dict(os.environ))
        assert demo.returncode == 0, demo.stderr
        assert f"evolving into postgresql:///?run={url.run}: {expected}" in demo.stderr
        assert main(["db", "stats"]) == 0
        assert f"location       {expected}" in capsys.readouterr().out
    finally:
        drop_pg_run(url)
