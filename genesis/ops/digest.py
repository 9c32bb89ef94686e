"""Content hashes of programs and log rows that do not depend on the backend storing them.

The canonical form of a value is its JSON with sorted keys, where ``-0.0`` is written as
``0.0``. Floats are written with ``repr``, which round-trips exactly, so two floats hash
alike only when they are equal, and an int never hashes like a float (``1`` is not ``1.0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from genesis.database.program import PROGRAM_FIELDS, Program

__all__ = ["canonical_json", "differing_fields", "program_digest", "record_json"]

_encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return 0.0 if value == 0.0 else value
    if isinstance(value, dict):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of a value (sorted keys, -0.0 as 0.0, exact floats)."""
    return _encoder.encode(_normalise(value))


def _fields(program: Program) -> dict[str, Any]:
    return {name: getattr(program, name) for name in PROGRAM_FIELDS}


def program_digest(program: Program) -> str:
    """Return the SHA-256 of a program's canonical JSON (every field, archive membership too)."""
    return hashlib.sha256(canonical_json(_fields(program)).encode()).hexdigest()


def differing_fields(first: Program, second: Program) -> list[str]:
    """Return the names of the fields whose canonical values differ."""
    return [name for name in PROGRAM_FIELDS
            if canonical_json(getattr(first, name)) != canonical_json(getattr(second, name))]


def record_json(record: Any) -> str:
    """Return the canonical JSON of a dataclass record (an event log row)."""
    return canonical_json(dataclasses.asdict(record))
