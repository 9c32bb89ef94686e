"""Two-way files: ShinkaEvolve 0.0.7 reads a Genesis SQLite file equal, embeddings included.

Runs ShinkaEvolve's own ``ProgramDatabase`` in its venv on a file Genesis wrote through its
ShinkaEvolve surface (which keeps ShinkaEvolve's JSON embedding column filled), then lets it
add a program and checks that Genesis reads that back and carries on.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from genesis.compat.shinka import DatabaseConfig, Program, ProgramDatabase
from genesis.database import DatabaseConfig as FacadeConfig
from genesis.database import ProgramDatabase as Facade
from genesis.database.backends.sqlite_files import read_only_connection
from tests.conftest import SHINKA_FILES
from tests.shinka_venv import run_in_shinka

READ_ALL = """
import json, sys
from shinka.database import DatabaseConfig, ProgramDatabase
db = ProgramDatabase(DatabaseConfig(db_path=sys.argv[1]), read_only=True)
print(json.dumps(sorted((p.to_dict() for p in db.get_all_programs()), key=lambda d: d["id"])))
"""
ADD_ONE = """
import json, sys
from shinka.database import DatabaseConfig, Program, ProgramDatabase
db = ProgramDatabase(DatabaseConfig(db_path=sys.argv[1]), embedding_model="")
db.add(Program(id="from_shinka", code="def g():\\n    return 3\\n", parent_id="root",
               generation=2, correct=True, combined_score=0.95, embedding=[0.5, 0.5, 0.0],
               metadata={"source_job_id": "shinka-job"}))
db.close()
print(json.dumps("ok"))
"""


def _programs() -> list[Program]:
    return [
        Program(id="root", code="def f():\n    return 1\n", correct=True, combined_score=0.5,
                embedding=[0.1, -0.25, 1e-9], public_metrics={"sum_radii": 2.5, "n": 26},
                text_feedback=["line one", "line two"], metadata={"source_job_id": "j0"}),
        Program(id="child", code="def f():\n    return 2\n", parent_id="root", generation=1,
                correct=True, combined_score=0.75, embedding=[1.0, 2.0, 3.5],
                private_metrics={"deep": {"x": [1, 2]}}, code_diff="-1\n+2",
                archive_inspiration_ids=["root"], system_prompt_id="prompt-1"),
        Program(id="broken", code="def f(:\n", parent_id="root", generation=1, correct=False,
                combined_score=math.nan, public_metrics={"loss": math.inf}),
    ]


def _comparable(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "timestamp"} | {
        "timestamp": round(record["timestamp"], 6)}


@pytest.mark.slow
def test_shinkaevolve_reads_a_genesis_file_equal(tmp_path: Path) -> None:
    path = tmp_path / "results" / "programs.sqlite"
    db = ProgramDatabase(DatabaseConfig(db_path=str(path), num_islands=2))
    for program in _programs():
        db.add(program)
    ours = sorted((p.to_dict() for p in db.get_all_programs()), key=lambda d: d["id"])
    db.close()
    theirs = run_in_shinka(READ_ALL, str(path))
    assert [_comparable(r) for r in json.loads(json.dumps(ours))] == \
        [_comparable(r) for r in theirs]
    by_id = {record["id"]: record for record in theirs}
    assert by_id["root"]["embedding"] == [0.1, -0.25, 1e-9]  # embeddings included, exact
    assert by_id["broken"]["combined_score"] is None  # NaN stored as null, not refused
    assert by_id["broken"]["public_metrics"] == {"loss": None}


@pytest.mark.slow
def test_genesis_continues_a_file_shinkaevolve_wrote_to(tmp_path: Path) -> None:
    path = tmp_path / "programs.sqlite"
    db = ProgramDatabase(DatabaseConfig(db_path=str(path), num_islands=2))
    for program in _programs():
        db.add(program)
    db.close()
    assert run_in_shinka(ADD_ONE, str(path)) == "ok"
    db = ProgramDatabase(DatabaseConfig(db_path=str(path), num_islands=2))
    try:
        added = db.get("from_shinka")
        assert added is not None and added.embedding == [0.5, 0.5, 0.0]
        assert db.get("root").children_count == 3  # two from Genesis, one from ShinkaEvolve
        assert db.get_program_by_source_job_id("j0").id == "root"
        assert db.count() == len(db.get_all_programs())  # island counters stayed exact
        assert db.get_best_program().id == "from_shinka"
        db.add(Program(id="next", code="x = 1\n", parent_id="from_shinka", generation=3,
                       correct=True, combined_score=0.99))
        assert db.get("next").island_idx == added.island_idx
    finally:
        db.close()


def _embedding_texts(path: Path) -> list[str | None]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT embedding FROM programs ORDER BY rowid")]


def test_the_embedding_text_column_policy(tmp_path: Path) -> None:
    program = Program(id="a", code="x = 1\n", embedding=[0.5, 1.5])
    plain = tmp_path / "plain.db"  # Genesis' own facade: the blob only, by default
    with Facade(FacadeConfig(db_path=str(plain))) as db:
        db.add(program)
    assert set(_embedding_texts(plain)) == {None}  # the program and its island copy
    shinka = tmp_path / "shinka.db"  # ShinkaEvolve's surface keeps its column filled...
    with ProgramDatabase(DatabaseConfig(db_path=str(shinka))) as db:
        db.add(Program(id="a", code="x = 1\n", embedding=[0.5, 1.5]))
    with Facade(FacadeConfig(db_path=str(shinka))) as db:  # ...and marks the file for all
        db.add(Program(id="b", code="x = 2\n", parent_id="a", embedding=[2.0, 0.0]))
    assert _embedding_texts(shinka)[0] == "[0.5,1.5]"
    assert _embedding_texts(shinka)[-1] == "[2.0,0.0]"
    off = tmp_path / "off.db"
    with ProgramDatabase(DatabaseConfig(db_path=str(off), sqlite_legacy_embedding=False)) as db:
        db.add(Program(id="a", code="x = 1\n", embedding=[0.5, 1.5]))
    assert set(_embedding_texts(off)) == {None}


def test_an_upgraded_shinkaevolve_file_keeps_text_embeddings(shinka_copy) -> None:
    source = next(p for p in SHINKA_FILES if _has_text_embeddings(p))
    path = shinka_copy(source)
    with Facade(FacadeConfig(db_path=str(path))) as db:
        parent = db.get_all_programs()[0]
        db.add(Program(id="new", code="x = 1\n", parent_id=parent.id, embedding=[1.0, 2.0]))
    assert _embedding_texts(path)[-1] == "[1.0,2.0]"


def _has_text_embeddings(path: Path) -> bool:
    with read_only_connection(path) as conn:  # leaves no -wal/-shm beside the shared file
        return conn.execute("SELECT COUNT(*) FROM programs WHERE embedding IS NOT NULL "
                            "AND embedding NOT IN ('', '[]')").fetchone()[0] > 0
