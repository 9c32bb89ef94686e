"""Comparing two runs row by row: ``genesis db verify``.

Each run is read in one snapshot. Programs are compared by content hash
(:func:`genesis.ops.digest.program_digest`, the same whichever backend stores them), which
covers every field including archive membership; then the archive size, the metadata store,
both event logs and the island counters. The report lists the first ``limit`` differences
(for a program: the names of the fields that differ) and counts them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genesis.database.protocol import StoreReader
from genesis.database.url import DatabaseURL
from genesis.ops.digest import differing_fields, program_digest, record_json
from genesis.ops.stores import as_url, open_source

if TYPE_CHECKING:
    from genesis.cli.progress import Progress

__all__ = ["Difference", "VerifyReport", "verify_runs"]


@dataclass(frozen=True)
class Difference:
    """One difference between the runs: what differs, where, and how."""

    what: str
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what} {self.key}: {self.detail}"


@dataclass
class VerifyReport:
    """The outcome of a comparison: sizes, and the first differences with their total."""

    source: str
    destination: str
    limit: int
    programs: tuple[int, int] = (0, 0)
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    total: int = 0

    @property
    def ok(self) -> bool:
        """True when the runs hold the same data."""
        return self.total == 0

    def add(self, what: str, key: str, detail: str) -> None:
        """Count a difference, keeping it if fewer than ``limit`` are kept."""
        self.total += 1
        if len(self.differences) < self.limit:
            self.differences.append(Difference(what, key, detail))

    def lines(self) -> list[str]:
        """Return the report as readable lines."""
        head = [f"SRC {self.source}: {self.programs[0]:,} programs",
                f"DST {self.destination}: {self.programs[1]:,} programs"]
        if self.ok:
            return [*head, f"identical: {self.compared:,} programs compared by content hash, "
                           "archive, metadata store, event logs and island counters"]
        shown = [f"  {difference}" for difference in self.differences]
        if self.total > len(self.differences):
            shown.append(f"  ... and {self.total - len(self.differences):,} more")
        return [*head, f"DIFFERENT: {self.total:,} differences", *shown]


def _clip(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


async def verify_runs(
    source: DatabaseURL | str,
    destination: DatabaseURL | str,
    *,
    limit: int = 20,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare two runs row by row and return the report of their differences."""
    src_url, dst_url = as_url(source, "SRC"), as_url(destination, "DST")
    report = VerifyReport(str(src_url), str(dst_url), limit)
    async with open_source(src_url) as src, open_source(dst_url) as dst, \
            src.read(snapshot=True) as first, dst.read(snapshot=True) as second:
        report.programs = (await first.count(), await second.count())
        if progress is not None:
            progress.total = report.programs[0]
        await _compare_programs(first, second, report, batch_size, progress)
        await _compare_totals(first, second, report)
    return report


async def _compare_programs(first: StoreReader, second: StoreReader, report: VerifyReport,
                            batch_size: int, progress: Progress | None) -> None:
    async for batch in first.iter_programs(batch_size):
        others = {p.id: p for p in await second.get_many([p.id for p in batch])}
        for program in batch:
            other = others.get(program.id)
            if other is None:
                report.add("program", program.id, "only in SRC")
                continue
            report.compared += 1
            if program_digest(program) != program_digest(other):
                fields = ", ".join(differing_fields(program, other))
                report.add("program", program.id, f"fields differ: {fields}")
        if progress is not None:
            progress.advance(len(batch))
    if report.compared < report.programs[1]:
        async for batch in second.iter_programs(batch_size):
            known = {s.id for s in await first.summaries([p.id for p in batch])}
            for program in batch:
                if program.id not in known:
                    report.add("program", program.id, "only in DST")


async def _compare_totals(first: StoreReader, second: StoreReader, report: VerifyReport) -> None:
    if report.programs[0] != report.programs[1]:
        report.add("programs", "count", f"{report.programs[0]:,} vs {report.programs[1]:,}")
    archives = await first.archive_count(), await second.archive_count()
    if archives[0] != archives[1]:
        report.add("archive", "size", f"{archives[0]:,} vs {archives[1]:,}")
    mine, theirs = await first.all_metadata(), await second.all_metadata()
    for key in sorted(mine.keys() | theirs.keys()):
        if key not in theirs:
            report.add("metadata", repr(key), "only in SRC")
        elif key not in mine:
            report.add("metadata", repr(key), "only in DST")
        elif mine[key] != theirs[key]:
            values = _clip(repr(mine[key])), _clip(repr(theirs[key]))
            report.add("metadata", repr(key), f"{values[0]} vs {values[1]}")
    _compare_rows(report, "generation_event_log", await first.generation_events(),
                  await second.generation_events())
    _compare_rows(report, "attempt_log", await first.attempt_events(),
                  await second.attempt_events())
    _compare_rows(report, "islands", await first.island_stats(), await second.island_stats())


def _compare_rows(report: VerifyReport, table: str, mine: Sequence[object],
                  theirs: Sequence[object]) -> None:
    """Report the first row at which two ordered tables differ, and their sizes."""
    for index, (one, other) in enumerate(zip(mine, theirs, strict=False)):
        texts = record_json(one), record_json(other)
        if texts[0] != texts[1]:
            report.add(table, f"row {index + 1}", f"{_clip(texts[0])} vs {_clip(texts[1])}")
            return
    if len(mine) != len(theirs):
        report.add(table, "rows", f"{len(mine):,} vs {len(theirs):,}")
