"""Batches of selected fields, a JSON path read in Python from its column's whole document.

Selecting ``metadata -> '$."k"'`` once per path and decoding each value on its own costs
a SQL extraction and a Python call per key per row; instead each JSON column a path needs
is selected once, as JSON text, a batch of documents decoded in one ``json.loads`` and
every path looked up in the dicts. A path means what the per-path SQL meant: the value of
each key in turn, None where a key, or the document, is missing or unreadable; on
PostgreSQL a key that is a number (``0``, ``-1``) also indexes a list, as ``#>`` does.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from genesis.database.backends.query_sql import QueryCompiler
from genesis.database.query_language import Field

__all__ = ["RowPlan", "documents", "settle", "value_at"]

Converter = Callable[[Any], Any]
# The whole of an integer as PostgreSQL reads an array index in a path (strtol, int32).
_INDEX = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+\Z")
_INT32 = 2**31


def documents(texts: Sequence[str]) -> list[Any]:
    """Decode a batch of JSON texts ('null' where absent): one parse, else one per text."""
    try:
        decoded = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        decoded = None
    if decoded is not None and len(decoded) == len(texts):
        return decoded
    return [_document(text) for text in texts]


async def settle(task: asyncio.Future[Any]) -> None:
    """Wait for a read nobody wants any more to end (its outcome, even an error, dropped)."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


def _document(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _index(items: list[Any], key: str) -> Any:
    """The list item a path key names on PostgreSQL (from the end if negative), or None."""
    if _INDEX.match(key) is None:
        return None
    index = int(key)
    if not -_INT32 <= index < _INT32:
        return None
    index += len(items) if index < 0 else 0
    return items[index] if 0 <= index < len(items) else None


def value_at(document: Any, path: Sequence[str], lists: bool = False) -> Any:
    """The value at ``path`` in a decoded document (``lists``: number keys index lists)."""
    for key in path:
        if document.__class__ is dict:
            document = document.get(key)
        elif lists and document.__class__ is list:
            document = _index(document, key)
        else:
            return None
    return document


class RowPlan:
    """What to select for some fields, and how to read their values from the result rows."""

    def __init__(self, fields: Sequence[Field], compiler: QueryCompiler,
                 converter: Callable[[Field], Converter | None], lists: bool) -> None:
        self.names = [field.name for field in fields]
        self.lists = lists
        parts: list[str] = []
        self.json_at: dict[str, int] = {}
        # Per field: (position in the result row, path or None, converter or None).
        self.reads: list[tuple[int, tuple[str, ...] | None, Converter | None]] = []
        for field in fields:
            if field.path:
                if field.column not in self.json_at:
                    self.json_at[field.column] = len(parts)
                    parts.append(compiler.document(field.column))
                self.reads.append((self.json_at[field.column], field.path, None))
            else:
                self.reads.append((len(parts), None, converter(field)))
                parts.append(compiler.value(field.column))
        self.select = ", ".join(parts)

    def values(self, rows: Sequence[Sequence[Any]], offset: int = 0) -> list[tuple[Any, ...]]:
        """The fields' values of each row (the selected ones from position ``offset`` on)."""
        if not rows:
            return []
        columns = list(zip(*rows, strict=True))[offset:]
        docs = {at: documents(columns[at]) for at in self.json_at.values()}
        return list(zip(*[self._column(columns, docs, *read) for read in self.reads],
                        strict=True))

    def _column(self, columns: list[tuple[Any, ...]], docs: dict[int, list[Any]], at: int,
                path: tuple[str, ...] | None, convert: Converter | None) -> Sequence[Any]:
        if path is None:
            if convert is None:
                return columns[at]
            return [None if value is None else convert(value) for value in columns[at]]
        found = docs[at]
        if len(path) == 1 and set(map(type, found)) == {dict}:
            return list(map(dict.get, found, repeat(path[0])))
        return [value_at(doc, path, self.lists) for doc in found]
