"""``verify_runs`` and the content hash: equal runs pass, every kind of difference is named."""

from __future__ import annotations

import copy
import math
from pathlib import Path

from genesis.database import DatabaseURL, create_store
from genesis.database.protocol import AttemptEvent
from genesis.ops import copy_run, verify_runs
from genesis.ops.digest import canonical_json, differing_fields, program_digest
from tests.factories import make_program
from tests.test_ops_copy import seeded


def test_canonical_json_ignores_key_order_and_the_sign_of_zero() -> None:
    assert canonical_json({"b": [0.0, 1], "a": {"y": 1, "x": -0.0}}) == \
        canonical_json({"a": {"x": 0.0, "y": 1}, "b": [-0.0, 1]})


def test_canonical_json_compares_floats_exactly_and_keeps_types() -> None:
    assert canonical_json(0.1 + 0.2) != canonical_json(0.3)
    assert canonical_json(1) != canonical_json(1.0)
    assert canonical_json(True) != canonical_json(1)
    assert canonical_json(5e-324) != canonical_json(0.0)


def test_program_digest_names_the_fields_that_differ() -> None:
    program = make_program(embedding_dim=3)
    same = copy.deepcopy(program)
    same.public_metrics = dict(reversed(list(program.public_metrics.items())))
    assert program_digest(same) == program_digest(program)
    other = copy.deepcopy(program)
    other.embedding[1] = math.nextafter(other.embedding[1], 2.0)  # the last bit only
    other.in_archive = True
    assert program_digest(other) != program_digest(program)
    assert differing_fields(program, other) == ["embedding", "in_archive"]


async def test_verify_reports_each_kind_of_difference(store_url: DatabaseURL,
                                                      tmp_path: Path) -> None:
    source, programs = await seeded(tmp_path / "source.db", 40)
    await copy_run(source, store_url)
    extra = make_program()
    async with create_store(store_url) as store:
        await store.add(extra)
        async with store.write() as writer:
            await writer.move_program(programs[5].id, 2, {"generation": 3, "from": 0, "to": 2})
            await writer.archive_remove([programs[0].id])
            await writer.set_metadata("best_score_ever", "0.8")
            await writer.delete_metadata("note")
            await writer.record_attempt_event(AttemptEvent(9, "eval", "late", None, 1.0))
    report = await verify_runs(source, store_url, limit=50)
    assert not report.ok
    found = {(d.what, d.key): d.detail for d in report.differences}
    assert found[("program", programs[5].id)] == "fields differ: island_idx, migration_history"
    assert found[("program", programs[0].id)] == "fields differ: in_archive"
    assert found[("program", extra.id)] == "only in DST"
    assert found[("programs", "count")] == "41 vs 42"
    archived = sum(p.in_archive for p in programs)
    assert found[("archive", "size")] == f"{archived} vs {archived - 1}"
    assert found[("metadata", "'best_score_ever'")] == "'0.75' vs '0.8'"
    assert found[("metadata", "'note'")] == "only in SRC"
    assert found[("attempt_log", "rows")] == "3 vs 4"
    assert any(what == "islands" for what, _ in found)
    assert report.total == len(report.differences)
    text = "\n".join(report.lines())
    assert f"DIFFERENT: {report.total} differences" in text and programs[5].id in text


async def test_verify_lists_the_first_differences_and_counts_them_all(tmp_path: Path) -> None:
    first, _ = await seeded(tmp_path / "a.db", 12, seed=1)
    second, _ = await seeded(tmp_path / "b.db", 12, seed=2)
    report = await verify_runs(first, second, limit=3)
    assert len(report.differences) == 3
    assert report.total > 20  # every program of each side is only on that side
    assert report.lines()[-1] == f"  ... and {report.total - 3} more"


async def test_identical_runs_verify_ok(tmp_path: Path) -> None:
    source, _ = await seeded(tmp_path / "a.db", 10)
    await copy_run(source, tmp_path / "b.db")
    report = await verify_runs(source, tmp_path / "b.db")
    assert report.ok and report.compared == 11
    assert report.lines()[-1].startswith("identical: 11 programs compared")
