"""The ``genesis`` entry point itself: no traceback ever, argument parsing, run-name errors."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.cli import EXIT_BROKEN_PIPE, EXIT_INTERNAL, build_parser, main
from genesis.cli import db as db_cli
from genesis.database import ConfigurationError, DatabaseConfig
from tests.test_ops_copy import seeded

ROOT = Path(__file__).resolve().parent.parent
DB_COMMANDS = ["upgrade", "copy", "verify", "backup", "restore", "runs", "drop-run", "stats",
               "search", "query", "lineage", "export", "index"]
CLOSED_PORT = "postgresql://u@127.0.0.1:1/db"  # never contacted: the run name fails first


@pytest.fixture
def run_file(tmp_path: Path) -> str:
    """A SQLite run with a few programs."""
    return asyncio.run(seeded(tmp_path / "run.db", 5))[0].path


@pytest.fixture(autouse=True)
def no_configured_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Commands must not see the caller's database settings."""
    for name in ("DATABASE_URL", "GENESIS_RUN", "GENESIS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path / "data"))


def test_an_unexpected_error_is_one_line_and_verbose_shows_its_traceback(
    run_file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(url: object) -> dict[str, object]:
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(db_cli, "run_stats", broken)
    assert main(["db", "stats", run_file]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.splitlines() == ["genesis: internal error: ValueError: boom "
                                "(-v or GENESIS_DEBUG=1 shows the traceback)"]
    assert main(["db", "stats", run_file, "-v"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err
    monkeypatch.setenv("GENESIS_DEBUG", "1")
    assert main(["db", "stats", run_file]) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("json_output", [False, True])
def test_a_closed_output_pipe_ends_quietly(run_file: str, json_output: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "genesis", "db", "stats", run_file]
    with subprocess.Popen([*command, *(["--json"] if json_output else [])], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line: as with `| head -0`
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert (code, err) == (EXIT_BROKEN_PIPE, "")


@pytest.mark.parametrize("where", [0, 1, 2, 3])
def test_verbose_is_accepted_anywhere(where: int, run_file: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["db", "stats", run_file]
    argv.insert(where, "-v")
    assert main(argv) == 0
    assert "programs" in capsys.readouterr().out


def test_an_unknown_option_is_named_with_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", "--bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "genesis db: error: unrecognized arguments: --bogus (commands: " \
        f"{', '.join(DB_COMMANDS)})" in err
    with pytest.raises(SystemExit):
        main(["db"])
    assert "a command is required (commands: upgrade," in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["db", "stats", "--bogus"])
    assert "genesis db stats: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_the_top_level_help_lists_every_db_command(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    db_parser = next(a for a in parser._actions if a.dest == "command").choices["db"]
    assert db_parser.command_names() == DB_COMMANDS
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["--help"])
    line = next(li for li in capsys.readouterr().out.splitlines() if li.strip().startswith("db"))
    assert line.split(": ", 1)[1].split(", ") == DB_COMMANDS


BAD_RUN_PATHS = {
    "--run": (["demo", "--run", "Bad-Name", "--url", CLOSED_PORT], {}),
    "?run= in --url": (["demo", "--url", f"{CLOSED_PORT}?run=Bad-Name"], {}),
    "GENESIS_RUN": (["db", "runs"], {"DATABASE_URL": CLOSED_PORT, "GENESIS_RUN": "Bad-Name"}),
    "?run= in DATABASE_URL": (["db", "stats"], {"DATABASE_URL": f"{CLOSED_PORT}?run=Bad-Name"}),
    "?run= in URL": (["db", "stats", f"{CLOSED_PORT}?run=Bad-Name"], {}),
    "?run= in SRC": (["db", "copy", f"{CLOSED_PORT}?run=Bad-Name", "x.db"], {}),
}


@pytest.mark.parametrize("setting", [*BAD_RUN_PATHS, "shinka --run"])
def test_a_bad_run_name_is_reported_alike_naming_its_setting(
    setting: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if setting == "shinka --run":
        argv, env, setting = ["shinka", "--run", "Bad-Name", "--", "true"], {}, "--run"
    else:
        argv, env = BAD_RUN_PATHS[setting]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"genesis: error: {setting}: invalid run name 'Bad-Name'; use 1-40 lowercase letters, "
        "digits or '_', starting with a letter\n")


def test_a_bad_run_name_in_the_config_names_the_field() -> None:
    with pytest.raises(ConfigurationError,
                       match=re.escape("DatabaseConfig.run_name: invalid run name 'Bad-Name';")):
        DatabaseConfig(run_name="Bad-Name")
