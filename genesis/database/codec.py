"""Validation and encoding of programs into column values, shared by every backend.

Storage policy (documented in the README):

* JSON fields (metrics, metadata, inspiration ids, PCA vectors, migration history) hold
  JSON values: dicts, lists, strings, finite numbers, booleans and null. Tuples and numpy
  values are converted (``.tolist()``); keys become strings, as in JSON.
* **NaN and infinity never make a program refused**: before encoding, the engine calls
  :func:`replace_nonfinite`, which stores a non-finite ``combined_score`` and every
  non-finite number inside the JSON fields as null, drops an embedding holding one and
  recomputes a non-finite ``complexity``; one warning names the fields. With
  ``DatabaseConfig(strict_numbers=True)`` they are refused instead: the encoder itself
  rejects them with an :class:`InvalidProgramError` naming the field, for example
  ``public_metrics['loss']``, and nothing is written.
* Text must be valid Unicode without NUL characters (PostgreSQL cannot store either).
* Embeddings are stored as little-endian float64 blobs: exact, and about three times
  smaller and much faster to read than JSON text.
"""

from __future__ import annotations

import json
import math
import operator
import sys
from array import array
from collections.abc import Iterator, Mapping
from numbers import Real
from typing import Any

from genesis.database.errors import InvalidProgramError
from genesis.database.program import Program

__all__ = [
    "JSON_COLUMNS",
    "PROGRAM_COLUMNS",
    "check_code_size",
    "check_identity",
    "decode_json",
    "dumps",
    "encode_json",
    "encode_program",
    "pack_embedding",
    "program_from_row",
    "replace_nonfinite",
    "unpack_embedding",
    "without_nonfinite",
]

# Canonical column order of an encoded program; backends list their columns in this order.
PROGRAM_COLUMNS: tuple[str, ...] = (
    "id", "code", "language", "parent_id", "archive_inspiration_ids",
    "top_k_inspiration_ids", "island_idx", "generation", "timestamp", "code_diff",
    "combined_score", "public_metrics", "private_metrics", "text_feedback", "correct",
    "children_count", "complexity", "embedding", "embedding_pca_2d", "embedding_pca_3d",
    "embedding_cluster_id", "migration_history", "metadata", "system_prompt_id",
    "source_job_id",
)
JSON_COLUMNS: dict[str, type] = {
    "archive_inspiration_ids": list,
    "top_k_inspiration_ids": list,
    "public_metrics": dict,
    "private_metrics": dict,
    "embedding_pca_2d": list,
    "embedding_pca_3d": list,
    "migration_history": list,
    "metadata": dict,
}
INT32 = (-(2**31), 2**31 - 1)
MAX_ID_CHARS = 1024
_BIG_ENDIAN = sys.byteorder == "big"
_EMPTY_TEXT: dict[type, str] = {list: "[]", dict: "{}"}


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        raise TypeError(f"a {type(value).__name__} is not JSON (use a list)")
    raise TypeError(f"a {type(value).__name__} is not JSON")


_encoder = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=_json_default
)
dumps = _encoder.encode


MAX_JSON_DEPTH = 200  # nesting beyond this (or a container holding itself) is refused


def _too_deep(path: str, pid: Any) -> InvalidProgramError:
    shown = path if len(path) <= 100 else f"{path[:60]}... ({MAX_JSON_DEPTH} levels down)"
    return InvalidProgramError(shown, f"is nested more than {MAX_JSON_DEPTH} levels deep (or "
                               "contains itself)", pid)


def _walk(value: Any, path: str, pid: Any = None) -> Iterator[tuple[str, Any]]:
    """Yield (path, item) for ``value``, everything inside it and every key, in order.

    Iterative, so deep or self-containing values are refused instead of exhausting the stack.
    """
    stack: list[tuple[str, Any, int]] = [(path, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(where, pid)
        yield where, item
        if hasattr(item, "tolist") and not isinstance(item, (str, bytes)):
            item = item.tolist()
        if isinstance(item, Mapping):
            children = []
            for key, inner in item.items():
                children.append((f"{where} key {key!r}", key, depth + 1))
                children.append((f"{where}[{key!r}]", inner, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([(f"{where}[{index}]", inner, depth + 1)
                                   for index, inner in enumerate(item)]))


def _first(value: Any, path: str, bad: Any, pid: Any = None) -> str:
    for where, item in _walk(value, path, pid):
        if bad(item):
            return where
    return path


def _nonfinite(item: Any) -> bool:
    return isinstance(item, float) and not math.isfinite(item)


def _has_nul(item: Any) -> bool:
    return isinstance(item, str) and "\x00" in item


def _finite_copy(value: Any, path: str, found: list[str], depth: int = 0) -> Any:
    """Return ``value`` with non-finite floats replaced by None (the same object if none)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found.append(path)
        return None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if depth >= MAX_JSON_DEPTH:
        raise _too_deep(path, None)
    if hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray)):
        plain = value.tolist()
        cleaned = _finite_copy(plain, path, found, depth)
        return value if cleaned is plain and not isinstance(plain, float) else cleaned
    if isinstance(value, Mapping):
        items = {key: _finite_copy(item, f"{path}[{key!r}]", found, depth + 1)
                 for key, item in value.items()}
        changed = any(items[key] is not item for key, item in value.items())
        return items if changed else value
    if isinstance(value, (list, tuple)):
        cleaned_items = [_finite_copy(item, f"{path}[{index}]", found, depth + 1)
                         for index, item in enumerate(value)]
        changed = any(new is not old for new, old in zip(cleaned_items, value, strict=True))
        return cleaned_items if changed else value
    return value


def without_nonfinite(value: Any, path: str) -> tuple[Any, list[str]]:
    """Return ``value`` with NaN and infinity (also nested) made None, and where they were.

    ``value`` itself is returned when it holds none; numpy values become plain ones.
    """
    found: list[str] = []
    return _finite_copy(value, path, found), found


def replace_nonfinite(program: Program) -> list[str]:
    """Replace NaN and infinity in ``program`` by null; return the fields that held them.

    ``combined_score`` and numbers inside JSON fields become None; an embedding holding a
    non-finite value is dropped (an embedding with holes is no embedding); a non-finite
    ``complexity`` is reset to 0 so that the database computes it. Other fields are left to
    validation. Containers are replaced by cleaned copies only when they held such a number.
    """
    found: list[str] = []
    score = program.combined_score
    if isinstance(score, float) and not math.isfinite(score):
        program.combined_score = None
        found.append("combined_score")
    if isinstance(program.complexity, float) and not math.isfinite(program.complexity):
        program.complexity = 0.0
        found.append("complexity")
    embedding = program.embedding
    if isinstance(embedding, (list, tuple)) or (hasattr(embedding, "tolist") and \
            hasattr(embedding, "__len__") and len(embedding)):
        try:
            total = math.fsum(embedding)
        except (TypeError, ValueError, OverflowError):
            total = math.inf
        if not math.isfinite(total):
            bad = next((i for i, x in enumerate(embedding)
                        if isinstance(x, float) and not math.isfinite(x)), None)
            if bad is not None:
                program.embedding = []
                found.append(f"embedding[{bad}]")
    for name in JSON_COLUMNS:
        value = getattr(program, name)
        if value:
            try:
                cleaned = _finite_copy(value, name, found)
            except InvalidProgramError as exc:
                raise InvalidProgramError(exc.field, exc.problem, program.id) from None
            if cleaned is not value:
                setattr(program, name, cleaned)
    return found


def _not_json(item: Any) -> bool:
    if hasattr(item, "tolist"):
        return False
    if isinstance(item, Mapping):
        return any(not isinstance(k, (str, int, float, bool, type(None))) for k in item)
    return not isinstance(item, (str, int, float, bool, type(None), list, tuple))


def _check_text(name: str, text: str, pid: Any, escaped_nul: bool = False) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidProgramError(
                name, f"is not valid Unicode (lone surrogate at character {exc.start})", pid
            ) from None
    if ("\\u0000" if escaped_nul else "\x00") in text:
        raise InvalidProgramError(name, "contains a NUL character, which cannot be stored", pid)


def encode_json(name: str, value: Any, pid: Any = None, kind: type | None = None) -> str:
    """Return ``value`` as JSON text, or raise InvalidProgramError naming ``name``."""
    kind = kind or JSON_COLUMNS[name]
    if value is None:
        value = kind()
    elif not isinstance(value, kind):
        if kind is list and isinstance(value, tuple):
            value = list(value)
        elif kind is dict and isinstance(value, Mapping):
            value = dict(value)
        else:
            raise InvalidProgramError(
                name, f"expected a {kind.__name__}, got {type(value).__name__}", pid
            )
    if not value:  # most list columns are empty: skip the encoder
        return _EMPTY_TEXT[kind]
    try:
        text = dumps(value)
    except (ValueError, TypeError, RecursionError) as exc:
        where = _first(value, name, _nonfinite, pid)  # refuses what is too deep or cyclic
        if where != name or _nonfinite(value):
            raise InvalidProgramError(
                where, "NaN and infinity are not stored; replace them (for example by null)",
                pid) from None
        where = _first(value, name, _not_json, pid)
        raise InvalidProgramError(where, f"cannot be stored as JSON: {exc}", pid) from None
    if "\\u0000" in text:  # a NUL in a string or a key: PostgreSQL cannot store it
        where = _first(value, name, _has_nul, pid)
        if where != name or _has_nul(value):
            raise InvalidProgramError(where, "contains a NUL character, which cannot be "
                                      "stored", pid)
    _check_text(name, text, pid)
    return text


def _text(name: str, value: Any, pid: Any, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidProgramError(name, f"expected a string, got {type(value).__name__}", pid)
    _check_text(name, value, pid)
    return value


def _int(name: str, value: Any, pid: Any, optional: bool = False, minimum: int = INT32[0]) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise InvalidProgramError(name, "expected an integer, got a bool", pid)
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidProgramError(
            name, f"expected an integer, got {type(value).__name__} {value!r}", pid
        ) from None
    if not minimum <= number <= INT32[1]:
        raise InvalidProgramError(name, f"must be between {minimum} and {INT32[1]}", pid)
    return number


def _real(name: str, value: Any, pid: Any, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidProgramError(
            name, f"expected a number, got {type(value).__name__} {value!r}", pid
        )
    try:
        number = float(value)
    except OverflowError:
        raise InvalidProgramError(name, "is too large to store as a double-precision float",
                                  pid) from None
    if not math.isfinite(number):
        raise InvalidProgramError(name, f"must be finite, got {number}", pid)
    return number


def pack_embedding(values: Any, pid: Any = None) -> bytes | None:
    """Return the float64 blob of an embedding (None when empty); refuse non-finite values."""
    if values is None:
        return None
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
        raise InvalidProgramError("embedding", f"expected a list of numbers, got "
                                  f"{type(values).__name__}", pid)
    if len(values) == 0:
        return None
    try:
        packed = array("d", values.tolist() if hasattr(values, "tolist") else values)
    except (TypeError, OverflowError):
        raise InvalidProgramError("embedding", "expected a list of finite numbers", pid) \
            from None
    if not math.isfinite(sum(packed)) and not all(map(math.isfinite, packed)):
        index = next(i for i, x in enumerate(packed) if not math.isfinite(x))
        raise InvalidProgramError(f"embedding[{index}]", "NaN and infinity are not stored", pid)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def unpack_embedding(blob: bytes | None) -> list[float]:
    """Return the list of floats stored in a float64 blob."""
    if not blob:
        return []
    values = array("d")
    values.frombytes(blob)
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tolist()


def _feedback(value: Any, pid: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(item) for item in value)
    return _text("text_feedback", value, pid, optional=False)  # type: ignore[return-value]


def _job_id(metadata: Mapping[str, Any], pid: Any) -> str | None:
    job = metadata.get("source_job_id")
    if job is None or isinstance(job, str):
        return job
    if isinstance(job, int) and not isinstance(job, bool):
        return str(job)
    raise InvalidProgramError("metadata['source_job_id']", "expected a string", pid)


def check_identity(program: Program) -> None:
    """Validate the id and the parent id: what is looked up before a program is encoded."""
    pid = program.id
    if not isinstance(pid, str) or not pid or len(pid) > MAX_ID_CHARS:
        raise InvalidProgramError("id", f"expected a non-empty string of at most "
                                  f"{MAX_ID_CHARS} characters, got {pid!r:.80}")
    _check_text("id", pid, None)
    _text("parent_id", program.parent_id, pid)


def check_code_size(program: Program, max_code_bytes: int) -> None:
    """Refuse code larger than ``max_code_bytes`` (UTF-8) before any work is spent on it."""
    code = program.code
    if not isinstance(code, str) or len(code) * 4 <= max_code_bytes:
        return
    size = len(code) if code.isascii() else len(code.encode("utf-8", "surrogatepass"))
    if size > max_code_bytes:
        raise InvalidProgramError(
            "code", f"is {size:,} bytes, more than max_code_bytes ({max_code_bytes:,})",
            program.id)


def encode_program(program: Program, max_code_bytes: int) -> tuple[Any, ...]:
    """Validate ``program`` and return its column values in ``PROGRAM_COLUMNS`` order.

    JSON columns are returned as JSON text, ``correct`` as a bool and the embedding as a
    float64 blob (or None). Raises InvalidProgramError naming the first bad field.
    """
    if not isinstance(program, Program):
        raise InvalidProgramError("program", f"expected a Program, got {type(program).__name__}")
    check_identity(program)
    pid = program.id
    check_code_size(program, max_code_bytes)
    code = _text("code", program.code, pid, optional=False)
    assert code is not None
    language = _text("language", program.language, pid, optional=False)
    if not language:
        raise InvalidProgramError("language", "must not be empty", pid)
    correct = program.correct
    if not isinstance(correct, bool):
        if type(correct).__name__ == "bool_" or correct in (0, 1):
            correct = bool(correct)
        else:
            raise InvalidProgramError("correct", f"expected a bool, got {correct!r}", pid)
    metadata = program.metadata
    metadata_text = encode_json("metadata", metadata, pid)
    return (
        pid,
        code,
        language,
        _text("parent_id", program.parent_id, pid),
        encode_json("archive_inspiration_ids", program.archive_inspiration_ids, pid),
        encode_json("top_k_inspiration_ids", program.top_k_inspiration_ids, pid),
        _int("island_idx", program.island_idx, pid, optional=True, minimum=0),
        _int("generation", program.generation, pid, minimum=0),
        _real("timestamp", program.timestamp, pid),
        _text("code_diff", program.code_diff, pid),
        _real("combined_score", program.combined_score, pid, optional=True),
        encode_json("public_metrics", program.public_metrics, pid),
        encode_json("private_metrics", program.private_metrics, pid),
        _feedback(program.text_feedback, pid),
        correct,
        _int("children_count", program.children_count, pid, minimum=0),
        _real("complexity", program.complexity, pid),
        pack_embedding(program.embedding, pid),
        encode_json("embedding_pca_2d", program.embedding_pca_2d, pid),
        encode_json("embedding_pca_3d", program.embedding_pca_3d, pid),
        _int("embedding_cluster_id", program.embedding_cluster_id, pid, optional=True),
        encode_json("migration_history", program.migration_history, pid),
        metadata_text,
        _text("system_prompt_id", program.system_prompt_id, pid),
        _job_id(metadata or {}, pid),
    )


def decode_json(text: Any, kind: type) -> Any:
    """Decode a stored JSON value, returning an empty container when absent or invalid."""
    if text is None or text == "" or text == _EMPTY_TEXT[kind]:
        return kind()
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            return kind()
    else:
        value = text
    return value if isinstance(value, kind) else kind()


def program_from_row(values: Mapping[str, Any], in_archive: bool) -> Program:
    """Build a Program from decoded column values (JSON already parsed, blob unpacked)."""
    feedback = values["text_feedback"]
    return Program(
        id=values["id"],
        code=values["code"],
        language=values["language"],
        parent_id=values["parent_id"],
        archive_inspiration_ids=values["archive_inspiration_ids"],
        top_k_inspiration_ids=values["top_k_inspiration_ids"],
        island_idx=values["island_idx"],
        generation=values["generation"],
        timestamp=values["timestamp"],
        code_diff=values["code_diff"],
        combined_score=values["combined_score"],
        public_metrics=values["public_metrics"],
        private_metrics=values["private_metrics"],
        text_feedback="" if feedback is None else feedback,
        correct=bool(values["correct"]),
        children_count=values["children_count"],
        complexity=values["complexity"],
        embedding=values["embedding"],
        embedding_pca_2d=values["embedding_pca_2d"],
        embedding_pca_3d=values["embedding_pca_3d"],
        embedding_cluster_id=values["embedding_cluster_id"],
        migration_history=values["migration_history"],
        metadata=values["metadata"],
        in_archive=in_archive,
        system_prompt_id=values["system_prompt_id"],
    )
