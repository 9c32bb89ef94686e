"""What each page shows, gathered once for both the HTML pages and the JSON API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from genesis.database.program import Program
from genesis.view.diffs import Line, Pair, metric_rows, side_by_side, stored_diff, unified
from genesis.view.queries import IslandRow, ProgramRow
from genesis.view.runs import RunView
from genesis.view.scores import Plot

__all__ = ["Comparison", "Lineage", "Overview", "ProgramDetail", "compare", "lineage",
           "overview", "program_detail", "program_dict"]

PAGE = 50  # programs per page of the programs list
CHILDREN = 36  # children per page on the program and lineage pages
MAX_DEPTH = 2000  # ancestors one lineage request reads at most


def program_dict(program: Program) -> dict[str, Any]:
    """Return a program as JSON-ready data, without its (large) embedding vector."""
    data = program.to_dict()
    data.pop("embedding", None)
    return data


def _rows(rows: list[ProgramRow]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in rows]


@dataclass(frozen=True)
class Overview:
    """The run page: counters, best, islands, archive, the newest programs, plot, rate."""

    run: str
    programs: int
    correct: int
    best: ProgramRow | None
    islands: list[IslandRow]
    top: list[ProgramRow]
    archive: list[ProgramRow]
    recent: list[ProgramRow]
    older: int | None  # cursor of the next page (``before``), None on the last page
    last_iteration: int | None
    rate: list[int]  # programs per minute over the last ten minutes, oldest first
    plot: Plot
    seq: int  # newest program seen

    def as_dict(self) -> dict[str, Any]:
        """Return the overview as JSON-ready data (the plot has its own endpoint)."""
        return {"run": self.run, "programs": self.programs, "correct": self.correct,
                "best": self.best.as_dict() if self.best else None,
                "islands": [vars(i) for i in self.islands], "top": _rows(self.top),
                "archive": _rows(self.archive), "generations": list(self.plot.generations),
                "last_iteration": self.last_iteration, "rate_per_minute": self.rate,
                "seq": self.seq}


async def overview(run: RunView, before: int | None = None, limit: int = PAGE) -> Overview:
    """Gather the run page in one read-only snapshot."""
    await run.refresh()
    async with run.queries(snapshot=True) as q:
        islands = await q.islands()
        top = await q.top(10)
        archive = await q.archive()
        recent = await q.programs_before(before, limit + 1)
        best_id = await q.best_id()
        best = (await q.by_ids([best_id]) or [None])[0] if best_id else None
        meta = await q.metadata(["last_iteration"])
    last = meta.get("last_iteration")
    return Overview(run.name, sum(i.programs for i in islands), sum(i.correct for i in islands),
                    best or (top[0] if top else None), islands, top, archive, recent[:limit],
                    recent[limit - 1].seq if 0 < limit < len(recent) else None,
                    int(float(last)) if last else None, run.series.rate(time.time()),
                    run.series.plot(), run.series.last_seq)


@dataclass(frozen=True)
class ProgramDetail:
    """The program page: the program, its diff against its parent, relatives, inspirations."""

    program: Program
    seq: int | None
    parent: ProgramRow | None
    diff: list[Line]
    diff_source: str  # "parent", "stored" or "none"
    children: list[ProgramRow]
    more_children: int | None  # cursor (``children_after``) of the next page
    archive_inspirations: list[ProgramRow]
    top_k_inspirations: list[ProgramRow]

    def as_dict(self) -> dict[str, Any]:
        """Return the detail as JSON-ready data."""
        return {"program": program_dict(self.program), "seq": self.seq,
                "parent": self.parent.as_dict() if self.parent else None,
                "diff": "\n".join(line.text for line in self.diff),
                "diff_source": self.diff_source, "children": _rows(self.children),
                "more_children": self.more_children,
                "archive_inspirations": _rows(self.archive_inspirations),
                "top_k_inspirations": _rows(self.top_k_inspirations)}


async def program_detail(run: RunView, program_id: str,
                         children_after: int = 0) -> ProgramDetail | None:
    """Gather the program page (None if there is no such program)."""
    async with run.queries(snapshot=True) as q:
        program = await q.session.get(program_id)
        if program is None:
            return None
        parent = await q.session.get(program.parent_id) if program.parent_id else None
        children = await q.children(program_id, children_after, CHILDREN + 1)
        ids = [*program.archive_inspiration_ids, *program.top_k_inspiration_ids]
        related = {r.id: r for r in await q.by_ids([*ids, program_id, *(
            [parent.id] if parent else [])])}
    if parent is not None:
        diff, source = unified(parent.code, program.code, f"parent {parent.id}",
                               f"program {program.id}"), "parent"
    elif program.code_diff:
        diff, source = stored_diff(program.code_diff), "stored"
    else:
        diff, source = [], "none"
    own = related.get(program_id)
    return ProgramDetail(
        program, own.seq if own else None, related.get(parent.id) if parent else None, diff,
        source, children[:CHILDREN],
        children[CHILDREN - 1].seq if len(children) > CHILDREN else None,
        [related[i] for i in program.archive_inspiration_ids if i in related],
        [related[i] for i in program.top_k_inspiration_ids if i in related])


@dataclass(frozen=True)
class Lineage:
    """The lineage page: a program's ancestry (oldest first, the program last), its children."""

    chain: list[ProgramRow]
    children: list[ProgramRow]
    more_children: int | None
    truncated: bool  # older ancestors exist beyond ``depth``

    @property
    def focus(self) -> ProgramRow:
        """The program whose lineage this is."""
        return self.chain[-1]

    def as_dict(self) -> dict[str, Any]:
        """Return the lineage as JSON-ready data."""
        return {"focus": self.focus.as_dict(), "ancestors": _rows(self.chain[:-1]),
                "children": _rows(self.children), "more_children": self.more_children,
                "truncated": self.truncated}


async def lineage(run: RunView, program_id: str | None, depth: int = 200,
                  children_after: int = 0) -> Lineage | None:
    """Gather a program's lineage, by default the best program's (None if there is none)."""
    depth = max(1, min(depth, MAX_DEPTH))
    async with run.queries(snapshot=True) as q:
        if program_id is None:
            program_id = await q.best_id() or next((r.id for r in await q.top(1)), None)
            if program_id is None:
                return None
        chain = await q.lineage(program_id, depth)
        if not chain:
            return None
        children = await q.children(program_id, children_after, CHILDREN + 1)
    return Lineage(chain, children[:CHILDREN],
                   children[CHILDREN - 1].seq if len(children) > CHILDREN else None,
                   len(chain) == depth + 1 and chain[0].parent_id is not None)


@dataclass(frozen=True)
class Comparison:
    """Two programs side by side: their code, fields and metrics."""

    left: Program
    right: Program
    code: list[Pair]
    fields: list[tuple[str, Any, Any, Any]]
    public: list[tuple[str, Any, Any, Any]]
    private: list[tuple[str, Any, Any, Any]]

    def as_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-ready data."""
        def table(rows: list[tuple[str, Any, Any, Any]]) -> list[dict[str, Any]]:
            return [{"name": n, "left": a, "right": b, "delta": d} for n, a, b, d in rows]

        return {"left": program_dict(self.left), "right": program_dict(self.right),
                "diff": "\n".join(line.text for line in unified(
                    self.left.code, self.right.code, self.left.id, self.right.id)),
                "fields": table(self.fields), "public_metrics": table(self.public),
                "private_metrics": table(self.private)}


_FIELDS = ("combined_score", "correct", "generation", "island_idx", "complexity",
           "children_count", "language")


async def compare(run: RunView, left_id: str, right_id: str) -> Comparison | None:
    """Gather two programs for the compare page (None if either is missing)."""
    async with run.queries(snapshot=True) as q:
        left, right = await q.session.get(left_id), await q.session.get(right_id)
    if left is None or right is None:
        return None
    fields = metric_rows({f: getattr(left, f) for f in _FIELDS},
                         {f: getattr(right, f) for f in _FIELDS})
    return Comparison(left, right, side_by_side(left.code, right.code),
                      sorted(fields, key=lambda row: _FIELDS.index(row[0])),
                      metric_rows(left.public_metrics, right.public_metrics),
                      metric_rows(left.private_metrics, right.private_metrics))
