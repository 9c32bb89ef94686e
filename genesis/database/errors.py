"""The exception tree, and the one place where driver errors are translated into it.

Every error a caller sees is a :class:`GenesisError`. Driver exceptions (``sqlite3``,
``psycopg``, ``psycopg_pool``) are translated by :func:`translate_error` and chained with
``raise ... from``, so the original stays available as ``__cause__``. Messages never contain
a password: they are passed through :meth:`DatabaseURL.redact` when a URL is known.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genesis.database.url import DatabaseURL

__all__ = [
    "ConfigurationError",
    "ConnectionLostError",
    "DatabaseError",
    "DatabaseLockedError",
    "DuplicateJobError",
    "DuplicateProgramError",
    "GenesisError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidProgramError",
    "MaintenanceError",
    "NotAProgramDatabaseError",
    "OperationalError",
    "ReadOnlyError",
    "SchemaError",
    "translate_error",
    "translating",
]


class GenesisError(Exception):
    """Base class of every error raised by Genesis."""


class ConfigurationError(GenesisError, ValueError):
    """A configuration option, URL or environment variable is invalid."""


class InvalidProgramError(GenesisError, ValueError):
    """A program field has a value the database cannot store faithfully."""

    def __init__(self, field: str, problem: str, program_id: object = None) -> None:
        self.field = field
        self.problem = problem
        self.program_id = program_id
        where = f" (program {program_id!r})" if program_id is not None else ""
        super().__init__(f"{field}: {problem}{where}")


class InvalidArgumentError(GenesisError, ValueError):
    """An argument of a call has a value no query can take (the message names it)."""


class MaintenanceError(GenesisError):
    """A program IS stored, but its archive/best/migration maintenance failed.

    Do not add the program again: it is durable under ``program_id``. The maintenance it
    missed is retried with the next maintenance this process runs (or by calling
    ``run_post_add_maintenance`` for it).
    """

    def __init__(self, program_id: str, cause: BaseException) -> None:
        self.program_id = program_id
        super().__init__(f"program {program_id!r} is stored, but its maintenance (archive, best "
                         f"program, migration) failed and will be retried with the next one: "
                         f"{cause}")


class DatabaseError(GenesisError):
    """Base class of errors reported by the database itself."""


class OperationalError(DatabaseError):
    """The database could not be reached or could not run the operation."""


class ConnectionLostError(OperationalError):
    """The connection was lost and the write's outcome could not be confirmed."""


class DatabaseLockedError(OperationalError):
    """The SQLite file stayed locked by another writer longer than the busy timeout."""


class IntegrityError(DatabaseError, sqlite3.IntegrityError):
    """A constraint was violated (also an ``sqlite3.IntegrityError`` for legacy callers)."""


class DuplicateProgramError(IntegrityError):
    """A program with this id is already stored."""


class DuplicateJobError(IntegrityError):
    """A program produced by this ``source_job_id`` is already stored."""


class SchemaError(DatabaseError):
    """The database schema is missing, unknown, or newer than this version supports."""


class NotAProgramDatabaseError(SchemaError):
    """The file or database is not a Genesis/ShinkaEvolve program database."""


class ReadOnlyError(GenesisError, PermissionError):
    """A write was attempted on a database opened with ``read_only=True``."""


def _message(exc: BaseException, url: DatabaseURL | None) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0] if "\n" in text and "DETAIL" not in text else text
    return url.redact(text) if url is not None else text


def _translate_sqlite(exc: sqlite3.Error, url: DatabaseURL | None) -> GenesisError:
    text = _message(exc, url)
    where = f" [{url}]" if url is not None else ""
    if isinstance(exc, sqlite3.IntegrityError):
        if "programs.source_job_id" in text:
            return DuplicateJobError(text)
        if "programs.id" in text:
            return DuplicateProgramError(text)
        return IntegrityError(text)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return DatabaseLockedError(f"{text}{where}: another process held the write lock "
                                   "longer than the busy timeout")
    if "file is not a database" in lowered or "malformed" in lowered:
        return NotAProgramDatabaseError(f"not an SQLite program database{where}: {text}")
    if isinstance(exc, sqlite3.OperationalError):
        return OperationalError(f"{text}{where}")
    return DatabaseError(f"{text}{where}")


def _translate_psycopg(exc: BaseException, url: DatabaseURL | None) -> GenesisError | None:
    psycopg = sys.modules.get("psycopg")
    pool = sys.modules.get("psycopg_pool")
    text = _message(exc, url)
    where = f" [{url}]" if url is not None else ""
    if pool is not None and isinstance(exc, pool.PoolTimeout):
        return OperationalError(f"no connection available from the pool{where}: {text}")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    if isinstance(exc, psycopg.errors.UniqueViolation):
        constraint = getattr(exc.diag, "constraint_name", "") or ""
        if "source_job" in constraint:
            return DuplicateJobError(text)
        if constraint.startswith("programs"):
            return DuplicateProgramError(text)
        return IntegrityError(text)
    if isinstance(exc, psycopg.IntegrityError):
        return IntegrityError(text)
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SchemaError(f"{text}{where}: run `genesis db upgrade` or open the run once")
    if isinstance(exc, psycopg.OperationalError):
        return OperationalError(f"{text}{where}")
    return DatabaseError(f"{text}{where}")


def translate_error(exc: BaseException, url: DatabaseURL | None = None) -> BaseException:
    """Return the Genesis error for a driver exception (or the exception itself)."""
    if isinstance(exc, GenesisError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _translate_sqlite(exc, url)
    translated = _translate_psycopg(exc, url)
    return translated if translated is not None else exc


@contextmanager
def translating(url: DatabaseURL | None = None) -> Iterator[None]:
    """Translate driver exceptions raised in the block into Genesis errors."""
    try:
        yield
    except GenesisError:
        raise
    except Exception as exc:
        mapped = translate_error(exc, url)
        if mapped is exc:
            raise
        raise mapped from exc
