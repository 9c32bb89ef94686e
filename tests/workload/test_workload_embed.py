"""Deterministic local code embedding."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.workload import INITIAL_PROGRAM, ProgrammaticMutator, embed_code
from genesis.workload.embed import code_tokens

UNRELATED = '''
import json


class Inventory:
    """Keeps track of items in a warehouse."""

    def __init__(self):
        self.items = {}

    def add(self, name, count=1):
        self.items[name] = self.items.get(name, 0) + count
        return json.dumps(self.items)
'''


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two unit vectors."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def test_embedding_is_normalised_and_has_the_requested_size() -> None:
    for code in (INITIAL_PROGRAM, UNRELATED, "", "x", "def f(:\n    '''unterminated"):
        vector = embed_code(code)
        assert len(vector) == 1536
        assert math.isclose(math.sqrt(math.fsum(v * v for v in vector)), 1.0)
    assert len(embed_code(INITIAL_PROGRAM, dim=64)) == 64
    with pytest.raises(ValueError):
        embed_code("x", dim=0)


def test_embedding_is_deterministic_across_processes() -> None:
    script = (
        "import json, sys; from genesis.workload import embed_code; "
        "print(json.dumps(embed_code(sys.stdin.read(), dim=128)))"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=INITIAL_PROGRAM,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert json.loads(out) == embed_code(INITIAL_PROGRAM, dim=128)
    assert embed_code(INITIAL_PROGRAM) == embed_code(INITIAL_PROGRAM)


def test_small_mutations_are_closer_than_unrelated_code() -> None:
    base = embed_code(INITIAL_PROGRAM)
    mutator = ProgrammaticMutator(weights={"perturb": 1.0})
    child = mutator.mutate(INITIAL_PROGRAM, [], random.Random(0)).code
    near = cosine(base, embed_code(child))
    far = cosine(base, embed_code(UNRELATED))
    assert near > 0.95
    assert far < 0.6
    assert near > far


def test_tokens_ignore_layout_and_comments() -> None:
    assert code_tokens("x = 1  # one\n\n\ny=1\n") == ["x", "=", "1", "y", "=", "1"]
    assert embed_code("x = (1 +\n     2)\n") == embed_code("x = (1 + 2)  # sum\n")


def test_code_that_does_not_lex_still_tokenizes() -> None:
    tokens = code_tokens("s = '''open\nx = 1.5e3  # note")
    assert tokens[:2] == ["s", "="] and tokens[-3:] == ["x", "=", "1.5e3"]
    assert not any(t.startswith("#") for t in tokens)
    assert code_tokens("a.b(c) ** 2 >= 'it\\'s' -> d") == [
        "a", ".", "b", "(", "c", ")", "**", "2", ">=", "'it\\'s'", "->", "d",
    ]
