"""``genesis shinka -- COMMAND``: run ShinkaEvolve, unchanged, on the Genesis database."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from genesis.database.errors import ConfigurationError
from genesis.database.url import DatabaseURL, validate_run_name

__all__ = ["register", "run_shinka"]

EXAMPLES = """\
examples:
  genesis shinka -- python run_evo.py                  # SQLite files in the results folder
  DATABASE_URL=postgresql://genesis@db/genesis genesis shinka -- shinka_launch variant=...
  genesis shinka --url postgresql://genesis@db/genesis --run circle_7 -- python run_evo.py

ShinkaEvolve keeps every other part of itself; only `shinka.database` becomes Genesis
(in the command and in every Python process it starts). With DATABASE_URL set, the run is
named after the results folder unless --run or GENESIS_RUN names it.
"""
BOOT = Path(__file__).resolve().parents[1] / "compat" / "shinka" / "boot"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``shinka`` command."""
    parser = commands.add_parser(
        "shinka", help="run a ShinkaEvolve command with Genesis as its database",
        description="Run COMMAND (any command line starting ShinkaEvolve) so that "
                    "ShinkaEvolve's `shinka.database` is Genesis: its runner, novelty judge "
                    "and prompt evolution then store in SQLite or PostgreSQL through Genesis.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="database URL for the command (sets DATABASE_URL)")
    parser.add_argument("--run", help="run name on PostgreSQL (sets GENESIS_RUN)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                        help="the command to run, after --")
    parser.set_defaults(handler=run_shinka)


def shinka_environment(url: str | None, run: str | None,
                       environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment that makes ShinkaEvolve's processes use Genesis."""
    env = dict(os.environ if environ is None else environ)
    if url is not None:
        DatabaseURL.parse(url, "--url")
        env["DATABASE_URL"] = url
    if run is not None:
        env["GENESIS_RUN"] = validate_run_name(run, "--run")
    paths = [str(BOOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_shinka(args: argparse.Namespace) -> int:
    """Replace this process with COMMAND under the Genesis hook."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigurationError("genesis shinka needs a command after --, for example "
                                 "`genesis shinka -- python run_evo.py`")
    env = shinka_environment(args.url, args.run)
    if shutil.which(command[0], path=env.get("PATH")) is None and not Path(command[0]).exists():
        print(f"genesis: error: command not found: {command[0]}", file=sys.stderr)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
    return 0  # not reached: execvpe replaces the process
