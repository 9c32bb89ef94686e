"""The ``genesis`` command line: ``demo``, ``db ...``, ``shinka`` and ``view``.

Each command group lives in its own module and registers its sub-commands through
``register(subparsers)``; a command returns an exit code. No command ends in a traceback:

* a ``GenesisError`` (bad URL, unreachable server, missing file, not a program database)
  is one line on stderr and exit code 2; the password of a URL is never printed;
* any other exception is one line on stderr and exit code 70 (``EX_SOFTWARE``: a bug);
  ``-v`` or ``GENESIS_DEBUG=1`` prints its traceback too;
* a closed output pipe (``genesis db stats | head -1``) ends the command quietly with exit
  code 141, the status of a Unix tool stopped by SIGPIPE, so ``set -o pipefail`` scripts
  can still tell that the output was cut short;
* Ctrl-C exits with 130.

``-v``/``--verbose`` is accepted before or after any sub-command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from genesis import __version__
from genesis.database.errors import GenesisError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "GenesisParser",
    "build_parser",
    "main",
]

EXIT_ERROR = 2
EXIT_INTERNAL = 70
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130


class GenesisParser(argparse.ArgumentParser):
    """An argument parser that takes ``-v`` anywhere and names the commands on a mistake."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log at INFO level and show the traceback of a failure")

    def _commands(self) -> argparse._SubParsersAction | None:
        """The sub-command action of this parser, if it has one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
        return None

    def command_names(self) -> list[str]:
        """The names of this parser's sub-commands, without their aliases."""
        action = self._commands()
        if action is None:
            return []
        names: dict[argparse.ArgumentParser, str] = {}
        for name, parser in action.choices.items():
            names.setdefault(parser, name)
        return list(names.values())

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Parse like argparse, but refuse unknown arguments and a missing sub-command here.

        Checked by the innermost parser, so that ``genesis db --bogus`` names the unknown
        option and lists the ``db`` commands instead of asking for a command.
        """
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self._refuse(f"unrecognized arguments: {' '.join(extras)}")
        action = self._commands()
        if action is not None and getattr(namespace, action.dest, None) is None:
            self._refuse("a command is required")
        return namespace, extras

    def _refuse(self, message: str) -> NoReturn:
        """Exit with the usage and ``message``, followed by the commands to choose from."""
        names = self.command_names()
        self.error(f"{message} (commands: {', '.join(names)})" if names else message)


def build_parser() -> GenesisParser:
    """Return the parser of every ``genesis`` command."""
    from genesis.cli import db, demo, shinka, view

    parser = GenesisParser(
        prog="genesis",
        description="Genesis program database: run the demo evolution, manage databases, "
                    "view runs.",
    )
    parser.add_argument("--version", action="version", version=f"genesis {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.register(commands)
    db.register(commands)
    shinka.register(commands)
    view.register(commands)
    return parser


def _quiet_stdout() -> None:
    """Point stdout and stderr at /dev/null, so that flushing at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # not a real file: nothing to point
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``genesis`` command and return its exit code."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "verbose", False) or os.environ.get("GENESIS_DEBUG", "") not in ("", "0")
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except GenesisError as exc:
        print(f"genesis: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("genesis: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (-v or GENESIS_DEBUG=1 shows the traceback)"
        text = (str(exc).strip().splitlines() or [""])[0]
        print(f"genesis: internal error: {type(exc).__name__}: {text}{hint}", file=sys.stderr)
        return EXIT_INTERNAL
