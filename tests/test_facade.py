"""The synchronous facade: completeness, threads, event loops, fork, exit, legacy files."""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from genesis.database import (
    AsyncProgramDatabase,
    DatabaseConfig,
    OperationalError,
    Program,
    ProgramDatabase,
    portal,
)
from tests.conftest import SHINKA_FILES
from tests.factories import make_program

ATTRIBUTE_GETTERS = {"get_last_iteration": "last_iteration",
                     "get_best_program_id": "best_program_id",
                     "get_beam_search_parent_id": "beam_search_parent_id",
                     "get_best_score_ever": "best_score_ever",
                     "get_best_score_generation": "best_score_generation"}


@pytest.fixture
def db(tmp_path: Path) -> ProgramDatabase:
    """A facade on a fresh SQLite file."""
    database = ProgramDatabase(DatabaseConfig(db_path=str(tmp_path / "run.db"),
                                              num_islands=2, seed=3))
    yield database
    database.close()


def public_coroutines() -> list[str]:
    """Names of AsyncProgramDatabase's public async methods."""
    return [name for name, member in inspect.getmembers(AsyncProgramDatabase)
            if not name.startswith("_") and inspect.iscoroutinefunction(member)
            and name not in ("open",)]


def test_every_async_method_has_a_sync_counterpart() -> None:
    for name in public_coroutines():
        method = getattr(ProgramDatabase, name, None)
        assert method is not None, f"ProgramDatabase lacks {name}"
        assert not inspect.iscoroutinefunction(method), name
        assert method.__doc__ == getattr(AsyncProgramDatabase, name).__doc__, name
    for getter, attribute in ATTRIBUTE_GETTERS.items():
        assert isinstance(getattr(ProgramDatabase, attribute), property), attribute
        assert getter in public_coroutines()


def test_legacy_attributes_and_signature(db: ProgramDatabase) -> None:
    assert list(inspect.signature(ProgramDatabase.__init__).parameters) == [
        "self", "config", "embedding_model", "read_only"]
    assert list(inspect.signature(ProgramDatabase.add).parameters) == [
        "self", "program", "verbose", "defer_maintenance"]
    root = make_program(island=None, score=0.4)
    db.add(root)
    assert db.last_iteration == 0 and db.best_program_id == root.id
    assert db.best_score_ever == 0.4 and db.best_score_generation == 0
    db.beam_search_parent_id = root.id
    assert db.beam_search_parent_id == root.id
    assert isinstance(db.config, DatabaseConfig) and db.read_only is False
    assert "run.db" in repr(db)


def test_many_threads_at_once(db: ProgramDatabase) -> None:
    root = make_program(island=None)
    db.add(root)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for _ in range(15):
                parent = db.sample()[0]
                db.add(make_program(parent=parent))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.count() == 2 + 8 * 15


async def test_called_from_a_running_event_loop_it_still_works(db: ProgramDatabase) -> None:
    root = make_program(island=None)
    db.add(root)  # this thread is running an event loop: the call blocks it, then returns
    assert db.get(root.id).id == root.id
    await asyncio.sleep(0)  # the caller's loop is intact


def test_called_from_its_own_loop_it_explains(db: ProgramDatabase) -> None:
    async def inside() -> None:
        db.count()

    with pytest.raises(RuntimeError, match="AsyncProgramDatabase"):
        portal.call(inside)


def _child_adds(db: ProgramDatabase, parent_id: str) -> None:
    child = make_program(parent=db.get(parent_id))
    db.add(child)
    os._exit(0 if db.get(child.id) is not None else 3)


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX-only")
def test_a_forked_child_gets_a_working_database(db: ProgramDatabase) -> None:
    root = make_program(island=None)
    db.add(root)
    process = multiprocessing.get_context("fork").Process(target=_child_adds,
                                                          args=(db, root.id))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert db.get(root.id).children_count == 1  # the parent's database still works
    assert db.count() == 3


def test_close_is_idempotent_and_final(db: ProgramDatabase) -> None:
    db.close()
    db.close()
    with pytest.raises(OperationalError, match="closed"):
        db.count()


def test_a_database_never_closed_does_not_hang_exit(tmp_path: Path) -> None:
    path = tmp_path / "left-open.db"
    script = (
        "from genesis.database import DatabaseConfig, Program, ProgramDatabase\n"
        f"db = ProgramDatabase(DatabaseConfig(db_path={str(path)!r}))\n"
        "db.add(Program(id='kept', code='x = 1', correct=True))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    check = ProgramDatabase(DatabaseConfig(db_path=str(path)), read_only=True)
    assert check.get("kept") is not None
    check.close()


def test_read_only_opens_a_database_being_written(tmp_path: Path) -> None:
    path = str(tmp_path / "live.db")
    writer = ProgramDatabase(DatabaseConfig(db_path=path))
    writer.add(make_program(island=None))
    reader = ProgramDatabase(DatabaseConfig(db_path=path), read_only=True)
    writer.add(make_program(parent=writer.sample()[0]))
    assert reader.count() == 3
    with pytest.raises(PermissionError):
        reader.add(Program(id="nope", code=""))
    reader.close()
    writer.close()


@pytest.mark.parametrize("source", SHINKA_FILES, ids=lambda p: p.stem)
def test_shinka_files_open_sample_and_continue(source: Path, shinka_copy) -> None:
    db = ProgramDatabase(DatabaseConfig(db_path=str(shinka_copy(source))))
    count = db.get_program_count_and_timestamp()["count"]
    if count == 0:
        with pytest.raises(RuntimeError, match="No programs"):
            db.sample()
        db.add(make_program(island=None))
        assert db.count() == 2
    else:
        parent, _, _ = db.sample()
        child = make_program(parent=parent, generation=db.last_iteration + 1)
        db.add(child)
        assert db.count() == count + 1
        assert db.get(parent.id).children_count == parent.children_count + 1
        assert db.last_iteration == child.generation
    db.close()
