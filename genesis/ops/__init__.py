"""Operations on program databases: upgrade, copy, verify, backup/restore, runs, stats.

Each operation is an async function usable from Python as well as through the ``genesis db``
command line (:mod:`genesis.cli.db`, a thin layer over this package)::

    from genesis.ops import copy_run, verify_runs

    result = await copy_run("sqlite:///run.db", "postgresql://host/db?run=exp1")
    report = await verify_runs("sqlite:///run.db", "postgresql://host/db?run=exp1")
    assert report.ok

URLs may be given as :class:`~genesis.database.DatabaseURL`, as text, or as plain paths of
SQLite files. Sources must exist and are never created; destinations are created.
"""

from genesis.ops.backup import BackupResult, backup_run, restore_run
from genesis.ops.copy import MARKER_KEY, CopyResult, copy_run
from genesis.ops.errors import RefusedError, SourceChangedError
from genesis.ops.runs import RunSummary, drop_run, list_runs
from genesis.ops.stats import run_stats
from genesis.ops.upgrade import UpgradeResult, upgrade_run
from genesis.ops.verify import Difference, VerifyReport, verify_runs

__all__ = [
    "MARKER_KEY",
    "BackupResult",
    "CopyResult",
    "Difference",
    "RefusedError",
    "RunSummary",
    "SourceChangedError",
    "UpgradeResult",
    "VerifyReport",
    "backup_run",
    "copy_run",
    "drop_run",
    "list_runs",
    "restore_run",
    "run_stats",
    "upgrade_run",
    "verify_runs",
]
