"""What every backend store shares: lifecycle state, checks, group commit, batched inserts.

A backend subclasses :class:`StoreBase` and provides ``open``, ``_disconnect``, ``read``,
``write`` and ``transaction`` (SQLite runs the work whole on its writer thread,
PostgreSQL retries it across lost connections and deadlocks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from genesis.database.backends.group_commit import GroupCommitter
from genesis.database.backends.sql import EncodedProgram, SQLSession, encode_for_insert
from genesis.database.config import DatabaseConfig
from genesis.database.errors import IntegrityError, OperationalError, ReadOnlyError
from genesis.database.program import Program
from genesis.database.url import DatabaseURL

__all__ = ["StoreBase"]

T = TypeVar("T")


class StoreBase(ABC):
    """Lifecycle and insert plumbing shared by the SQLite and PostgreSQL stores."""

    flush_concurrency = 1  # group-commit transactions written at once

    def __init__(self, url: DatabaseURL, config: DatabaseConfig | None, read_only: bool) -> None:
        self.url = url
        self.config = config or DatabaseConfig()
        self.read_only = read_only
        self.upgraded_from: int | None = None
        self._committer: GroupCommitter[EncodedProgram, str] = GroupCommitter(
            self._flush, self.config.batch_max_size, self.flush_concurrency
        )
        self._state = "new"

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<{type(self).__name__} {self.url} {mode} {self._state}>"

    async def __aenter__(self) -> Any:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect, create or upgrade the schema, and get ready to serve."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Release every connection."""

    @abstractmethod
    async def transaction(
        self, work: Callable[[Any], Awaitable[T]], *, lock: str | None = None
    ) -> T:
        """Run ``work(writer)`` in one write transaction and return its result."""

    async def close(self) -> None:
        """Write pending group commits, then release every connection (idempotent)."""
        if self._state == "closed":
            return
        if self._state == "open":
            await self._committer.close()
        self._state = "closed"
        await self._disconnect()

    def _check_open(self) -> None:
        if self._state != "open":
            raise OperationalError(f"the store is {self._state}; call open() first"
                                   if self._state == "new" else "the store is closed")

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.url} is opened read-only; writes are refused")
        self._check_open()

    async def add(self, program: Program, *, count_children: bool = True) -> str:
        """Insert one program through group commit; return the id stored for it.

        If ``metadata["source_job_id"]`` names a job whose program is already stored, nothing
        is inserted and that program's id is returned.
        """
        self._check_writable()
        item = encode_for_insert(program, self.config.max_code_bytes, count_children)
        return await self._committer.submit(item)

    async def _flush(self, items: Sequence[EncodedProgram]) -> list[str | BaseException]:
        """Write one group commit: optimistically as a whole, else item by item.

        The whole batch goes in without looking up known jobs: the unique index on
        ``source_job_id`` refuses a repeated job, and the isolated retry then answers it.
        """
        async def whole(session: SQLSession) -> list[str | BaseException]:
            await session.insert_encoded(items)
            return [values[0] for values, _, _ in items]

        async def isolated(session: SQLSession) -> list[str | BaseException]:
            return await session.insert_isolated(items)

        try:
            return await self.transaction(whole)
        except IntegrityError:
            return await self.transaction(isolated)

    async def add_many(
        self, programs: Sequence[Program], *, count_children: bool = True
    ) -> list[str]:
        """Insert programs in one transaction (all or none) and return their ids."""
        self._check_writable()
        items = [encode_for_insert(p, self.config.max_code_bytes, count_children)
                 for p in programs]

        async def work(session: SQLSession) -> None:
            await session.insert_encoded(items)

        await self.transaction(work)
        return [values[0] for values, _, _ in items]
