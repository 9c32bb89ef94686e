"""CPU time of the PostgreSQL backends serving a run, read from ``/proc``.

The engine's pool names its connections ``genesis/<run>`` (``application_name``), so the
server processes serving a run are found in ``pg_stat_activity``; their user + system time
is in ``/proc/<pid>/stat``. That needs the server on this machine (else figures are None).
Server-wide processes (WAL writer, checkpointer, autovacuum) are not counted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psycopg

__all__ = ["ServerCPU", "backend_pids", "process_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


def backend_pids(conninfo: str, application_name: str) -> list[int]:
    """Return the pids of the server backends whose application_name is the given one."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchall()
    return [int(row[0]) for row in rows]


def process_cpu_seconds(pid: int) -> float | None:
    """Return a process's user + system CPU seconds, or None if it is not readable here."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return None


def _is_postgres(pid: int) -> bool:
    """True if this machine's process ``pid`` is a PostgreSQL backend (a local server)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    return False


class ServerCPU:
    """CPU seconds spent by a run's backends between :meth:`start` and :meth:`stop`.

    Backends that appear meanwhile count from zero; one that exits before ``stop`` is lost
    (the pools of a benchmark keep their connections, so that is rare).
    """

    def __init__(self, conninfo: str, application_name: str) -> None:
        self.conninfo = conninfo
        self.application_name = application_name
        self._before: dict[int, float] = {}
        self.local = True

    def _sample(self) -> dict[int, float]:
        samples = {}
        for pid in backend_pids(self.conninfo, self.application_name):
            seconds = process_cpu_seconds(pid) if _is_postgres(pid) else None
            if seconds is None:
                self.local = False
            else:
                samples[pid] = seconds
        return samples

    def start(self) -> None:
        """Remember the backends' CPU time now."""
        self._before = self._sample()

    def stop(self) -> float | None:
        """Return the CPU seconds spent since :meth:`start` (None if /proc is not the server's)."""
        after = self._sample()
        if not self.local:
            return None
        return sum(max(0.0, seconds - self._before.get(pid, 0.0))
                   for pid, seconds in after.items())
