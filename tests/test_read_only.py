"""Reading changes nothing: commands and API calls that only read leave every byte as it was.

Each real ShinkaEvolve file is read by every read-only command (``stats``, ``runs``,
``verify``, ``backup``, ``copy`` and ``restore`` from it) and through the API opened with
``read_only=True``; afterwards its folder holds the same files with the same bytes, with no
``-wal``, ``-shm`` or lock file added. What is read equals what plain ``sqlite3`` reads, and
what the same file reads once upgraded.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from genesis.cli import main
from genesis.database import AsyncProgramDatabase, DatabaseConfig, ProgramDatabase
from genesis.database.backends.sqlite_schema import SCHEMA_VERSION
from genesis.ops import run_stats, upgrade_run, verify_runs
from tests.conftest import SHINKA_FILES
from tests.test_legacy_files import programs_by_plain_sqlite

FILES = pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)


def fingerprint(folder: Path) -> dict[str, str]:
    """The files directly in ``folder`` with the sha256 of each."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file()}


def plain_reading(path: Path, tmp_path: Path) -> dict:
    """The programs of a copy of ``path``, as plain sqlite3 reads them."""
    other = tmp_path / "plain"
    other.mkdir()
    return programs_by_plain_sqlite(Path(shutil.copy(path, other)))


@FILES
def test_read_only_commands_change_no_byte(source: Path, shinka_copy, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = str(shinka_copy(source))
    before = fingerprint(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["stats", path], ["stats", path, "--json"], ["runs", path],
                 ["verify", path, path], ["backup", path, str(out / "backup.db")],
                 ["copy", path, str(out / "copy.db")], ["verify", path, str(out / "copy.db")],
                 ["restore", path, str(out / "restored.db")]):
        assert main(["db", *args]) == 0, (args, capsys.readouterr().err)
    assert "schema version 0" in capsys.readouterr().out
    assert fingerprint(tmp_path) == before


@FILES
async def test_read_only_api_reads_an_older_file_as_it_is(source: Path, shinka_copy,
                                                          tmp_path: Path) -> None:
    path = shinka_copy(source)
    expected = plain_reading(path, tmp_path)
    before = fingerprint(tmp_path)
    config = DatabaseConfig(db_path=str(path), num_islands=2, seed=3)
    async with AsyncProgramDatabase(config, read_only=True) as db:
        async with db.store.read() as reader:
            read = {p.id: p async for batch in reader.iter_programs(7) for p in batch}
        assert read == expected and await db.count() == len(expected)
        correct = [p for p in expected.values() if p.correct]
        best = await db.get_best_program()
        assert (best and best.combined_score) == max(
            (p.combined_score for p in correct if p.combined_score is not None), default=None)
        top = await db.get_top_programs(3)
        assert [p.combined_score for p in top] == sorted(
            (p.combined_score for p in expected.values() if p.combined_score is not None),
            reverse=True)[:3]
        if expected:
            parent, _, _ = await db.sample()
            assert parent.id in expected
            embedded = next((p for p in expected.values() if p.embedding), None)
            if embedded is not None:
                scores = await db.compute_similarity(embedded.embedding, embedded.island_idx)
                assert max(scores) == pytest.approx(1.0)
    assert fingerprint(tmp_path) == before


@FILES
def test_read_only_facade_opens_an_older_file(source: Path, shinka_copy,
                                              tmp_path: Path) -> None:
    path = shinka_copy(source)
    before = fingerprint(tmp_path)
    db = ProgramDatabase(DatabaseConfig(db_path=str(path)), read_only=True)
    try:
        programs = db.get_all_programs()
        if programs:
            assert db.sample()[0].id in {p.id for p in programs}
            assert db.get_best_program() is not None or not any(p.correct for p in programs)
    finally:
        db.close()
    assert fingerprint(tmp_path) == before


@FILES
async def test_an_older_file_reads_as_it_will_once_upgraded(source: Path, shinka_copy,
                                                            tmp_path: Path) -> None:
    legacy = shinka_copy(source)
    upgraded = tmp_path / "upgraded" / source.name
    upgraded.parent.mkdir()
    shutil.copy(legacy, upgraded)
    await upgrade_run(upgraded)
    report = await verify_runs(legacy, upgraded)
    assert report.ok, report.lines()
    first, second = await run_stats(legacy), await run_stats(upgraded)
    assert (first["schema_version"], second["schema_version"]) == (0, SCHEMA_VERSION)
    for key in ("programs", "correct", "islands", "archive", "generations", "last_iteration"):
        assert first[key] == second[key], key


def test_stats_of_an_empty_file_writes_nothing_into_it(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["db", "stats", str(empty)]) == 0
    assert "programs       0 (" in capsys.readouterr().out
    assert main(["db", "runs", str(empty)]) == 0
    assert fingerprint(tmp_path) == {"empty.db": hashlib.sha256(b"").hexdigest()}
