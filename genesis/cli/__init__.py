"""The ``genesis`` command line: ``genesis demo``, ``genesis db ...`` and ``genesis view``.

Each command group lives in its own module and registers its sub-commands through
``register(subparsers)``; a command returns an exit code. A ``GenesisError`` (bad URL,
unreachable server, missing file, not a program database) becomes a one-line message on
stderr and exit code 2; the password of a URL is never printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from genesis import __version__
from genesis.database.errors import GenesisError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ``genesis`` command."""
    from genesis.cli import db, demo, shinka, view

    parser = argparse.ArgumentParser(
        prog="genesis",
        description="Genesis program database: run the demo evolution, manage databases, "
                    "view runs.",
    )
    parser.add_argument("--version", action="version", version=f"genesis {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(commands)
    db.register(commands)
    shinka.register(commands)
    view.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``genesis`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except GenesisError as exc:
        print(f"genesis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genesis: interrupted", file=sys.stderr)
        return 130
