"""``genesis db export``: a run's programs as CSV, JSON lines or Parquet, streamed in batches.

Rows come from :meth:`~genesis.database.questions.RunQuestions.value_batches` (every column,
the JSON columns flattened into ``public_metrics.<key>`` fields, unless ``columns`` says
otherwise), a batch at a time, so memory stays flat whatever the size of the run. In CSV a
JSON object or list is written as JSON text and a missing value as an empty cell. Parquet
(through pyarrow, the ``frames`` extra) types each field from the first batch: numbers
become ``double``, booleans ``bool``, the rest strings (JSON text for objects and lists).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from genesis.database.engine import AsyncProgramDatabase
from genesis.database.errors import InvalidArgumentError
from genesis.database.frames import require
from genesis.database.protocol import UpgradeProgress
from genesis.database.query_language import JSON_COLUMNS
from genesis.database.questions import Values
from genesis.database.url import DatabaseURL
from genesis.ops.csv_lines import csv_lines
from genesis.ops.stores import as_url, open_source

__all__ = ["FORMATS", "ExportResult", "export_run"]

FORMATS = ("csv", "jsonl", "parquet")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    rows: int
    path: str
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _may_hold_json(name: str) -> bool:
    """Whether a field can hold an object or a list: a JSON path, column or the embedding."""
    return "." in name or name in JSON_COLUMNS or name == "embedding"


def _csv_rows(batch: Values, positions: list[int]) -> Values:
    """Rows for CSV: objects and lists as JSON text (None is written as an empty cell)."""
    for i in positions:
        if not {dict, list}.isdisjoint(map(type, map(itemgetter(i), batch))):
            batch = [(*row[:i], json.dumps(row[i]), *row[i + 1:])
                     if row[i].__class__ in (dict, list) else row for row in batch]
    return batch


class _Parquet:
    """Batches into one Parquet file, the schema fixed by the first batch."""

    def __init__(self, path: str) -> None:
        self.pa = require("pyarrow", "Parquet export")
        self.parquet = require("pyarrow.parquet", "Parquet export")
        self.path = path
        self.writer: Any = None
        self.kinds: dict[str, str] = {}

    def _kind(self, values: list[Any]) -> str:
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            return "bool"
        if present and all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in present):
            return "double"
        return "string"

    def _cell(self, kind: str, value: Any, field: str) -> Any:
        if value is None or (kind == "bool" and isinstance(value, bool)):
            return value
        if kind == "double" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind == "string":
            return value if isinstance(value, str) else json.dumps(value)
        raise InvalidArgumentError(f"{field}: holds {value!r:.40} in a later row, but its first "
                                   f"rows made it a {kind} column; export it with --format "
                                   "jsonl, or leave it out with --columns")

    def write(self, names: list[str], batch: Values) -> None:
        values = dict(zip(names, zip(*batch, strict=True), strict=True))
        if self.writer is None:
            self.kinds = {name: self._kind(list(values[name])) for name in names}
            types = {"bool": self.pa.bool_(), "double": self.pa.float64(),
                     "string": self.pa.string()}
            schema = self.pa.schema([(name, types[self.kinds[name]]) for name in names])
            self.writer = self.parquet.ParquetWriter(self.path, schema)
        columns = {name: [self._cell(self.kinds[name], value, name) for value in values[name]]
                   for name in names}
        self.writer.write_table(self.pa.table(columns, schema=self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def export_run(url: DatabaseURL | str, output: str | Path | IO[str], fmt: str = "csv",
                     *, where: str | None = None, columns: Sequence[str] | str | None = None,
                     embeddings: bool = False, batch_size: int = 5000,
                     progress: UpgradeProgress | None = None) -> ExportResult:
    """Write the programs of a run matching ``where`` to ``output`` (a path or a text stream)."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"--format: expected one of {', '.join(FORMATS)}, "
                                   f"got {fmt!r}")
    if fmt == "parquet" and not isinstance(output, str | Path):
        raise InvalidArgumentError("--format parquet writes a file: name it with --output")
    url = as_url(url)
    started, count = time.monotonic(), 0
    stream: IO[str] | None = None
    parquet = _Parquet(str(output)) if fmt == "parquet" else None
    if parquet is None:
        stream = (open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115
                  if isinstance(output, str | Path) else output)
    try:
        async with open_source(url) as store, AsyncProgramDatabase(store=store).value_batches(
                where, columns, embeddings, batch_size) as (names, batches):
            objects = [i for i, name in enumerate(names) if _may_hold_json(name)]
            async for batch in batches:
                if parquet is not None:
                    parquet.write(names, batch)
                elif fmt == "jsonl":
                    assert stream is not None
                    stream.writelines(json.dumps(dict(zip(names, values, strict=True))) + "\n"
                                      for values in batch)
                else:
                    assert stream is not None
                    if not count:
                        stream.write(csv_lines([names]))
                    stream.write(csv_lines(_csv_rows(batch, objects)))
                count += len(batch)
                if progress is not None:
                    progress.advance(len(batch))
    finally:
        if parquet is not None:
            parquet.close()
        if stream is not None and isinstance(output, str | Path):
            stream.close()
    name = str(output) if isinstance(output, str | Path) else "-"
    return ExportResult(count, name, time.monotonic() - started)
