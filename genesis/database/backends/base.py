"""What every backend store shares: lifecycle state, checks, group commit, batched inserts.

A backend subclasses :class:`StoreBase` and provides ``open``, ``_disconnect``, ``read``,
``write`` and ``transaction`` (SQLite runs the work whole on its writer thread,
PostgreSQL retries it across lost connections and deadlocks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from genesis.database.backends.group_commit import GroupCommitter
from genesis.database.backends.sql import (
    EncodedProgram,
    Query,
    SQLSession,
    Statement,
    encode_for_insert,
)
from genesis.database.config import DatabaseConfig
from genesis.database.errors import IntegrityError, OperationalError, ReadOnlyError
from genesis.database.offers import Offer
from genesis.database.optimistic import Changes, new_token
from genesis.database.program import Program
from genesis.database.protocol import SELECTION_TOKEN, SelectionState, UpgradeProgress
from genesis.database.url import DatabaseURL

__all__ = ["CommitCheck", "FlightBuilder", "StoreBase"]

T = TypeVar("T")
FlightBuilder = Callable[[Any], tuple[list[Statement], list[Query]]]
CommitCheck = Callable[[Any], Awaitable[bool]]
Added = tuple[str, SelectionState | None]  # the id stored, and the state after the commit


class StoreBase(ABC):
    """Lifecycle and insert plumbing shared by the SQLite and PostgreSQL stores."""

    flush_concurrency = 1  # group-commit transactions written at once

    def __init__(self, url: DatabaseURL, config: DatabaseConfig | None, read_only: bool) -> None:
        self.url = url
        self.config = config or DatabaseConfig()
        self.read_only = read_only
        self.upgraded_from: int | None = None
        self.upgrade_progress: UpgradeProgress | None = None  # counts an upgrade's batches
        self._committer: GroupCommitter[EncodedProgram, Added] = GroupCommitter(
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
        self, work: Callable[[Any], Awaitable[T]], *, lock: str | None = None,
        committed: CommitCheck | None = None,
    ) -> T:
        """Run ``work(writer)`` in one write transaction and return its result.

        ``committed(session)`` (an idempotency key: is a row the work wrote there?) decides
        an outcome a lost connection left unknown where nothing else can; a backend whose
        COMMIT cannot lose its reply ignores it.
        """

    @abstractmethod
    async def flight(self, build: FlightBuilder, committed: CommitCheck) -> list[Any]:
        """Run ``build(session)``'s writes and reads as one transaction; return the reads."""

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
        return (await self.add_returning_state(program, count_children=count_children))[0]

    async def add_returning_state(self, program: Program, *, count_children: bool = True
                                  ) -> Added:
        """Like :meth:`add`, also returning the selection state read right after the commit

        (None when the batch had to be written item by item).
        """
        self._check_writable()
        item = encode_for_insert(program, self.config.max_code_bytes, count_children)
        return await self._committer.submit(item)

    async def _flush(self, items: Sequence[EncodedProgram]) -> list[Added | BaseException]:
        """Write one group commit: as a whole in one flight, else item by item.

        The whole batch goes in without looking up known jobs: the unique index on
        ``source_job_id`` refuses a repeated job, and the isolated retry then answers it.
        The flight also reads the selection state after the insert, for the callers.
        """
        def build(session: SQLSession) -> tuple[list[Statement], list[Query]]:
            return session.insert_statements(items), session.state_queries()

        async def committed(session: Any) -> bool:
            return await session.program_exists(items[0][0][0])

        async def isolated(session: SQLSession) -> list[str | BaseException]:
            return await session.insert_isolated(items)

        try:
            state = SQLSession.state_from(await self.flight(build, committed))
            return [(values[0], state) for values, _, _ in items]
        except IntegrityError:
            outcomes = await self.transaction(isolated)
            return [(o, None) if isinstance(o, str) else o for o in outcomes]

    async def apply_changes(self, changes: Changes, guards: Mapping[str, str | None]
                            ) -> tuple[bool, SelectionState]:
        """Apply a maintenance decision if each token key still holds its expected value.

        One flight: the guarded writes, then the tokens and the selection state as they are
        after them. Returns (applied, state).
        """
        token, keys = new_token(), list(guards)

        def build(session: SQLSession) -> tuple[list[Statement], list[Query]]:
            return (session.guarded_statements(changes, guards, token),
                    [session.q_tokens(keys), *session.state_queries()])

        async def committed(session: SQLSession) -> bool:
            return set((await session.fetch(session.q_tokens(keys)))[0]) == {token}

        results = await self.flight(build, committed)
        return set(results[0]) == {token}, SQLSession.state_from(results[1:])

    async def apply_offer(self, offer: Offer, archive_size: int) -> SelectionState:
        """Apply an offer (see :mod:`genesis.database.offers`) in one flight, whatever the
        state; return the selection state after it."""
        token = new_token()

        def build(session: SQLSession) -> tuple[list[Statement], list[Query]]:
            return (session.offer_statements(offer, archive_size, token),
                    session.state_queries())

        async def committed(session: SQLSession) -> bool:
            return (await session.fetch(session.q_tokens([SELECTION_TOKEN])))[0] == [token]

        return SQLSession.state_from(await self.flight(build, committed))

    async def add_many(
        self, programs: Sequence[Program], *, count_children: bool = True
    ) -> list[str]:
        """Insert programs in one transaction (all or none) and return their ids."""
        self._check_writable()
        items = [encode_for_insert(p, self.config.max_code_bytes, count_children)
                 for p in programs]

        async def work(session: SQLSession) -> None:
            await session.insert_encoded(items)

        async def committed(session: Any) -> bool:
            return await session.program_exists(items[0][0][0])

        await self.transaction(work, committed=committed if items else None)
        return [values[0] for values, _, _ in items]
