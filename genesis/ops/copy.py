"""Copying a whole run between any two URLs, in bounded memory, resumably: ``genesis db copy``.

The source is read inside ONE snapshot read transaction, so the copy is one consistent
state even while writers are active. Programs stream in insertion order in batches of at
most ``batch_size`` programs and about :data:`BATCH_BYTES` of decoded data (programs with
large embeddings or code make smaller batches), so memory stays bounded whatever the size
of the run; the next batch is read while the current one is written. Each batch is one
``add_many(..., count_children=False)`` transaction on the destination (COPY on PostgreSQL),
which keeps ``children_count``, the island and archive membership as they are in the source.
The event logs and the metadata store follow in one final transaction.

Resuming: before the first batch the destination's metadata store gets a marker (key
:data:`MARKER_KEY`) naming the source. While it is there, running the same copy again skips
the programs already present (checking that they still equal the source's, else it stops
with :class:`SourceChangedError`) and writes the rest; the final transaction appends only
the missing events and removes the marker, leaving the metadata store exactly equal to the
source's. A destination that is not empty and holds no marker for this source is refused
unless ``force``, which removes the destination run first (PostgreSQL: drops its schema;
SQLite: deletes the file, which must be a program database).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from genesis.database.errors import ConfigurationError
from genesis.database.program import Program
from genesis.database.protocol import (
    AttemptEvent,
    GenerationEvent,
    ProgramStore,
    StoreReader,
    StoreWriter,
)
from genesis.database.url import DatabaseURL
from genesis.ops.digest import differing_fields, program_digest
from genesis.ops.errors import RefusedError, SourceChangedError
from genesis.ops.stores import (
    as_url,
    open_destination,
    open_source,
    replace_destination,
    run_identity,
)

if TYPE_CHECKING:
    from genesis.cli.progress import Progress

__all__ = ["DEFAULT_BATCH_SIZE", "MARKER_KEY", "CopyResult", "copy_run"]

MARKER_KEY = "genesis.copy"
DEFAULT_BATCH_SIZE = 1000
BATCH_BYTES = 24 * 1024 * 1024
READ_SIZE = 200
T = TypeVar("T")


@dataclass(frozen=True)
class CopyResult:
    """What a copy wrote: counts of the source snapshot and of this call's work."""

    source: str
    destination: str
    programs: int
    copied: int
    archive: int
    metadata_keys: int
    generation_events: int
    attempt_events: int
    seconds: float
    resumed: bool

    @property
    def skipped(self) -> int:
        """Programs already present in the destination (written by an interrupted copy)."""
        return self.programs - self.copied

    @property
    def rate(self) -> float:
        """Programs per second."""
        return self.programs / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Tail:
    """What follows the programs: read in the source snapshot, written in one transaction."""

    metadata: dict[str, str | None]
    generation_events: list[GenerationEvent]
    attempt_events: list[AttemptEvent]
    archive: int


async def copy_run(
    source: DatabaseURL | str,
    destination: DatabaseURL | str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    force: bool = False,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy every program, the archive, the metadata store, both event logs and the JSON path
    indexes of a run."""
    src_url, dst_url = as_url(source, "SRC"), as_url(destination, "DST")
    if batch_size < 1:
        raise ConfigurationError(f"batch size must be at least 1, got {batch_size}")
    src_name = run_identity(src_url)
    if src_name == run_identity(dst_url):
        raise ConfigurationError(f"SRC and DST are the same run ({dst_url})")
    started = time.monotonic()
    async with open_source(src_url) as src:
        if force:
            await replace_destination(dst_url)
        async with open_destination(dst_url) as dst, src.read(snapshot=True) as reader:
            if await reader.get_metadata(MARKER_KEY) is not None:
                raise RefusedError(f"{src_url} holds an unfinished copy itself: finish that "
                                   "copy first (run it again)")
            resumed = await _claim(dst, src_name)
            programs, copied = await _copy_programs(reader, dst, batch_size, progress, resumed)
            tail = _Tail(await reader.all_metadata(), await reader.generation_events(),
                         await reader.attempt_events(), await reader.archive_count())
            await _finish(dst, tail)
            await _check_count(dst, programs)
            for index in await reader.json_indexes():  # the paths the source's filters use
                await dst.create_json_index(index)
    return CopyResult(str(src_url), str(dst_url), programs, copied, tail.archive,
                      len(tail.metadata), len(tail.generation_events),
                      len(tail.attempt_events), time.monotonic() - started, resumed)


async def _claim(dst: ProgramStore, source: str) -> bool:
    """Mark an empty destination as a copy of ``source``; return True when resuming one."""
    async with dst.write(lock=MARKER_KEY) as writer:
        marker = await writer.get_metadata(MARKER_KEY)
        if marker is not None:
            owner = json.loads(marker).get("source")
            if owner == source:
                return True
            raise RefusedError(f"{dst.url} holds an unfinished copy of {owner}; use --force "
                               "to replace it")
        contents = await _contents(writer)
        if contents:
            raise RefusedError(f"{dst.url} is not empty ({contents}); use --force to replace "
                               "it (a finished copy can be checked with `genesis db verify`)")
        await writer.set_metadata(MARKER_KEY, json.dumps({"source": source,
                                                          "started_at": time.time()}))
    return False


async def _contents(reader: StoreReader) -> str:
    """Describe what a run holds ('' when it is empty)."""
    parts = {
        "programs": await reader.count(),
        "metadata keys": len(await reader.all_metadata()),
        "generation events": len(await reader.generation_events()),
        "attempt events": len(await reader.attempt_events()),
    }
    return ", ".join(f"{count:,} {name}" for name, count in parts.items() if count)


async def _copy_programs(
    reader: StoreReader, dst: ProgramStore, batch_size: int, progress: Progress | None,
    resumed: bool,
) -> tuple[int, int]:
    """Write the snapshot's programs missing from ``dst``; return (programs, written).

    Batches are written one after the other, so the destination keeps the source's
    insertion order (ties of timestamps are broken by it) and always holds a prefix of it.
    Only a resumed copy looks for programs already there: a fresh one claimed an empty
    destination (and the primary key refuses any duplicate anyway).
    """
    if progress is not None:
        progress.total = await reader.count()
    seen = copied = 0
    async with aclosing(read_ahead(batches_of(reader, batch_size))) as batches:
        async for batch in batches:
            fresh = await _missing(dst, batch) if resumed else batch
            if fresh:
                await dst.add_many(fresh, count_children=False)
            seen += len(batch)
            copied += len(fresh)
            if progress is not None:
                if copied < seen:
                    progress.note(skipped=f"{seen - copied:,}")
                progress.advance(len(batch))
    return seen, copied


def _weight(program: Program) -> int:
    """Roughly the bytes a decoded program occupies while it is copied."""
    text = len(program.code) + len(program.code_diff or "") + len(program.text_feedback)
    floats = len(program.embedding) + len(program.embedding_pca_2d) + \
        len(program.embedding_pca_3d)
    return 2048 + 2 * text + 40 * floats


async def batches_of(reader: StoreReader, batch_size: int) -> AsyncIterator[list[Program]]:
    """Yield the programs in insertion order, by ``batch_size`` and :data:`BATCH_BYTES`."""
    batch: list[Program] = []
    weight = 0
    async for part in reader.iter_programs(min(batch_size, READ_SIZE)):
        for program in part:
            batch.append(program)
            weight += _weight(program)
            if len(batch) >= batch_size or weight >= BATCH_BYTES:
                yield batch
                batch, weight = [], 0
    if batch:
        yield batch


async def read_ahead(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Yield the items of an async iterator while the next one is being produced."""
    pending = asyncio.ensure_future(anext(items))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(items))
            yield item
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


async def _missing(dst: ProgramStore, batch: Sequence[Program]) -> list[Program]:
    """Return the programs of ``batch`` not yet in ``dst``; those present must be equal."""
    async with dst.read() as reader:
        present = {s.id for s in await reader.summaries([p.id for p in batch])}
        if not present:
            return list(batch)
        stored = {p.id: p for p in await reader.get_many(sorted(present))}
    for program in batch:
        existing = stored.get(program.id)
        if existing is not None and program_digest(existing) != program_digest(program):
            fields = ", ".join(differing_fields(program, existing))
            raise SourceChangedError(
                f"program {program.id} differs ({fields}) from the copy already in "
                f"{dst.url}: the source changed since the interrupted copy began; use "
                "--force to start over")
    return [p for p in batch if p.id not in present]


async def _finish(dst: ProgramStore, tail: _Tail) -> None:
    """Append the missing events and make the metadata store equal the source's, at once."""
    async with dst.write(lock=MARKER_KEY) as writer:
        for event in tail.generation_events[len(await writer.generation_events()):]:
            await writer.record_generation_event(event)
        for attempt in tail.attempt_events[len(await writer.attempt_events()):]:
            await writer.record_attempt_event(attempt)
        await _sync_metadata(writer, tail.metadata)


async def _sync_metadata(writer: StoreWriter, wanted: dict[str, str | None]) -> None:
    current = await writer.all_metadata()
    for key in sorted(current.keys() - wanted.keys()):
        await writer.delete_metadata(key)
    for key, value in wanted.items():
        if key not in current or current[key] != value:
            await writer.set_metadata(key, value)


async def _check_count(dst: ProgramStore, expected: int) -> None:
    async with dst.read() as reader:
        stored = await reader.count()
    if stored != expected:
        raise RefusedError(f"{dst.url} holds {stored:,} programs but the source snapshot had "
                           f"{expected:,}: something else writes to the destination")
