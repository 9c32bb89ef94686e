"""ShinkaEvolve's prompt-evolution store (genesis.compat.shinka.prompt_dbase) on both backends.

The behavioural tests run once per backend. The two-way file test runs ShinkaEvolve 0.0.7's
own ``SystemPromptDatabase`` in its virtual environment (see ``tests/shinka_venv.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from genesis.compat.shinka.prompt_dbase import (
    SystemPrompt,
    SystemPromptConfig,
    SystemPromptDatabase,
    create_system_prompt,
)
from genesis.compat.shinka.prompt_store import InvalidPromptError
from genesis.database import (
    AsyncProgramDatabase,
    DatabaseConfig,
    GenesisError,
    IntegrityError,
    OperationalError,
    ReadOnlyError,
    SchemaError,
)
from genesis.database.backends.postgres_schema import schema_name
from tests.conftest import TEST_PG_URL, drop_pg_run, new_pg_run_url
from tests.factories import make_program
from tests.shinka_venv import shinka_python
from tests.stats import assert_matches

OpenDB = Callable[..., SystemPromptDatabase]


@pytest.fixture
def prompt_config(backend: str, tmp_path: Path) -> Iterator[SystemPromptConfig]:
    """A config naming an empty prompt store on the backend under test."""
    if backend == "sqlite":
        yield SystemPromptConfig(database_url=f"sqlite:///{tmp_path}/results/prompts.sqlite")
        return
    url = new_pg_run_url()
    try:
        yield SystemPromptConfig(database_url=TEST_PG_URL, run_name=url.run)
    finally:
        drop_pg_run(url)


@pytest.fixture
def open_db(prompt_config: SystemPromptConfig) -> Iterator[OpenDB]:
    """Open SystemPromptDatabases on the store (config fields overridable); closed after."""
    opened: list[SystemPromptDatabase] = []

    def factory(read_only: bool = False, **options: Any) -> SystemPromptDatabase:
        db = SystemPromptDatabase(replace(prompt_config, **options), read_only=read_only)
        opened.append(db)
        return db

    yield factory
    for db in opened:
        db.close()


@pytest.fixture
def seeded() -> Iterator[None]:
    """Seed numpy's global generator (which sample() draws from); restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(20240601)
    yield
    np.random.set_state(state)


def prompt(pid: str, timestamp: float, **fields: Any) -> SystemPrompt:
    """A prompt with a fixed id and timestamp."""
    return SystemPrompt(id=pid, prompt_text=f"You are prompt {pid}.", timestamp=timestamp,
                        **fields)


def established(pid: str, timestamp: float, fitness: float, correct: int) -> SystemPrompt:
    """A prompt with ``correct`` correct programs of mean percentile ``fitness``."""
    return prompt(pid, timestamp, fitness=fitness, correct_program_count=correct,
                  program_count=correct, total_percentile=fitness * correct)


def archive_ids(db: SystemPromptDatabase) -> set[str]:
    """The ids of the archived prompts."""
    return {p.id for p in db.get_archive()}


# Records ---------------------------------------------------------------------------------


def test_config_and_prompt_keep_shinkaevolves_fields_and_defaults() -> None:
    config = SystemPromptConfig()
    assert (config.db_path, config.archive_size, config.ucb_exploration_constant,
            config.min_programs_for_fitness, config.epsilon, config.use_optimistic_prior) == (
        None, 10, 1.0, 3, 0.1, True)
    assert [f.name for f in fields(SystemPrompt)] == [
        "id", "prompt_text", "name", "description", "parent_id", "generation",
        "program_generation", "patch_type", "timestamp", "program_count",
        "correct_program_count", "total_percentile", "fitness", "program_scores",
        "total_improvement", "program_ids", "in_archive", "metadata"]
    made = create_system_prompt("text", parent_id="p", generation=2, program_generation=7,
                                patch_type="diff", metadata={"k": 1}, name="n",
                                description="d")
    assert (made.prompt_text, made.parent_id, made.generation, made.program_generation,
            made.patch_type, made.metadata, made.name, made.description) == (
        "text", "p", 2, 7, "diff", {"k": 1}, "n", "d")
    assert made.id != create_system_prompt("text").id


def test_prompt_dict_round_trip_and_update_fitness() -> None:
    p = prompt("a", 1.0, metadata={"loss": float("nan")})
    data = p.to_dict()
    assert data["metadata"] == {"loss": None}
    json.dumps(data, allow_nan=False)
    assert SystemPrompt.from_dict({**asdict(p), "unknown": 1}) == p
    old = SystemPrompt.from_dict({"id": "o", "prompt_text": "t", "program_count": 4,
                                  "metadata": "not a dict", "program_ids": None})
    assert (old.correct_program_count, old.total_percentile, old.program_scores,
            old.metadata, old.program_ids) == (4, 0.0, [], {}, [])
    p.update_fitness(0.5, program_score=2.0)
    p.update_fitness(0.25, correct=False, program_score=9.0)
    assert (p.program_count, p.correct_program_count, p.total_percentile, p.fitness,
            p.program_scores) == (2, 1, 0.5, 0.5, [2.0])


def test_config_repr_hides_the_password() -> None:
    config = SystemPromptConfig(database_url="postgresql://u:s3cret@db.example.org/x")
    assert "s3cret" not in repr(config) and "***" in repr(config)


def test_an_unreachable_server_is_named_without_the_password() -> None:
    config = SystemPromptConfig(database_url="postgresql://u:s3cret@127.0.0.1:1/x")
    with pytest.raises(OperationalError) as caught:
        SystemPromptDatabase(config)
    assert "127.0.0.1:1" in str(caught.value) and "s3cret" not in str(caught.value)


# Behaviour on both backends -------------------------------------------------------------


def test_add_get_and_get_all(open_db: OpenDB) -> None:
    db = open_db()
    full = prompt("p1", 1000.5, name="n", description="d", program_generation=3,
                  program_count=4, correct_program_count=2, total_percentile=1.25,
                  fitness=0.625, program_scores=[0.5, 1.5], total_improvement=0.25,
                  program_ids=["a", "b"], metadata={"llm": {"cost": 0.1}, "x": [1, {"ü": "é"}]})
    assert db.add(full) == "p1"
    assert db.get("p1") == replace(full, in_archive=True)
    assert db.get("missing") is None
    child = create_system_prompt("child", parent_id="p1", generation=1, patch_type="diff")
    db.add(child, verbose=True)
    assert db._count_prompts_in_db() == 2
    assert [p.id for p in db.get_all_prompts()] == ["p1", child.id]
    assert all(p.in_archive for p in db.get_all_prompts())
    assert db.get(child.id) == replace(child, in_archive=True)
    assert [p.id for p in db.get_prompts_by_generation(1)] == [child.id]
    assert db.get_prompts_by_generation(5) == []


def test_duplicate_id_is_refused_and_changes_nothing(open_db: OpenDB) -> None:
    db = open_db()
    db.add(prompt("p", 1.0))
    with pytest.raises(IntegrityError) as caught:
        db.add(prompt("p", 2.0, fitness=0.9))
    assert isinstance(caught.value, sqlite3.IntegrityError)  # what ShinkaEvolve raised
    assert db._count_prompts_in_db() == 1 and db.get("p").timestamp == 1.0


def test_archive_admits_replaces_and_never_overflows(open_db: OpenDB) -> None:
    db = open_db(archive_size=3, min_programs_for_fitness=1)
    for i, pid in enumerate(("a", "b", "c")):
        db.add(prompt(pid, 10.0 + i))
    assert archive_ids(db) == {"a", "b", "c"}
    db.add(prompt("old", 1.0))  # not better than the worst member (as good, but older)
    assert archive_ids(db) == {"a", "b", "c"}
    db.add(prompt("newer", 20.0))  # as good and newer: better, replaces the oldest
    assert archive_ids(db) == {"newer", "b", "c"}
    db.add(prompt("evolved", 0.5, parent_id="a"))  # evolved prompts always get a place
    assert archive_ids(db) == {"newer", "evolved", "c"}
    db.update_fitness("old", 0.1, program_id="x")  # now reliable: better than the worst
    assert archive_ids(db) == {"newer", "c", "old"}  # (evolved, as good as c but older)
    db.update_fitness("c", 0.9)  # an archived prompt improves: nobody is evicted
    assert archive_ids(db) == {"newer", "c", "old"}  # (ShinkaEvolve evicted newer)
    assert [p.id for p in db.get_archive()] == ["c", "old", "newer"]  # fittest first
    assert len(db.get_archive()) == 3


def test_archive_size_zero_keeps_no_archive(open_db: OpenDB) -> None:
    db = open_db(archive_size=0)
    db.add(prompt("a", 1.0))
    assert db.get_archive() == [] and db.sample() is None


def test_best_prompt_prefers_reliable_then_fitness_then_newer(open_db: OpenDB) -> None:
    db = open_db(min_programs_for_fitness=2)
    assert db.get_best_prompt() is None and db.best_prompt_id is None
    db.add(established("a", 1.0, fitness=0.3, correct=2))
    db.add(established("b", 2.0, fitness=0.9, correct=1))
    assert db.get_best_prompt().id == "a"  # b has too few correct programs
    db.update_fitness("b", 0.7)
    assert db.best_prompt_id == "b" and db.get("b").fitness == pytest.approx(0.8)
    for _ in range(4):
        db.update_fitness("b", 0.0)
    # b's fitness fell to 1.6/6 below a's 0.3: the best follows (ShinkaEvolve kept b).
    assert db.best_prompt_id == "a" and db.get_best_prompt().id == "a"
    db.add(established("c", 3.0, fitness=0.3, correct=2))
    assert db.best_prompt_id == "c"  # a tie goes to the newer prompt


def test_last_generation_and_best_prompt_id_survive_reopen(open_db: OpenDB) -> None:
    db = open_db()
    assert db.last_generation == 0
    for pid, generation in (("g0", 0), ("g3", 3), ("g2", 2)):
        db.add(prompt(pid, 1.0 + generation, generation=generation, parent_id=None))
    db.update_fitness("g2", 0.6)
    other = open_db()  # another instance sees the values at once, not stale copies
    assert (other.last_generation, other.best_prompt_id) == (3, "g2")
    db.save()
    db.close()
    reopened = open_db()
    assert (reopened.last_generation, reopened.best_prompt_id) == (3, "g2")
    assert reopened.get_best_prompt().id == "g2"


def test_lineage_is_oldest_first_and_bounded(open_db: OpenDB) -> None:
    db = open_db()
    parent = None
    for i in range(5):
        db.add(prompt(f"g{i}", float(i), parent_id=parent, generation=i))
        parent = f"g{i}"
    assert [p.id for p in db.get_lineage("g4")] == ["g0", "g1", "g2", "g3"]
    assert [p.id for p in db.get_lineage("g4", max_ancestors=2)] == ["g2", "g3"]
    assert db.get_lineage("g0") == [] and db.get_lineage("missing") == []
    db.add(prompt("orphan", 9.0, parent_id="gone"))
    assert db.get_lineage("orphan") == []


def test_total_evolution_costs(open_db: OpenDB) -> None:
    db = open_db()
    for i, metadata in enumerate(({"llm": {"cost": 0.25}}, {"llm": {"cost": 1}}, {},
                                  {"llm": "text"}, {"llm": {"cost": None}})):
        db.add(prompt(f"p{i}", float(i), metadata=metadata))
    assert db.get_total_evolution_costs() == 1.25


def test_update_fitness_counts_programs_and_ignores_unknown_prompts(open_db: OpenDB,
                                                                     caplog) -> None:
    db = open_db()
    db.add(prompt("p", 1.0))
    db.update_fitness("p", 0.5, program_id="x1", improvement=0.1, program_score=2.0)
    db.update_fitness("p", 0.9, program_id="x2", correct=False, program_score=7.0)
    db.update_fitness("p", 0.25, program_score=3.0)
    got = db.get("p")
    assert (got.program_count, got.correct_program_count, got.total_percentile, got.fitness,
            got.total_improvement, got.program_scores, got.program_ids) == (
        3, 2, 0.75, 0.375, 0.1, [2.0, 3.0], ["x1", "x2"])
    with caplog.at_level(logging.WARNING):
        db.update_fitness("nobody", 0.5)
    assert "nobody" in caplog.text and db._count_prompts_in_db() == 1


@pytest.mark.parametrize("shared", [False, True], ids=["own-connections", "one-instance"])
def test_concurrent_fitness_updates_lose_nothing(open_db: OpenDB, shared: bool) -> None:
    open_db().add(prompt("p", 1.0))
    threads, updates = 6, 25
    instances = [open_db()] * threads if shared else [open_db() for _ in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(updates):
                instances[worker].update_fitness("p", 0.25 * (i % 3), program_id=f"{worker}-{i}",
                                                 correct=i % 5 != 0, program_score=float(i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors
    got = open_db().get("p")
    correct = [i for i in range(updates) if i % 5 != 0]
    assert got.program_count == threads * updates
    assert got.correct_program_count == threads * len(correct)
    assert got.total_percentile == threads * sum(0.25 * (i % 3) for i in correct)  # exact
    assert sorted(got.program_scores) == sorted(float(i) for i in correct for _ in range(threads))
    assert sorted(got.program_ids) == sorted(f"{w}-{i}" for w in range(threads)
                                             for i in range(updates))


def naive_percentile(score: float, population: list[float]) -> float:
    """ShinkaEvolve's definition: the share of the other scores strictly beaten."""
    if len(population) <= 1:
        return 1.0
    return sum(score > s for s in population) / (len(population) - 1)


def test_recompute_all_percentiles(open_db: OpenDB, caplog) -> None:
    db = open_db(min_programs_for_fitness=1)
    db.add(prompt("a", 1.0, program_ids=["x1", "x2"], program_scores=[1.0, 3.0],
                  correct_program_count=2, fitness=0.9, total_percentile=1.8))
    db.add(prompt("b", 2.0, program_ids=["x3"], program_scores=[2.0], correct_program_count=1,
                  fitness=0.1, total_percentile=0.1))
    db.add(prompt("none", 3.0))
    population = [1.0, 2.0, 3.0, 4.0, None]
    db.recompute_all_percentiles(population, {"x1": 1.0, "x2": 4.0, "x3": 2.0})
    known = [1.0, 2.0, 3.0, 4.0]
    expected_a = [naive_percentile(1.0, known), naive_percentile(4.0, known)]
    a, b = db.get("a"), db.get("b")
    assert (a.total_percentile, a.fitness) == (sum(expected_a), sum(expected_a) / 2)
    assert (b.total_percentile, b.fitness) == (naive_percentile(2.0, known),) * 2
    assert db.get("none").fitness == 0.0 and db.best_prompt_id == "a"
    db.recompute_all_percentiles()  # the stored scores, against each other
    stored = [1.0, 3.0, 2.0]
    assert db.get("b").fitness == naive_percentile(2.0, stored) == 0.5
    assert db.get("a").fitness == (naive_percentile(1.0, stored)
                                   + naive_percentile(3.0, stored)) / 2
    with caplog.at_level(logging.WARNING):
        db.recompute_all_percentiles([None])
    assert "No program scores" in caplog.text and db.get("b").fitness == 0.5
    db.recompute_all_percentiles([2.0])
    assert db.get("b").fitness == 1.0  # the only program beats all others


def test_non_finite_numbers_are_stored_as_null_with_a_warning(open_db: OpenDB,
                                                              caplog) -> None:
    db = open_db()
    nan, inf = float("nan"), float("inf")
    with caplog.at_level(logging.WARNING):
        db.add(prompt("p", 1.0, fitness=nan, program_scores=[nan, 1.0],
                      metadata={"loss": inf, "ok": np.float32(0.5)}))
        db.update_fitness("p", nan, program_score=inf, improvement=-inf)
    got = db.get("p")
    assert (got.fitness, got.total_percentile, got.program_scores, got.metadata) == (
        0.0, 0.0, [None, 1.0, None], {"loss": None, "ok": 0.5})
    for name in ("fitness", "program_scores[0]", "metadata['loss']", "percentile",
                 "improvement", "program_scores[2]"):
        assert name in caplog.text
    db.recompute_all_percentiles()  # null scores are skipped
    assert db.get("p").fitness == 1.0


def test_invalid_fields_are_refused_naming_the_field(open_db: OpenDB) -> None:
    db = open_db()
    with pytest.raises(InvalidPromptError, match="metadata"):
        db.add(prompt("p", 1.0, metadata="not a dict"))
    with pytest.raises(InvalidPromptError, match="fitness"):
        db.add(prompt("p", 1.0, fitness="high"))
    with pytest.raises(InvalidPromptError, match="program_ids"):
        db.add(prompt("p", 1.0, program_ids=[object()]))
    assert db._count_prompts_in_db() == 0 and db.get_archive() == []


def test_read_only_reads_and_refuses_writes(open_db: OpenDB, backend: str,
                                            prompt_config: SystemPromptConfig) -> None:
    writer = open_db()
    writer.add(prompt("p", 1.0))
    writer.update_fitness("p", 0.5)
    files = []
    if backend == "sqlite":
        path = Path(writer.url.path)
        files = [path, Path(f"{path}-wal")]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    listing = sorted(files[0].parent.iterdir()) if files else []
    reader = open_db(read_only=True)
    assert reader.get("p").fitness == 0.5 and reader.last_generation == 0
    assert [p.id for p in reader.get_archive()] == ["p"]
    assert reader.sample().id == "p" and reader.get_best_prompt().id == "p"
    if backend == "sqlite":  # what ShinkaEvolve's web UI does with a read-only database
        reader.cursor.execute("PRAGMA busy_timeout = 30000;")
        reader.cursor.execute("PRAGMA journal_mode = WAL;")
    writes = (lambda: reader.add(prompt("q", 2.0)), lambda: reader.update_fitness("p", 0.1),
              lambda: reader.update_fitness("missing", 0.1), reader.recompute_all_percentiles)
    for write in writes:
        with pytest.raises(ReadOnlyError) as caught:
            write()
        assert isinstance(caught.value, PermissionError)
    reader.save()
    reader.close()
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before
    assert (sorted(files[0].parent.iterdir()) if files else []) == listing
    assert writer.get("p").program_count == 1


def test_print_summary(open_db: OpenDB, capsys) -> None:
    db = open_db()
    db.add(prompt("abcdefghij", 1.0, patch_type="init"))
    db.print_summary()
    out = capsys.readouterr().out
    assert "Total prompts: 1" in out and "Archive size: 1/10" in out and "abcdefgh..." in out


# Sampling -------------------------------------------------------------------------------


def test_sample_with_no_or_one_prompt(open_db: OpenDB, seeded) -> None:
    db = open_db()
    assert db.sample() is None
    db.add(prompt("only", 1.0))
    state = np.random.get_state()[1].copy()
    assert db.sample().id == "only"
    assert (np.random.get_state()[1] == state).all()  # no random number was drawn


def test_sample_picks_the_highest_ucb(open_db: OpenDB, seeded) -> None:
    db = open_db(epsilon=0.0, min_programs_for_fitness=1)
    db.add(established("strong", 1.0, fitness=0.9, correct=10))
    db.add(established("rare", 2.0, fitness=0.5, correct=1))
    # UCB1 = fitness + c * sqrt(ln 11 / n): 0.9 + 0.49c against 0.5 + 1.55c.
    assert db.sample().id == "rare"
    assert db.sample(exploration_constant=0.1).id == "strong"


def test_sample_gives_new_prompts_an_optimistic_prior(open_db: OpenDB, seeded) -> None:
    db = open_db(epsilon=0.0)
    db.add(established("strong", 1.0, fitness=0.9, correct=10))
    db.add(prompt("new", 2.0, correct_program_count=1, program_count=1, fitness=0.1))
    # The new prompt scores max established fitness + c = 0.9 + 0.1, above 0.9 + 0.1 * 0.48.
    assert {db.sample(exploration_constant=0.1).id for _ in range(20)} == {"new"}
    db.add(prompt("newer", 3.0, correct_program_count=1, program_count=1, fitness=0.2))
    unbounded = open_db(epsilon=0.0, use_optimistic_prior=False)
    drawn = Counter(unbounded.sample().id for _ in range(400))
    assert_matches([drawn["strong"], drawn["new"], drawn["newer"]], [0, 0.5, 0.5])


def test_sample_distributions(open_db: OpenDB, seeded) -> None:
    db = open_db(min_programs_for_fitness=1)
    for i in range(4):
        db.add(prompt(f"p{i}", float(i)))
    ids = [f"p{i}" for i in range(4)]
    no_programs = Counter(db.sample(epsilon=0.0).id for _ in range(2000))
    assert_matches([no_programs[i] for i in ids], [0.25] * 4)  # uniform before any program
    db.update_fitness("p2", 0.9)
    for pid in ("p0", "p1", "p3"):
        for _ in range(30):
            db.update_fitness(pid, 0.1)
    greedy = Counter(db.sample(epsilon=0.0).id for _ in range(200))
    assert greedy == {"p2": 200}  # the UCB winner
    mixed = Counter(db.sample(epsilon=0.5).id for _ in range(2000))
    assert_matches([mixed[i] for i in ids], [0.125, 0.125, 0.625, 0.125])
    np.random.seed(5)
    first = [db.sample().id for _ in range(50)]
    np.random.seed(5)
    assert [db.sample().id for _ in range(50)] == first


# Backend-specific -----------------------------------------------------------------------


def test_sqlite_read_only_of_a_missing_file(tmp_path: Path) -> None:
    config = SystemPromptConfig(db_path=str(tmp_path / "none.sqlite"))
    with pytest.raises(FileNotFoundError) as caught:
        SystemPromptDatabase(config, read_only=True)
    assert isinstance(caught.value, GenesisError)
    assert not (tmp_path / "none.sqlite").exists()


def test_sqlite_file_of_an_older_shinkaevolve_gains_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "prompts.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE system_prompts (id TEXT PRIMARY KEY, prompt_text TEXT NOT NULL,
            parent_id TEXT, generation INTEGER NOT NULL, patch_type TEXT NOT NULL,
            timestamp REAL NOT NULL, program_count INTEGER NOT NULL DEFAULT 0,
            total_improvement REAL NOT NULL DEFAULT 0.0, fitness REAL NOT NULL DEFAULT 0.0,
            program_ids TEXT, metadata TEXT);
        CREATE TABLE prompt_archive (prompt_id TEXT PRIMARY KEY);
        CREATE TABLE prompt_metadata_store (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO system_prompts VALUES ('old', 'text', NULL, 0, 'init', 5.0, 4, 0.0, 0.5,
                                           '["x"]', '{}');
    """)
    conn.close()
    config = SystemPromptConfig(db_path=str(path))
    with SystemPromptDatabase(config, read_only=True) as reader:  # writes no file at all
        old = reader.get("old")  # missing columns take ShinkaEvolve's fallbacks
        assert (old.correct_program_count, old.program_scores, old.name) == (4, [], None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.sqlite"]
    with SystemPromptDatabase(config) as db:
        db.update_fitness("old", 0.5, program_score=1.0)
        got = db.get("old")
        assert (got.correct_program_count, got.program_count, got.program_scores) == (1, 5, [1.0])


def test_sqlite_run_file_may_hold_prompts_before_programs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/run.db"
    with SystemPromptDatabase(SystemPromptConfig(database_url=url)) as prompts:
        prompts.add(prompt("p", 1.0))

    async def add_program() -> None:
        async with AsyncProgramDatabase(DatabaseConfig(database_url=url)) as db:
            await db.add(make_program())

    asyncio.run(add_program())
    with SystemPromptDatabase(SystemPromptConfig(database_url=url), read_only=True) as again:
        assert again.get("p") is not None


@pytest.mark.postgres
def test_postgres_prompts_live_in_the_runs_schema_beside_its_programs() -> None:
    url = new_pg_run_url()
    config = SystemPromptConfig(database_url=TEST_PG_URL, run_name=url.run)
    try:
        with pytest.raises(SchemaError):  # read-only never creates the run
            SystemPromptDatabase(config, read_only=True)
        barrier = threading.Barrier(4)
        opened: list[SystemPromptDatabase] = []

        def first_open() -> None:
            barrier.wait()
            opened.append(SystemPromptDatabase(config))

        starters = [threading.Thread(target=first_open) for _ in range(4)]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        assert len(opened) == 4  # four first opens at once: the run and its tables, once
        opened[0].add(prompt("p", 1.0))
        with psycopg.connect(url.conninfo()) as conn:
            tables = {row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema_name(url.run),))}
        assert {"system_prompts", "prompt_archive", "prompt_metadata_store", "programs",
                "archive", "islands"} <= tables
        assert opened[3].get("p") is not None

        async def add_program() -> None:
            async with AsyncProgramDatabase(DatabaseConfig(database_url=str(url))) as db:
                await db.add(make_program())
                assert await db.count() == 2  # the program and its copy on island 1

        asyncio.run(add_program())
        for db in opened:
            db.close()
    finally:
        drop_pg_run(url)


@pytest.mark.postgres
def test_postgres_reconnects_after_the_server_drops_the_connection() -> None:
    url = new_pg_run_url()
    try:
        with SystemPromptDatabase(SystemPromptConfig(database_url=TEST_PG_URL,
                                                     run_name=url.run)) as db:
            db.add(prompt("p", 1.0))
            pid = db.conn.info.backend_pid
            with psycopg.connect(url.conninfo(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                deadline = time.monotonic() + 10
                while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)).fetchone() and time.monotonic() < deadline:
                    time.sleep(0.02)
            db.update_fitness("p", 0.5)  # on a new connection
            assert db.get("p").program_count == 1
    finally:
        drop_pg_run(url)


# Two-way file compatibility with ShinkaEvolve 0.0.7 ------------------------------------

SHINKA_SCRIPT = """
import json, sys
import numpy as np
from shinka.database.prompt_dbase import SystemPrompt, SystemPromptConfig, SystemPromptDatabase

mode, path, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = SystemPromptConfig(db_path=path, archive_size=4, min_programs_for_fitness=1)
db = SystemPromptDatabase(config, read_only=mode == "read")
for op, argument in ops:
    if op == "add":
        db.add(SystemPrompt(**argument))
    elif op == "fitness":
        db.update_fitness(**argument)
    else:
        db.recompute_all_percentiles(argument)
np.random.seed(99)
samples = [db.sample(epsilon=0.3).id for _ in range(200)]
print(json.dumps({
    "prompts": {p.id: p.to_dict() for p in db.get_all_prompts()},
    "archive": [p.id for p in db.get_archive()],
    "best": db.get_best_prompt().id,
    "last_generation": db.last_generation,
    "cost": db.get_total_evolution_costs(),
    "lineage": [p.id for p in db.get_lineage("c4")],
    "samples": samples,
}))
"""


def through_shinka(mode: str, path: Path, ops: list[Any] = ()) -> dict[str, Any]:
    """Run ShinkaEvolve's SystemPromptDatabase on ``path``; return what it reads back."""
    result = subprocess.run([str(shinka_python()), "-c", SHINKA_SCRIPT, mode, str(path),
                             json.dumps(list(ops))], capture_output=True, text=True,
                            cwd=path.parent, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def through_genesis(mode: str, path: Path, ops: list[Any] = ()) -> dict[str, Any]:
    """The same as :func:`through_shinka`, through Genesis."""
    config = SystemPromptConfig(db_path=str(path), archive_size=4, min_programs_for_fitness=1)
    with SystemPromptDatabase(config, read_only=mode == "read") as db:
        for op, argument in ops:
            if op == "add":
                db.add(SystemPrompt(**argument))
            elif op == "fitness":
                db.update_fitness(**argument)
            else:
                db.recompute_all_percentiles(argument)
        np.random.seed(99)
        samples = [db.sample(epsilon=0.3).id for _ in range(200)]
        return json.loads(json.dumps({
            "prompts": {p.id: p.to_dict() for p in db.get_all_prompts()},
            "archive": [p.id for p in db.get_archive()],
            "best": db.get_best_prompt().id,
            "last_generation": db.last_generation,
            "cost": db.get_total_evolution_costs(),
            "lineage": [p.id for p in db.get_lineage("c4")],
            "samples": samples,
        }))


def _add(pid: str, timestamp: float, parent: str | None, generation: int,
         cost: float = 0.0) -> list[Any]:
    return ["add", asdict(prompt(pid, timestamp, parent_id=parent, generation=generation,
                                 name=f"name {pid}", description="ü",
                                 metadata={"llm": {"cost": cost}, "source": pid}))]


def _fit(pid: str, percentile: float, program: str, score: float,
         correct: bool = True) -> list[Any]:
    return ["fitness", {"prompt_id": pid, "percentile": percentile, "program_id": program,
                        "correct": correct, "program_score": score, "improvement": 0.125}]


# An evolution of prompts on which ShinkaEvolve behaves as documented: archived prompts are
# only updated while the archive has room, and the best prompt never falls behind.
HISTORY = [
    _add("i0", 100.0, None, 0), _add("c1", 101.0, "i0", 1, 0.5),
    _fit("c1", 0.6, "x1", 1.0), _fit("i0", 0.2, "x2", 0.5), _fit("c1", 0.8, "x3", 3.5),
    _fit("i0", 0.0, "x4", 0.0, correct=False),
    _add("c2", 102.0, "c1", 2, 0.25), _fit("c2", 0.4, "x5", 1.5),
    _add("c3", 103.0, "c1", 3), _add("c4", 104.0, "c2", 4, 1.0),  # c4 evicts c3
    _add("i5", 50.0, None, 0),  # no better than the worst member: stays out
    _fit("c3", 0.9, "x6", 3.0),  # now better than c4, which it replaces
    ["recompute", [0.5, 1.0, 1.5, 3.0, 3.5]],
]
MORE = [_add("c6", 105.0, "c3", 5, 2.0), _fit("c6", 0.3, "x7", 2.0)]


@pytest.mark.slow
def test_shinkaevolve_and_genesis_read_and_continue_each_others_files(
        tmp_path: Path, monkeypatch) -> None:
    shinka_python()  # skip (or fail under GENESIS_REQUIRE_SHINKA=1) without the venv
    monkeypatch.delenv("DATABASE_URL", raising=False)  # db_path names the file, as in Shinka
    ours, theirs = tmp_path / "genesis" / "prompts.sqlite", tmp_path / "shinka" / "prompts.sqlite"
    theirs.parent.mkdir()
    written_by_genesis = through_genesis("write", ours, HISTORY)
    written_by_shinka = through_shinka("write", theirs, HISTORY)
    assert written_by_genesis == written_by_shinka  # the same history, the same state
    assert written_by_genesis["archive"] == ["c3", "c1", "c2", "i0"]
    assert (written_by_genesis["best"], written_by_genesis["last_generation"]) == ("c3", 4)
    assert through_shinka("read", ours) == written_by_genesis
    assert through_genesis("read", theirs) == written_by_shinka
    continued_by_shinka = through_shinka("write", ours, MORE)  # each continues the other's
    continued_by_genesis = through_genesis("write", theirs, MORE)
    assert continued_by_shinka == continued_by_genesis
    assert through_genesis("read", ours) == continued_by_shinka
    assert through_shinka("read", theirs) == continued_by_genesis
    assert set(continued_by_genesis["prompts"]) == {"i0", "c1", "c2", "c3", "c4", "i5", "c6"}
