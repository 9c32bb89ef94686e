"""The filter language means the same on both backends as in plain Python: random filters
over awkward JSON (missing keys, mixed types, nulls, nesting) select the same programs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from genesis.database import AsyncProgramDatabase, DatabaseConfig, DatabaseURL, Program
from genesis.database.query_language import And, Compare, Field, Node, Not, Or

VALUES: list[Any] = [0, 1, 2.5, -3, "a", "b", "", True, False, None, [1], {"x": 1}]
KEYS = ["k", "j"]
OPS = ["==", "!=", "<", "<=", ">", ">="]


def _programs() -> list[Program]:
    rng = random.Random(11)
    programs = []
    for i in range(60):
        metrics = {key: rng.choice(VALUES) for key in KEYS if rng.random() < 0.8}
        if rng.random() < 0.3:
            metrics["deep"] = {"k": rng.choice(VALUES)}
        programs.append(Program(id=f"p{i:02d}", code="x", island_idx=rng.choice([0, 1, None]),
                                generation=rng.randrange(4), correct=rng.random() < 0.5,
                                combined_score=rng.choice([None, 0.0, 0.5, 1.0]),
                                public_metrics=metrics))
    return programs


def _literal(rng: random.Random, field: Field) -> tuple[str, Any]:
    if field.column == "correct":
        return rng.choice(["==", "!="]), rng.choice([True, False])
    if not field.path:
        value = rng.choice([None, 0, 1, 0.5, 2])
        return (rng.choice(["==", "!="]) if value is None else rng.choice(OPS)), value
    value = rng.choice([0, 1, 2.5, -3, "a", "", True, False, None])
    op = rng.choice(["==", "!="]) if value is None or isinstance(value, bool) else \
        rng.choice(OPS)
    return op, value


def _tree(rng: random.Random, depth: int = 0) -> Node:
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return Not(_tree(rng, depth + 1))
    if depth < 3 and roll < 0.45:
        kind = And if rng.random() < 0.5 else Or
        return kind(tuple(_tree(rng, depth + 1) for _ in range(rng.randint(2, 3))))
    field = rng.choice([Field("correct"), Field("generation"), Field("combined_score"),
                        Field("island_idx"), *(Field("public_metrics", (k,)) for k in KEYS),
                        Field("public_metrics", ("deep", "k"))])
    op, value = _literal(rng, field)
    return Compare(field, op, value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _compare(stored: Any, op: str, value: Any) -> bool:
    if value is None:
        return (stored is None) == (op == "==")
    if stored is None or _kind(stored) != _kind(value):
        return False
    return {"==": stored == value, "!=": stored != value, "<": stored < value,
            "<=": stored <= value, ">": stored > value, ">=": stored >= value}[op]


def _holds(node: Node, program: Program) -> bool:
    if isinstance(node, Not):
        return not _holds(node.operand, program)
    if isinstance(node, And):
        return all(_holds(o, program) for o in node.operands)
    if isinstance(node, Or):
        return any(_holds(o, program) for o in node.operands)
    field = node.field
    if field.path:
        stored: Any = program.public_metrics
        for key in field.path:
            stored = stored.get(key) if isinstance(stored, dict) else None
    else:
        stored = getattr(program, field.column)
    return _compare(stored, node.op, node.value)


def _text(node: Node) -> str:
    if isinstance(node, Compare):
        value = node.value
        literal = ("null" if value is None else str(value).lower() if isinstance(value, bool)
                   else f'"{value}"' if isinstance(value, str) else repr(value))
        return f"{node.field.name} {node.op} {literal}"
    if isinstance(node, Not):
        return f"not ({_text(node.operand)})"
    joiner = " and " if isinstance(node, And) else " or "
    return joiner.join(f"({_text(o)})" for o in node.operands)


@pytest.mark.parametrize("indexed", [False, True], ids=["scan", "indexed"])
async def test_random_filters_select_what_python_selects(store_url: DatabaseURL,
                                                         indexed: bool) -> None:
    """Indexed paths (compared in their index's expression) select exactly the same."""
    programs = _programs()
    rng = random.Random(5)
    config = DatabaseConfig(database_url=str(store_url), num_islands=2)
    async with AsyncProgramDatabase(config) as db:
        await db.store.add_many(programs)
        if indexed:
            for path in ("public_metrics.k", "public_metrics.j", "public_metrics.deep.k"):
                assert await db.create_index(path)
        for _ in range(150):
            tree = _tree(rng)
            rows = await db.query(_text(tree), columns="id", order_by="id", limit=1000)
            expected = [p.id for p in programs if _holds(tree, p)]
            assert [r["id"] for r in rows] == expected, _text(tree)
