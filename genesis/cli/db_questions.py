"""``genesis db search | query | lineage | export | index``: ask a run questions from the shell.

Each question opens the run read-only (nothing in it changes), prints a readable table or,
with ``--json``, JSON on stdout; export streams rows to a file or stdout with progress on
stderr. ``index`` lists, creates or drops the JSON path indexes that make filters fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from genesis.cli.db import PG, URL_HELP, _url
from genesis.cli.progress import Progress
from genesis.database.engine import AsyncProgramDatabase
from genesis.ops.export import FORMATS, export_run
from genesis.ops.stores import open_existing, open_source

__all__ = ["register"]

_EXAMPLES = {
    "search": f"""examples:
  genesis db search evolution.db scipy.optimize.minimize
  genesis db search evolution.db "snake_case_names" --correct --limit 5
  genesis db search '{PG}?run=exp1' minimize --island 2 --json

Every word of the query must occur in the code (identifiers are cut at dots and
underscores); programs holding the words as one phrase rank first.""",
    "query": f"""examples:
  genesis db query evolution.db 'correct and public_metrics.sum_radii > 2.4'
  genesis db query evolution.db 'metadata.patch_type == "diff"' --order-by 'combined_score desc'
  genesis db query '{PG}?run=exp1' 'generation < 3 or not correct' \\
      --columns id,generation,public_metrics.sum_radii --limit 10 --json

The filter language: fields (columns such as correct, generation, island_idx,
combined_score, parent_id, and JSON paths such as public_metrics.sum_radii or
metadata.patch_type), == != < <= > >= against numbers, "strings", true, false, null,
joined with and, or, not and parentheses.""",
    "lineage": f"""examples:
  genesis db lineage evolution.db 3f2a-best-id               # ancestors, nearest first
  genesis db lineage evolution.db 3f2a-best-id --down --max-depth 2
  genesis db lineage '{PG}?run=exp1' ID --common-with OTHER_ID --json""",
    "export": f"""examples:
  genesis db export evolution.db --format csv > programs.csv
  genesis db export evolution.db --format parquet --output programs.parquet
  genesis db export '{PG}?run=exp1' --format jsonl --where 'correct' --output best.jsonl

Every column is exported, with each key of public_metrics, private_metrics and metadata
as a column of its own (public_metrics.sum_radii); --columns chooses, --embeddings adds
the embedding. Parquet needs pyarrow: pip install "genesis-evolve[frames]".""",
    "index": f"""examples:
  genesis db index evolution.db                              # list the indexed paths
  genesis db index evolution.db public_metrics.sum_radii metadata.patch_type
  genesis db index '{PG}?run=exp1' public_metrics.sum_radii --drop

A filter comparing an indexed JSON path (genesis db query, export --where, the view's
filter box) reads the index instead of every program: on SQLite every comparison but !=,
on PostgreSQL ranges on numbers (its GIN indexes already serve ==). On PostgreSQL the
index is built with CREATE INDEX CONCURRENTLY, so running workers are not held up.""",
}


def _ask(url: str | None, question: Callable[[AsyncProgramDatabase], Coroutine[Any, Any, Any]]
         ) -> Any:
    """Open the run read-only and return the answer of ``question(db)``."""
    async def run() -> Any:
        async with open_source(_url(url)) as store:
            return await question(AsyncProgramDatabase(store=store))

    return asyncio.run(run())


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def search(args: argparse.Namespace) -> int:
    """Print the programs whose code matches the query."""
    correct = True if args.correct else (False if args.incorrect else None)
    hits = _ask(args.url, lambda db: db.search_code(args.query, args.limit, args.island,
                                                    correct))
    if args.json:
        print(json.dumps([asdict(hit) for hit in hits], indent=2))
        return 0
    for hit in hits:
        mark = "correct" if hit.correct else "incorrect"
        print(f"{hit.rank:>3}. {hit.id}  gen {hit.generation}  island {hit.island_idx}  "
              f"score {_score(hit.combined_score)}  {mark}\n     {hit.snippet}")
    if not hits:
        print("no program matches", file=sys.stderr)
    return 0


def query(args: argparse.Namespace) -> int:
    """Print the fields of the programs matching a filter."""
    rows = _ask(args.url, lambda db: db.query(args.where, args.order_by, args.limit,
                                              args.columns))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if rows:
        names = list(rows[0])
        print("\t".join(names))
        for row in rows:
            print("\t".join("" if row[n] is None else
                            json.dumps(row[n]) if isinstance(row[n], dict | list) else
                            str(row[n]) for n in names))
    else:
        print("no program matches", file=sys.stderr)
    return 0


def _brief(depth: int, program: Any) -> dict[str, Any]:
    return {"depth": depth, "id": program.id, "parent_id": program.parent_id,
            "generation": program.generation, "island_idx": program.island_idx,
            "combined_score": program.combined_score, "correct": program.correct}


def lineage(args: argparse.Namespace) -> int:
    """Print a program's ancestors or descendants, or its common ancestor with another."""
    if args.common_with is not None:
        found = _ask(args.url, lambda db: db.common_ancestor(args.id, args.common_with))
        brief = None if found is None else _brief(0, found)
        if args.json:
            print(json.dumps(brief, indent=2))
        else:
            print("no common ancestor" if brief is None else
                  f"{brief['id']}  gen {brief['generation']}  "
                  f"score {_score(brief['combined_score'])}")
        return 0
    direction = "down" if args.down else "up"
    steps = _ask(args.url, lambda db: db.lineage(args.id, direction, args.max_depth))
    rows = [asdict(step) for step in steps]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['depth']:>5}  {row['id']}  gen {row['generation']}  island "
              f"{row['island_idx']}  score {_score(row['combined_score'])}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Stream the run's programs to a file (or stdout) as CSV, JSON lines or Parquet."""
    output = args.output or sys.stdout
    with Progress("export", unit="programs") as progress:
        result = asyncio.run(export_run(_url(args.url), output, args.format, where=args.where,
                                        columns=args.columns, embeddings=args.embeddings,
                                        progress=progress))
    print(f"exported {result.rows:,} programs to {result.path} in {result.seconds:.1f} s "
          f"({result.rate:,.0f} programs/s)", file=sys.stderr)
    return 0


def index(args: argparse.Namespace) -> int:
    """List the run's JSON path indexes, or create or drop the named ones."""
    async def run() -> tuple[list[bool], list[str]]:
        async with open_existing(_url(args.url)) as store:
            db = AsyncProgramDatabase(store=store)
            change = db.drop_index if args.drop else db.create_index
            changed = [await change(field) for field in args.fields]
            return changed, await db.indexes()

    changed, indexed = asyncio.run(run())
    verb, unchanged = ("dropped", "was not indexed") if args.drop else ("indexed",
                                                                        "already indexed")
    for field, done in zip(args.fields, changed, strict=True):
        print(f"{field}: {verb if done else unchanged}", file=sys.stderr)
    if args.json:
        print(json.dumps(indexed))
    else:
        print("\n".join(indexed) if indexed else "no indexed JSON path")
    return 0


def _parser(sub: argparse._SubParsersAction, name: str, handler: Callable[..., int],
            summary: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary, description=summary, epilog=_EXAMPLES[name],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)
    return parser


def register(sub: argparse._SubParsersAction) -> None:
    """Add search, query, lineage, export and index to the ``db`` command group."""
    parser = _parser(sub, "search", search, "search the programs' code, most relevant first")
    parser.add_argument("query", metavar="QUERY", help="words or identifiers to find")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="hits (default 20)")
    parser.add_argument("--island", type=int, metavar="I", help="only this island")
    found = parser.add_mutually_exclusive_group()
    found.add_argument("--correct", action="store_true", help="only correct programs")
    found.add_argument("--incorrect", action="store_true", help="only incorrect programs")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = _parser(sub, "query", query, "list programs matching a filter expression")
    parser.add_argument("where", metavar="WHERE", nargs="?", help="the filter (default: all)")
    parser.add_argument("--order-by", metavar="KEYS", help="e.g. 'combined_score desc, id'")
    parser.add_argument("--columns", metavar="FIELDS",
                        help="comma-separated fields (default id,generation,island_idx,"
                             "combined_score,correct)")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="rows (default 100)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = _parser(sub, "lineage", lineage, "walk a program's ancestors or descendants")
    parser.add_argument("id", metavar="ID", help="the program")
    parser.add_argument("--down", action="store_true", help="descendants instead of ancestors")
    parser.add_argument("--max-depth", type=int, metavar="N", help="generations to walk")
    parser.add_argument("--common-with", metavar="OTHER",
                        help="print the nearest common ancestor of ID and OTHER instead")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = _parser(sub, "export", export, "stream a run's programs to CSV, JSONL or Parquet")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="default csv")
    parser.add_argument("--output", "-o", metavar="FILE", help="file to write (default stdout)")
    parser.add_argument("--where", metavar="WHERE", help="export only matching programs")
    parser.add_argument("--columns", metavar="FIELDS", help="comma-separated fields")
    parser.add_argument("--embeddings", action="store_true", help="add the embedding column")

    parser = _parser(sub, "index", index, "list, create or drop indexes on JSON paths")
    parser.add_argument("fields", metavar="FIELD", nargs="*",
                        help="JSON paths to index, such as public_metrics.sum_radii")
    parser.add_argument("--drop", action="store_true", help="drop the FIELDs' indexes instead")
    parser.add_argument("--json", action="store_true", help="print the indexed paths as JSON")
