"""``genesis db search | query | lineage | export`` on both backends; exports read back equal."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas
import pytest

from genesis.cli import main
from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from tests.test_cli_db import cli, text


def _programs() -> list[Program]:
    programs = []
    for i in range(30):
        programs.append(Program(
            id=f"p{i:02d}", parent_id=f"p{i - 1:02d}" if i else None, island_idx=i % 2,
            generation=i, correct=i % 2 == 0, combined_score=i / 7,
            code=f"import scipy\n\ndef step_{i}(x):\n    return scipy.optimize.minimize(x)\n"
            if i % 5 == 0 else f"def step_{i}(x):\n    return x * {i}\n",
            public_metrics={"sum_radii": 2 + i / 10, "n": i},
            private_metrics={"seed": i}, metadata={"patch_type": "diff" if i % 3 else "full"},
            text_feedback=f"note {i}"))
    return programs


@pytest.fixture
async def run(store_url: DatabaseURL) -> tuple[DatabaseURL, list[Program]]:
    """A run of 30 programs in one chain, on the backend under test."""
    programs = _programs()
    async with AsyncProgramDatabase(DatabaseConfig(database_url=str(store_url))) as db:
        await db.store.add_many(programs)
    return store_url, programs


def test_search_prints_ranked_hits_and_json(run, capsys: pytest.CaptureFixture[str]) -> None:
    url, programs = run
    code, out, _ = cli(capsys, "db", "search", text(url), "scipy.optimize.minimize", "--json")
    assert code == 0
    assert {hit["id"] for hit in json.loads(out)} == {p.id for p in programs
                                                      if "scipy" in p.code}
    code, out, _ = cli(capsys, "db", "search", text(url), "minimize", "--incorrect")
    assert code == 0 and " p05  gen 5" in out and "[minimize]" in out and "p10" not in out


def test_query_prints_rows_and_refuses_bad_filters(run, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    url, programs = run
    code, out, _ = cli(capsys, "db", "query", text(url),
                       'correct and public_metrics.sum_radii > 4 and metadata.patch_type == "diff"',
                       "--columns", "id,public_metrics.n", "--order-by", "public_metrics.n desc",
                       "--json")
    assert code == 0
    assert json.loads(out) == [{"id": p.id, "public_metrics.n": p.public_metrics["n"]}
                               for p in reversed(programs) if p.correct
                               and p.public_metrics["sum_radii"] > 4
                               and p.metadata["patch_type"] == "diff"]
    code, out, err = cli(capsys, "db", "query", text(url), "generation >")
    assert code == 2 and "where: expected a field or a value, not the end at position 12" in err


def test_lineage_up_down_and_common(run, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = run
    code, out, _ = cli(capsys, "db", "lineage", text(url), "p05", "--json")
    assert code == 0 and [row["id"] for row in json.loads(out)] == [
        "p04", "p03", "p02", "p01", "p00"]
    code, out, _ = cli(capsys, "db", "lineage", text(url), "p27", "--down")
    assert code == 0 and out.split()[:2] == ["1", "p28"] and "p29" in out
    code, out, _ = cli(capsys, "db", "lineage", text(url), "p07", "--common-with", "p20",
                       "--json")
    assert code == 0 and json.loads(out)["id"] == "p07"


def _expected(programs: list[Program]) -> pandas.DataFrame:
    return pandas.DataFrame({
        "id": [p.id for p in programs], "code": [p.code for p in programs],
        "generation": [p.generation for p in programs],
        "combined_score": [p.combined_score for p in programs],
        "correct": [p.correct for p in programs],
        "public_metrics.sum_radii": [p.public_metrics["sum_radii"] for p in programs],
        "private_metrics.seed": [p.private_metrics["seed"] for p in programs],
        "metadata.patch_type": [p.metadata["patch_type"] for p in programs],
    })


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_reads_back_equal_to_the_run(run, fmt: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url, programs = run
    output = tmp_path / f"programs.{fmt}"
    code, _, err = cli(capsys, "db", "export", text(url), "--format", fmt, "--output",
                       str(output))
    assert code == 0 and "exported 30 programs" in err
    if fmt == "csv":
        frame = pandas.read_csv(output, keep_default_na=False, na_values=[""])
        frame["correct"] = frame["correct"].astype(bool)
    elif fmt == "jsonl":
        frame = pandas.read_json(output, lines=True, dtype=False)
    else:
        frame = pandas.read_parquet(output)
    expected = _expected(programs)
    pandas.testing.assert_frame_equal(frame[expected.columns], expected, check_dtype=False)
    assert len(frame.columns) > len(expected.columns)  # every column, not just these


def test_export_filters_streams_to_stdout_and_chooses_columns(
        run, capsys: pytest.CaptureFixture[str]) -> None:
    url, programs = run
    code, out, _ = cli(capsys, "db", "export", text(url), "--where", "correct",
                       "--columns", "id,metadata", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["id"] for row in rows] == [p.id for p in programs if p.correct]
    assert json.loads(rows[0]["metadata"])["patch_type"] == programs[0].metadata["patch_type"]


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("search", "query", "lineage", "export"):
        with pytest.raises(SystemExit):
            main(["db", command, "--help"])
        assert f"examples:\n  genesis db {command} " in capsys.readouterr().out
