"""``genesis db ...``: migrate, copy, verify, back up, restore, list, drop and inspect runs.

A thin layer over :mod:`genesis.ops`: each command parses its arguments, runs one operation
and prints its outcome. URL arguments accept a database URL or a plain SQLite file path and
default to ``DATABASE_URL`` (else ``$GENESIS_DATA_DIR/evolution.db``); URLs are printed
without their password. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from genesis.cli.progress import Progress
from genesis.database.url import DatabaseURL, resolve_url
from genesis.ops import (
    CopyResult,
    RefusedError,
    backup_run,
    copy_run,
    drop_run,
    list_runs,
    restore_run,
    run_stats,
    upgrade_run,
    verify_runs,
)
from genesis.ops.copy import DEFAULT_BATCH_SIZE
from genesis.ops.stores import as_url

__all__ = ["register"]

PG = "postgresql://user@host/db"
URL_HELP = "database URL or SQLite file path (default: DATABASE_URL, else " \
           "$GENESIS_DATA_DIR/evolution.db)"


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    """A progress display on stderr, closed only if the operation got to counting."""
    progress = Progress(label, unit="programs")
    try:
        yield progress
    finally:
        if progress.total is not None:
            progress.close()


def _url(text: str | None) -> DatabaseURL:
    """Return the URL named on the command line, or the configured one."""
    return resolve_url() if text is None else as_url(text)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


# Commands ----------------------------------------------------------------------------------


def upgrade(args: argparse.Namespace) -> int:
    """Bring a run (or a ShinkaEvolve file) to the current schema version."""
    with _progress("index code for search") as progress:
        result = asyncio.run(upgrade_run(_url(args.url), progress=progress))
    if result.changed:
        print(f"{result.url}: schema version {result.before} -> {result.after} (upgraded)")
    else:
        print(f"{result.url}: schema version {result.after} (already current)")
    return 0


def _print_copy(result: CopyResult, verb: str) -> None:
    print(f"{verb} {result.programs:,} programs from {result.source} to {result.destination} "
          f"in {result.seconds:.1f} s ({result.rate:,.0f} programs/s)")
    if result.resumed:
        print(f"resumed an interrupted copy: {result.skipped:,} programs were already there, "
              f"{result.copied:,} written now")
    print(f"archive {result.archive:,}, metadata keys {result.metadata_keys:,}, "
          f"generation events {result.generation_events:,}, "
          f"attempt events {result.attempt_events:,}")


def copy(args: argparse.Namespace) -> int:
    """Copy a whole run from SRC to DST."""
    source, destination = as_url(args.src, "SRC"), as_url(args.dst, "DST")
    with _progress("copy") as progress:
        result = asyncio.run(copy_run(source, destination, batch_size=args.batch_size,
                               force=args.force, progress=progress))
    _print_copy(result, "copied")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Compare two runs; exit 1 when they differ."""
    source, destination = as_url(args.src, "SRC"), as_url(args.dst, "DST")
    with _progress("verify") as progress:
        report = asyncio.run(verify_runs(source, destination, limit=args.limit, progress=progress))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def backup(args: argparse.Namespace) -> int:
    """Write a consistent snapshot of a run into a SQLite file."""
    source = _url(args.url)
    with _progress("backup") as progress:
        result = asyncio.run(backup_run(source, args.file, force=args.force,
                                 batch_size=args.batch_size, progress=progress))
    print(f"backed up {result.programs:,} programs of {result.source} to {result.path} "
          f"({_megabytes(result.size_bytes)}, {result.method}) in {result.seconds:.1f} s")
    return 0


def restore(args: argparse.Namespace) -> int:
    """Copy a backup file into a run."""
    destination = _url(args.url)
    with _progress("restore") as progress:
        result = asyncio.run(restore_run(args.file, destination, force=args.force,
                                  batch_size=args.batch_size, progress=progress))
    _print_copy(result, "restored")
    return 0


def runs(args: argparse.Namespace) -> int:
    """List the runs of a database."""
    url = _url(args.url)
    found = asyncio.run(list_runs(url))
    if not found:
        print(f"no runs at {url}")
        return 0
    width = max(len("run"), *(len(run.name) for run in found))
    print(f"  {'run':<{width}}  {'programs':>10}  {'last activity':<19}  schema")
    for run in found:
        mark = "*" if url.is_sqlite or run.name == url.run else " "
        print(f"{mark} {run.name:<{width}}  {run.programs:>10,}  {_when(run.last_activity):<19}  "
              f"v{run.schema_version}")
    return 0


def _confirm(run: str, programs: int, url: DatabaseURL) -> bool:
    prompt = (f"drop run {run!r} ({programs:,} programs) at {url.endpoint} and everything in "
              "it? type the run name to confirm: ")
    try:
        return input(prompt).strip() == run
    except EOFError:
        raise RefusedError("no confirmation on stdin; pass --yes to drop without asking") \
            from None


def drop(args: argparse.Namespace) -> int:
    """Drop a PostgreSQL run after confirmation."""
    url = _url(args.url)
    if url.is_postgres and not args.yes:
        existing = {run.name: run for run in asyncio.run(list_runs(url))}
        run = existing.get(url.run)
        if run is not None and not _confirm(url.run, run.programs, url):
            print("not dropped")
            return 1
    dropped = asyncio.run(drop_run(url))
    print(f"dropped run {dropped.name!r} ({dropped.programs:,} programs) at {url.endpoint}")
    return 0


def _print_stats(stats: dict[str, Any]) -> None:
    print(f"run            {stats['url']} (schema version {stats['schema_version']})")
    print(f"location       {stats['location']}")
    print(f"programs       {stats['programs']:,} ({stats['correct']:,} correct, "
          f"{stats['incorrect']:,} incorrect)")
    best = stats["best"]
    if best is not None:
        print(f"best           {best['score']!r} program {best['id']} (generation "
              f"{best['generation']}, island {best['island']})")
    print(f"archive        {stats['archive']:,}")
    print(f"generations    {stats['generations']:,} distinct, last iteration "
          f"{stats['last_iteration'] if stats['last_iteration'] is not None else '-'}")
    print(f"last activity  {_when(stats['last_activity'])}")
    print(f"size           {_megabytes(stats['size_bytes'])}")
    if stats["islands"]:
        print("islands        island  programs   correct  best score")
        for island in stats["islands"]:
            best_score = "-" if island["best_score"] is None else repr(island["best_score"])
            print(f"               {island['island']:>6}  {island['programs']:>8,}  "
                  f"{island['correct']:>8,}  {best_score}")
    storage = stats["storage"]
    pool = storage.get("pool")
    if pool is not None:
        print(f"pool           {pool.get('pool_size', 0)} of {pool.get('pool_max', 0)} "
              f"connections, {pool.get('pool_available', 0)} available, "
              f"{pool.get('requests_waiting', 0)} waiting")
        print("indexes        " + "\n               ".join(
            f"{name} {_megabytes(size)}" for name, size in
            sorted(storage["indexes"].items(), key=lambda item: -item[1])))
    if "topology" in storage:
        _print_topology(storage["topology"])


def _print_topology(topology: dict[str, Any]) -> None:
    """Print the primary answering now, its standbys with their lag, and where reads went."""
    print(f"primary        {topology['primary']} (of {topology['hosts']})")
    if not topology["standbys"]:
        print("standbys       none streaming")
    for standby in topology["standbys"]:
        seconds = standby["lag_seconds"]
        print(f"standby        {standby['name']} at {standby['address']}: {standby['state']}, "
              f"{standby['sync']}, {standby['lag_bytes'] or 0:,} bytes behind"
              + ("" if seconds is None else f", replay lag {seconds:.3f} s"))
    if "read_hosts" in topology:
        lag = topology["standby_lag_seconds"]
        print(f"reads          {topology['standby_reads']:,} from {topology['read_hosts']} "
              f"(lag {'-' if lag is None else f'{lag:.3f} s'}, bound "
              f"{topology['max_read_lag']:g} s), {topology['primary_reads']:,} from the primary")


def stats(args: argparse.Namespace) -> int:
    """Print the statistics of a run."""
    result = asyncio.run(run_stats(_url(args.url)))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_stats(result)
    return 0


# Parser ------------------------------------------------------------------------------------

_EXAMPLES = {
    "upgrade": f"""examples:
  genesis db upgrade old_shinka_run.sqlite
  genesis db upgrade '{PG}?run=exp1'
  DATABASE_URL=sqlite:///runs/evolution.db genesis db upgrade""",
    "copy": f"""examples:
  genesis db copy evolution.db '{PG}?run=exp1'     # SQLite -> PostgreSQL
  genesis db copy '{PG}?run=exp1' local_copy.db    # PostgreSQL -> SQLite
  genesis db copy '{PG}?run=exp1' '{PG}?run=exp2'
  genesis db copy a.db b.db --batch-size 200 --force

An interrupted copy (Ctrl-C, kill -9, lost connection) is resumed by running the same
command again: programs already copied are skipped, none is duplicated or missed.
A non-empty DST is refused unless --force, which first removes DST entirely (drops the
PostgreSQL run's schema, or deletes the SQLite file) and then copies into it afresh.""",
    "verify": f"""examples:
  genesis db verify evolution.db '{PG}?run=exp1'
  genesis db verify a.db b.db --limit 50

Exit status: 0 when the runs hold the same data, 1 when they differ, 2 on errors.""",
    "backup": f"""examples:
  genesis db backup evolution.db backups/evolution-monday.db
  genesis db backup '{PG}?run=exp1' exp1.db
  DATABASE_URL='{PG}?run=exp1' genesis db backup exp1.db --force

The backup is one consistent state of the run, taken while writers keep working.""",
    "restore": f"""examples:
  genesis db restore exp1.db '{PG}?run=exp1_restored'
  genesis db restore backups/evolution-monday.db evolution.db --force""",
    "runs": f"""examples:
  genesis db runs '{PG}'
  genesis db runs evolution.db""",
    "drop-run": f"""examples:
  genesis db drop-run '{PG}?run=exp1'
  genesis db drop-run '{PG}?run=exp1' --yes

A SQLite run is its file: delete the file to drop it.""",
    "stats": f"""examples:
  genesis db stats evolution.db
  genesis db stats '{PG}?run=exp1' --json""",
}


def _add(
    commands: argparse._SubParsersAction, name: str, handler: Callable[..., int], summary: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=summary, epilog=_EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _batch_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"programs per transaction (default {DEFAULT_BATCH_SIZE})")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``db`` command group."""
    group = commands.add_parser(
        "db", help=f"manage program databases: {', '.join(_EXAMPLES)}, search, query, "
                   "lineage, export, index",
        description="Manage program databases (SQLite files and PostgreSQL runs).",
        epilog="Run `genesis db COMMAND --help` for the examples of a command.",
    )
    sub = group.add_subparsers(dest="db_command", metavar="COMMAND")

    parser = _add(sub, "upgrade", upgrade,
                  "bring a run or a ShinkaEvolve file to the current schema version")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)

    parser = _add(sub, "copy", copy, "copy a whole run (resumable, consistent, streaming)")
    parser.add_argument("src", metavar="SRC", help="source run: database URL or SQLite path")
    parser.add_argument("dst", metavar="DST", help="destination run (created if missing)")
    _batch_size(parser)
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty DST: drop its run or delete its file first")

    parser = _add(sub, "verify", verify, "compare two runs row by row")
    parser.add_argument("src", metavar="SRC", help="first run")
    parser.add_argument("dst", metavar="DST", help="second run")
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="differences to list (default 20; all are counted)")

    parser = _add(sub, "backup", backup, "save a consistent snapshot of a run as a SQLite file")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)
    parser.add_argument("file", metavar="FILE", help="the backup file to write")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _batch_size(parser)

    parser = _add(sub, "restore", restore, "copy a backup file into a run")
    parser.add_argument("file", metavar="FILE", help="a backup (any program database file)")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty destination: drop its run or delete its file")
    _batch_size(parser)

    parser = _add(sub, "runs", runs, "list runs with their program counts and last activity")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)

    parser = _add(sub, "drop-run", drop, "drop a PostgreSQL run and everything in it")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    parser = _add(sub, "stats", stats, "show the statistics of a run")
    parser.add_argument("url", nargs="?", metavar="URL", help=URL_HELP)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")

    from genesis.cli.db_questions import register as register_questions

    register_questions(sub)
