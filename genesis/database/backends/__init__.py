"""Storage backends, chosen by URL scheme and imported lazily.

A SQLite user never imports psycopg: the PostgreSQL module is loaded only for a
``postgresql://`` URL.
"""

from __future__ import annotations

from genesis.database.config import DatabaseConfig
from genesis.database.protocol import ProgramStore
from genesis.database.url import DatabaseURL

__all__ = ["create_store"]


def create_store(
    url: DatabaseURL, config: DatabaseConfig | None = None, *, read_only: bool = False
) -> ProgramStore:
    """Return an unopened store for ``url`` (call ``await store.open()`` or ``async with``)."""
    if url.is_sqlite:
        from genesis.database.backends.sqlite import SQLiteStore

        return SQLiteStore(url, config, read_only=read_only)
    from genesis.database.backends.postgres import PostgresStore

    return PostgresStore(url, config, read_only=read_only)
