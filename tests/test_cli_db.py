"""``genesis db ...`` through the real entry point, in-process and as ``python -m genesis``."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from genesis.cli import main
from genesis.database import DatabaseURL, create_store
from genesis.database.backends.postgres_schema import SCHEMA_VERSION as PG_VERSION
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION
from genesis.ops.stores import as_url
from tests.conftest import SHINKA_FILES, TEST_PG_URL, require_postgres
from tests.factories import make_program
from tests.test_ops_copy import fresh_pg_run, populate, seeded

PASSWORD = "pa55-w0rd"  # added to the test server's URL; a trust-auth server ignores it
SECRETS = {PASSWORD, DatabaseURL.parse(TEST_PG_URL).password} - {""}
COMMANDS = ("upgrade", "copy", "verify", "backup", "restore", "runs", "drop-run", "stats")
ROOT = Path(__file__).resolve().parent.parent


def text(url: DatabaseURL) -> str:
    """The URL as typed on a command line: PostgreSQL always with a password."""
    if url.is_sqlite:
        return url.path
    conninfo = (url if url.password else replace(url, password=PASSWORD)).conninfo()
    return f"{conninfo}{'&' if '?' in conninfo else '?'}run={url.run}"


def shown(url: DatabaseURL) -> str:
    """How the commands print the URL typed as ``text(url)``: without the password."""
    return str(as_url(text(url)))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``genesis`` in-process; return the exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert not any(secret in out + err for secret in SECRETS)
    return code, out, err


def python_m(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m genesis`` in a child process."""
    done = subprocess.run([sys.executable, "-m", "genesis", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert not any(secret in done.stdout + done.stderr for secret in SECRETS)
    return done


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("genesis: error: "), err
    return lines[0]


@pytest.fixture
def source(tmp_path: Path) -> DatabaseURL:
    """A SQLite run with lineage, archive, metadata and events."""
    return asyncio.run(seeded(tmp_path / "source.db", 40))[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", command, "--help"])
    assert exited.value.code == 0
    assert "examples:\n  genesis db " + command in capsys.readouterr().out


def test_copy_verify_stats_and_runs(source: DatabaseURL, store_url: DatabaseURL,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "db", "copy", text(source), text(store_url), "--batch-size", "9")
    assert code == 0 and out.startswith(f"copied 41 programs from {source} to {shown(store_url)} ")
    code, out, _ = cli(capsys, "db", "verify", text(source), text(store_url))
    assert code == 0 and "identical: 41 programs compared" in out
    code, out, _ = cli(capsys, "db", "stats", text(store_url), "--json")
    stats = json.loads(out)
    expected = asyncio.run(expected_stats(source))
    assert {key: stats[key] for key in expected} == expected
    assert stats["size_bytes"] > 0 and stats["storage"]["backend"] == store_url.backend
    if store_url.is_postgres:
        assert "idx_programs_island_correct_score" in stats["storage"]["indexes"]
        assert stats["storage"]["pool"]["pool_max"] >= 1
    code, out, _ = cli(capsys, "db", "stats", text(store_url))
    assert code == 0 and "programs       41 (" in out and f"{stats['best']['id']}" in out
    code, out, _ = cli(capsys, "db", "runs", text(store_url))
    name = store_url.path if store_url.is_sqlite else store_url.run
    assert code == 0 and any(line.startswith(f"* {name} ") and " 41 " in line
                             for line in out.splitlines())


async def expected_stats(url: DatabaseURL) -> dict[str, object]:
    """The figures ``stats`` must report, computed from the programs themselves."""
    async with create_store(url, read_only=True) as store, store.read() as reader:
        programs = [p async for batch in reader.iter_programs() for p in batch]
        archive = await reader.archive_count()
    correct = [p for p in programs if p.correct]
    best = max(correct, key=lambda p: (p.combined_score, p.timestamp))
    return {"programs": len(programs), "correct": len(correct),
            "incorrect": len(programs) - len(correct), "archive": archive,
            "generations": len({p.generation for p in programs}),
            "best": {"id": best.id, "score": best.combined_score,
                     "generation": best.generation, "island": best.island_idx}}


def test_copy_refuses_a_non_empty_destination_unless_forced(
    source: DatabaseURL, store_url: DatabaseURL, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(populate(store_url, [make_program()], events=0))
    code, out, err = cli(capsys, "db", "copy", text(source), text(store_url))
    assert code == 2 and out == ""
    assert "is not empty (1 programs" in one_error_line(err) and "--force" in err
    code, out, _ = cli(capsys, "db", "copy", text(source), text(store_url), "--force")
    assert code == 0 and "copied 41 programs" in out
    assert cli(capsys, "db", "verify", text(source), text(store_url))[0] == 0


def test_verify_exits_1_and_names_the_differing_fields(
    source: DatabaseURL, store_url: DatabaseURL, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "db", "copy", text(source), text(store_url))[0] == 0

    async def change() -> str:
        async with create_store(store_url) as store:
            async with store.read() as reader:
                target = await reader.best_program()
            async with store.write() as writer:
                await writer.move_program(target.id, 2, {"from": 0, "to": 2})
        return target.id

    changed = asyncio.run(change())
    code, out, _ = cli(capsys, "db", "verify", text(source), text(store_url), "--limit", "1")
    assert code == 1
    assert f"  program {changed}: fields differ: island_idx, migration_history" in out
    assert "DIFFERENT: 2 differences" in out and "  ... and 1 more" in out


def test_backup_and_restore(source: DatabaseURL, store_url: DatabaseURL, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "restore", text(source), text(store_url))[0] == 0
    file = tmp_path / "backup.db"
    code, out, _ = cli(capsys, "db", "backup", text(store_url), str(file))
    assert code == 0 and out.startswith(f"backed up 41 programs of {shown(store_url)} to {file} (")
    code, _, err = cli(capsys, "db", "backup", text(store_url), str(file))
    assert code == 2 and "exists; use --force" in one_error_line(err)
    assert cli(capsys, "db", "backup", text(store_url), str(file), "--force")[0] == 0
    code, _, err = cli(capsys, "db", "restore", str(file), text(store_url))
    assert code == 2 and "not empty" in one_error_line(err)
    code, out, _ = cli(capsys, "db", "restore", str(file), text(store_url), "--force")
    assert code == 0 and out.startswith(f"restored 41 programs from sqlite:///{file}")
    assert cli(capsys, "db", "verify", text(source), str(file))[0] == 0


@pytest.mark.parametrize("legacy", SHINKA_FILES[:2], ids=lambda p: p.stem)
def test_upgrade_a_shinka_file(legacy: Path, shinka_copy,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = shinka_copy(legacy)
    code, out, _ = cli(capsys, "db", "upgrade", str(path))
    assert code == 0 and out == f"sqlite:///{path}: schema version 0 -> {SCHEMA_VERSION} " \
                                "(upgraded)\n"
    code, out, _ = cli(capsys, "db", "upgrade", f"sqlite:///{path}")
    assert code == 0 and out.endswith(f"schema version {SCHEMA_VERSION} (already current)\n")


def test_upgrade_and_stats_default_to_database_url(
    source: DatabaseURL, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", str(source))
    code, out, _ = cli(capsys, "db", "upgrade")
    assert code == 0 and out.startswith(f"{source}: schema version {SCHEMA_VERSION}")
    code, out, _ = cli(capsys, "db", "stats", "--json")
    assert code == 0 and json.loads(out)["programs"] == 41


def test_postgres_upgrade_runs_and_drop_run(source: DatabaseURL, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with fresh_pg_run() as run:
        assert cli(capsys, "db", "copy", text(source), text(run))[0] == 0
        code, out, _ = cli(capsys, "db", "upgrade", text(run))
        assert code == 0 and out == f"{shown(run)}: schema version {PG_VERSION} (already current)\n"
        code, out, _ = cli(capsys, "db", "runs", text(run.with_run("default")))
        assert code == 0 and any(line.split()[:2] == [run.run, "41"]
                                 for line in out.splitlines())
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code, _, err = cli(capsys, "db", "drop-run", text(run))
        assert code == 2 and "pass --yes" in one_error_line(err)
        monkeypatch.setattr(sys, "stdin", io.StringIO("not-the-name\n"))
        code, out, _ = cli(capsys, "db", "drop-run", text(run))
        assert code == 1 and out.endswith("not dropped\n")
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"{run.run}\n"))
        code, out, _ = cli(capsys, "db", "drop-run", text(run))
        assert code == 0 and f"dropped run {run.run!r} (41 programs)" in out
        code, _, err = cli(capsys, "db", "drop-run", text(run), "--yes")
        assert code == 2 and f"no run {run.run!r}" in one_error_line(err)
        code, _, err = cli(capsys, "db", "upgrade", text(run))
        assert code == 2 and "does not exist" in one_error_line(err)


def test_drop_run_refuses_a_sqlite_file(source: DatabaseURL,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "db", "drop-run", text(source), "--yes")
    assert code == 2 and f"delete {source.path}" in one_error_line(err)
    assert Path(source.path).exists()


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Arguments that must fail, with a fragment of their error message."""
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE users (id INTEGER)").connection.close()
    return {
        "scheme": (f"mysql://root:{PASSWORD}@host/db", "unsupported scheme 'mysql'"),
        "port": (f"postgresql://u:{PASSWORD}@127.0.0.1:port/db", "port must be a number"),
        "slashes": ("sqlite://run.db", "three slashes"),
        "run name": ("postgresql://u@127.0.0.1/db?run=Bad-Name", ": invalid run name 'Bad-Name'"),
        "missing file": (str(tmp_path / "missing.db"), "database file not found"),
        "directory": (str(tmp_path), "is a directory"),
        "text file": (str(text_file), "not an SQLite program database"),
        "other tables": (str(other), "no 'programs' table"),
    }


@pytest.mark.parametrize("command",
                         ["stats", "runs", "upgrade", "verify", "copy", "backup", "restore"])
def test_bad_sources_fail_with_one_line_and_create_nothing(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, (argument, message) in bad_inputs(tmp_path).items():
        out_file = str(tmp_path / "out.db")
        extra = {"verify": [argument], "copy": [out_file], "backup": [out_file],
                 "restore": [out_file]}.get(command, [])
        code, out, err = cli(capsys, "db", command, argument, *extra)
        assert (code, out) == (2, ""), name
        assert message in one_error_line(err), name
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "out.db").exists()


def test_unreachable_server_and_missing_run(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = require_postgres()
    closed_port = text(replace(url, port=1))
    code, _, err = cli(capsys, "db", "stats", closed_port)
    assert code == 2 and "cannot connect to PostgreSQL at " in one_error_line(err)
    target = tmp_path / "x.db"
    code, _, err = cli(capsys, "db", "copy", text(url.with_run("no_such_run_here")), str(target))
    assert code == 2 and "run 'no_such_run_here' does not exist" in one_error_line(err)
    assert not target.exists()


@pytest.mark.slow
def test_python_m_genesis_copy_verify_and_errors(source: DatabaseURL, store_url: DatabaseURL,
                                                 tmp_path: Path) -> None:
    done = python_m("db", "copy", text(source), text(store_url))
    assert done.returncode == 0, done.stderr
    assert "copied 41 programs" in done.stdout and "copy  41/41 programs (100%)" in done.stderr
    done = python_m("db", "verify", text(source), text(store_url))
    assert done.returncode == 0 and "identical" in done.stdout
    done = python_m("db", "stats", text(store_url), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["programs"] == 41
    done = python_m("db", "stats", str(tmp_path / "missing.db"))
    assert done.returncode == 2 and one_error_line(done.stderr).endswith(
        f"database file not found: {tmp_path / 'missing.db'}")
    done = python_m("db", "copy", text(source), text(store_url))
    assert done.returncode == 2 and "not empty" in one_error_line(done.stderr)
