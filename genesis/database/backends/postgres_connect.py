"""Connecting to PostgreSQL: connection settings of a run, and errors naming the server.

Every connection Genesis opens is in autocommit mode (transactions are explicit), prepares
no statement on the server, and carries an ``application_name`` (``genesis/<run>`` unless
the URL sets one), so an administrator can tell a run's connections apart in
``pg_stat_activity``. A failure to connect is an :class:`OperationalError` naming host and
port; the password never appears in it. Where a connection actually went (a URL without
host or database leaves them to libpq's defaults and ``PG*`` variables) is read back from
the connection: :func:`server_of`.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg

from genesis.database.errors import OperationalError, translating
from genesis.database.url import DatabaseURL

__all__ = ["connect", "connection_kwargs", "describe_server", "server_of", "unreachable"]


def connection_kwargs(url: DatabaseURL, timeout: float) -> dict[str, Any]:
    """Return the psycopg connection options of a run (added to ``url.conninfo()``)."""
    options: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": max(1, math.ceil(timeout)),
        # Nothing is prepared on the server (session state): a transaction-pooling
        # PgBouncer may hand each transaction to another server connection. Unprepared
        # statements are also planned for their parameters every time, so a generic plan
        # made while a fresh run was nearly empty never seq-scans it later.
        "prepare_threshold": None,
    }
    if "application_name" not in dict(url.options):
        options["application_name"] = f"genesis/{url.run}"
    return options


def server_of(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """Return the host, port, database and user a connection resolved to."""
    info = conn.info
    return {"host": info.host, "port": info.port, "database": info.dbname, "user": info.user}


def describe_server(server: dict[str, Any]) -> str:
    """Name a server as :func:`server_of` describes it, e.g. ``127.0.0.1:5432, database x``."""
    host, port = server["host"], server["port"]
    where = f"local socket {host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"
    return f"{where}, database {server['database']}, user {server['user']}"


def unreachable(url: DatabaseURL, exc: BaseException) -> OperationalError:
    """Return the error reporting that the server named by ``url`` could not be used."""
    database = url.database or "(default database)"
    return OperationalError(f"cannot connect to PostgreSQL at {url.endpoint} "
                            f"(database {database}): {exc}")


async def connect(url: DatabaseURL, timeout: float = 30.0) -> psycopg.AsyncConnection[Any]:
    """Open one autocommit connection, or raise OperationalError naming host and port."""
    try:
        with translating(url):
            return await psycopg.AsyncConnection.connect(
                url.conninfo(), **connection_kwargs(url, timeout))
    except OperationalError as exc:
        raise unreachable(url, exc) from exc
