"""Reads from hot standbys: which server answers a read-only query of a run.

A URL with ``read_hosts`` gives the store a second pool on those standbys. A read goes to a
standby when it is up, trails the primary by at most ``max_read_lag`` seconds, and has
replayed every transaction this store committed (read-your-writes: the store remembers the
primary's WAL position after each of its commits). Otherwise the read goes to the primary.
The lag is ``now() - pg_last_xact_replay_timestamp()`` while the standby has received WAL it
has not replayed yet, and 0 once it has replayed all it received. A standby's state is
measured again when older than :data:`RECHECK` seconds or when a write of this store is
newer than it. A standby that cannot be reached is left alone for :data:`DOWN_FOR` seconds,
twice as long after each failed try (up to :data:`MAX_DOWN_FOR`), one read trying while the
others go to the primary; one whose connections are all busy for a second leaves that read
to the primary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from genesis.database.url import DatabaseURL

__all__ = ["DOWN_FOR", "LAG_SECONDS", "MAX_DOWN_FOR", "RECHECK", "StandbyReads", "lsn_number"]

logger = logging.getLogger(__name__)
RECHECK = 0.2  # seconds a standby's measured state is reused
DOWN_FOR = 2.0  # seconds an unreachable standby is not tried (doubling while it stays down)
MAX_DOWN_FOR = 30.0
_BORROW_TIMEOUT = 1.0  # seconds to wait for a standby connection before using the primary
# Seconds a standby trails: 0 once it has replayed all it received.
LAG_SECONDS = (
    "(CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) "
    "END)::float8"
)
STANDBY_STATE = ("SELECT pg_is_in_recovery(), "
                 f"COALESCE(pg_last_wal_replay_lsn()::text, '0/0'), {LAG_SECONDS}")


def lsn_number(text: str) -> int:
    """Turn a WAL position ``'16/B374D848'`` into a comparable integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class _Measure:
    at: float
    replayed: int
    lag: float
    standby: bool


class StandbyReads:
    """Routes the reads of one store between its standbys and its primary."""

    def __init__(self, url: DatabaseURL, pool: AsyncConnectionPool[Any]) -> None:
        self.url = url
        self.pool = pool
        self.written = 0  # WAL position after this store's latest commit
        self.standby_reads = self.primary_reads = 0
        self._measured: _Measure | None = None
        self._down_until = 0.0
        self._down_for = 0.0  # since the last failure: doubles while the standby stays down
        self._probing = False  # a read is finding out whether the standby is back
        self._errors = 0  # the pool's connection errors seen so far

    def wrote(self, lsn: str | None) -> None:
        """Remember the primary's WAL position after a commit of this store."""
        if lsn:
            self.written = max(self.written, lsn_number(lsn))

    def _usable(self, measure: _Measure) -> bool:
        return measure.standby and measure.lag <= self.url.max_read_lag \
            and measure.replayed >= self.written

    async def _measure(self, conn: psycopg.AsyncConnection[Any]) -> _Measure:
        cursor = await conn.execute(STANDBY_STATE)
        standby, replayed, lag = await cursor.fetchone() or (False, "0/0", 0.0)
        self._measured = _Measure(time.monotonic(), lsn_number(replayed), lag, standby)
        return self._measured

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
        """Yield a standby connection fit for this store's next read, or None (use the primary)."""
        conn = await self._borrow()
        if conn is None:
            self.primary_reads += 1
            yield None
            return
        try:
            self.standby_reads += 1
            yield conn
        finally:
            await self.pool.putconn(conn)

    async def _borrow(self) -> psycopg.AsyncConnection[Any] | None:
        """A standby connection fit for the next read, or None."""
        if time.monotonic() < self._down_until or self._probing:
            return None
        self._probing = self._down_for > 0  # after a failure, one read at a time tries
        try:
            conn = await self.pool.getconn(timeout=_BORROW_TIMEOUT)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            errors = self.pool.get_stats().get("connections_errors", 0)
            if errors > self._errors or self._down_for:  # connecting fails: it is down
                self._went_down(exc)
            self._errors = errors  # otherwise it was only busy
            return None
        finally:
            self._probing = False
        try:
            measure = self._measured
            if measure is None or time.monotonic() - measure.at > RECHECK \
                    or not self._usable(measure):
                measure = await self._measure(conn)
        except psycopg.OperationalError as exc:
            await self.pool.putconn(conn)
            self._went_down(exc)
            return None
        self._down_for = 0.0
        if not self._usable(measure):
            await self.pool.putconn(conn)
            return None
        return conn

    def _went_down(self, exc: BaseException) -> None:
        self._down_for = min(max(DOWN_FOR, self._down_for * 2), MAX_DOWN_FOR)
        logger.info("standby %s unusable for %g s, reading from the primary: %s",
                    self.url.endpoint, self._down_for, exc)
        self._down_until = time.monotonic() + self._down_for
        self._measured = None

    def topology(self) -> dict[str, Any]:
        """Where reads went, and the standby's state as last measured."""
        measure = self._measured
        return {
            "read_hosts": self.url.endpoint,
            "max_read_lag": self.url.max_read_lag,
            "standby_reads": self.standby_reads,
            "primary_reads": self.primary_reads,
            "standby_lag_seconds": None if measure is None else measure.lag,
            "standby_in_recovery": None if measure is None else measure.standby,
        }
