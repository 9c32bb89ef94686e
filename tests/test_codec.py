"""Unit tests for the Program record and the storage policy (validation, NaN, encoding)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genesis.database import InvalidProgramError, Program
from genesis.database.codec import encode_program, pack_embedding, unpack_embedding

LIMIT = 1_000_000


def test_to_dict_from_dict_round_trip_and_unknown_keys() -> None:
    program = Program(id="p", code="x = 1", public_metrics={"a": 1.0}, embedding=[0.5])
    data = program.to_dict()
    data["not_a_field"] = 42
    assert Program.from_dict(data) == program
    assert "not_a_field" in data  # from_dict does not mutate its input


def test_from_dict_replaces_null_json_values() -> None:
    program = Program.from_dict({"id": "p", "code": "", "metadata": None, "embedding": None,
                                 "text_feedback": None})
    assert program.metadata == {} and program.embedding == [] and program.text_feedback == ""


def test_text_feedback_list_is_joined() -> None:
    values = encode_program(Program(id="p", code="", text_feedback=["a", "b"]), LIMIT)
    assert values[13] == "a\nb"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"combined_score": math.nan}, "combined_score"),
        ({"combined_score": math.inf}, "combined_score"),
        ({"complexity": -math.inf}, "complexity"),
        ({"public_metrics": {"loss": math.nan}}, "public_metrics['loss']"),
        ({"private_metrics": {"deep": {"x": [1.0, math.inf]}}}, "private_metrics['deep']['x'][1]"),
        ({"metadata": {"m": np.float64("nan")}}, "metadata['m']"),
        ({"embedding": [0.1, math.nan]}, "embedding[1]"),
        ({"timestamp": math.nan}, "timestamp"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(InvalidProgramError) as info:
        encode_program(Program(id="p1", code="pass", **changes), LIMIT)
    assert info.value.field == field
    assert "p1" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": 7}, "id"),
        ({"code": None}, "code"),
        ({"code": b"bytes"}, "code"),
        ({"generation": "3"}, "generation"),
        ({"generation": -1}, "generation"),
        ({"generation": True}, "generation"),
        ({"island_idx": 2**40}, "island_idx"),
        ({"combined_score": "high"}, "combined_score"),
        ({"correct": "yes"}, "correct"),
        ({"public_metrics": [1, 2]}, "public_metrics"),
        ({"metadata": {"when": object()}}, "metadata['when']"),
        ({"metadata": {"tags": {1, 2}}}, "metadata['tags']"),
        ({"embedding": "0.1,0.2"}, "embedding"),
        ({"embedding": [0.1, "x"]}, "embedding"),
        ({"code": "ok\ud800"}, "code"),
        ({"code": "nul\x00byte"}, "code"),
        ({"metadata": {"s": "bad\udfff"}}, "metadata"),
        ({"metadata": {"s": "nul\x00"}}, "metadata['s']"),
        ({"parent_id": 3}, "parent_id"),
        ({"metadata": {"source_job_id": ["j"]}}, "metadata['source_job_id']"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(InvalidProgramError) as info:
        encode_program(Program(id=changes.pop("id", "p1"), code=changes.pop("code", "pass"),
                               **changes), LIMIT)
    assert info.value.field == field


def test_huge_code_is_refused() -> None:
    with pytest.raises(InvalidProgramError, match="max_code_bytes"):
        encode_program(Program(id="p", code="x" * (LIMIT + 1)), LIMIT)


def test_numpy_values_are_converted() -> None:
    values = encode_program(Program(id="p", code="", combined_score=np.float32(0.5),
                                    generation=np.int64(3), correct=np.bool_(True),
                                    public_metrics={"v": np.arange(3)},
                                    embedding=np.ones(4)), LIMIT)
    assert values[10] == 0.5 and values[7] == 3 and values[14] is True
    assert values[11] == '{"v":[0,1,2]}'
    assert unpack_embedding(values[17]) == [1.0] * 4


def test_embedding_blob_is_exact() -> None:
    values = [0.1, -2.5e-300, 1e308, 3.141592653589793, 0.0]
    assert unpack_embedding(pack_embedding(values)) == values
    assert pack_embedding([]) is None and unpack_embedding(None) == []
