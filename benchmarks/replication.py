"""A PostgreSQL primary and a streaming standby of its own, on free loopback ports.

Built from the installed server binaries (``initdb``, ``pg_basebackup -R``, ``pg_ctl``) in a
temporary folder, as the ``postgres`` OS user when run as root (the server refuses to run as
root), and removed by :meth:`Replication.close`. With ``synchronous=True`` the primary names
the standby in ``synchronous_standby_names``: a COMMIT returns once the standby has the
commit record. After a failover (:meth:`Replication.fail_over`) the promoted standby is the
primary and :meth:`Replication.add_standby` makes a new standby of it. Used by the tests
(``tests/replication.py``) and ``benchmarks.failover``; ``benchmarks.scaling --server-cpus``
builds a lone primary (``standby=False``) pinned to CPUs of its own (``cpus``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from genesis.database import DatabaseURL

__all__ = ["Replication", "server_binaries"]
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 8
wal_keep_size = '256MB'
hot_standby = on
fsync = off
shared_buffers = '32MB'
max_connections = 100
"""


def server_binaries() -> Path | None:
    """The folder of the newest installed PostgreSQL server binaries, or None."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replication:
    """A primary and one streaming standby; ``primary``/``standby`` are their ports."""

    def __init__(self, bin_dir: Path, *, synchronous: bool, standby: bool = True,
                 cpus: set[int] | None = None, settings: str = "") -> None:
        self.bin = bin_dir
        self.synchronous = synchronous
        self.with_standby = standby
        self.cpus = cpus  # the servers run on these CPUs only (taskset), if given
        self.settings = settings  # postgresql.conf lines after (so over) the defaults here
        self.root = Path(tempfile.mkdtemp(prefix="genesis-replication-"))
        self.root.chmod(0o755)
        self.folders: dict[int, Path] = {}  # port -> data folder, of every server built
        self.primary = self.standby = 0
        self._standbys = 0

    # Building --------------------------------------------------------------------------

    def _command(self, *args: str) -> list[str]:
        """A server program's command line, run as ``postgres`` when we are root."""
        command = [str(self.bin / args[0]), *args[1:]]
        if self.cpus:
            command = ["taskset", "-c", ",".join(map(str, sorted(self.cpus))), *command]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, text=True,
                              timeout=120)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}")

    def _folder(self, port: int) -> Path:
        folder = self.root / str(port)
        folder.mkdir()
        sockets = self.root / f"s{port}"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        folder.chmod(0o700)
        self.folders[port] = folder
        return folder

    def start(self) -> Replication:
        """Build and start the primary, then a standby of it (all removed on a failure)."""
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        port = _free_port()
        folder = self._folder(port)
        self._as_postgres("initdb", "-D", str(folder), "-U", "postgres", "--auth=trust",
                          "--no-sync")
        with open(folder / "postgresql.conf", "a") as conf:
            conf.write(_SETTINGS.format(port=port, sockets=self.root / f"s{port}"))
            conf.write(self.settings)
        self._pg_ctl(port, "start")
        self.primary = port
        if self.with_standby:
            self.add_standby()

    def add_standby(self) -> None:
        """Make a new streaming standby of the primary (named ``standbyN``) and start it."""
        port = _free_port()
        folder = self._folder(port)
        self._standbys += 1
        name = f"standby{self._standbys}"
        self._as_postgres("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary),
                          "-U", "postgres", "-D", str(folder), "-R", "-X", "stream", "-c", "fast",
                          "--no-sync")
        with open(folder / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\nunix_socket_directories = '{self.root / f's{port}'}'\n"
                       f"primary_conninfo = 'host=127.0.0.1 port={self.primary} "
                       f"user=postgres application_name={name}'\n")
        self._pg_ctl(port, "start")
        self.standby = port
        self.set_synchronous(self.synchronous)
        self.wait_streaming()

    def set_synchronous(self, synchronous: bool) -> None:
        """Make replication to the standby synchronous or asynchronous from now on."""
        self.synchronous = synchronous
        name = f"standby{self._standbys}" if synchronous else ""
        self.sql(self.primary, f"ALTER SYSTEM SET synchronous_standby_names = '{name}'",
                 "SELECT pg_reload_conf()")

    def _pg_ctl(self, port: int, *args: str) -> None:
        log = self.root / f"s{port}" / "server.log"
        self._as_postgres("pg_ctl", "-D", str(self.folders[port]), "-l", str(log), "-w",
                          *args)

    # Events ----------------------------------------------------------------------------

    def fail_over(self) -> None:
        """Kill the primary (``pg_ctl stop -m immediate``) and promote the standby."""
        self.kill_primary()
        self.promote()

    def kill_primary(self) -> None:
        """Stop the primary at once, as a crash would (``pg_ctl stop -m immediate``)."""
        self._pg_ctl(self.primary, "stop", "-m", "immediate")

    def promote(self) -> None:
        """Promote the standby (``pg_ctl promote``, waiting until it accepts writes)."""
        self._pg_ctl(self.standby, "promote")
        self.primary, self.standby = self.standby, 0

    def stop_standby(self) -> None:
        """Stop the standby (fast shutdown)."""
        self._pg_ctl(self.standby, "stop", "-m", "fast")

    def start_standby(self) -> None:
        """Start the stopped standby again and wait until it streams."""
        self._pg_ctl(self.standby, "start")
        self.wait_streaming()

    def wait_streaming(self) -> None:
        """Wait until the primary sees its standby streaming (and replayed everything)."""
        with psycopg.connect(self._conninfo(self.primary), autocommit=True) as conn:
            for _ in range(3000):
                row = conn.execute(
                    "SELECT COUNT(*) FROM pg_stat_replication WHERE state = 'streaming' "
                    "AND replay_lsn >= pg_current_wal_lsn()").fetchone()
                if row and row[0]:
                    return
                conn.execute("SELECT pg_sleep(0.01)")
        raise RuntimeError("the standby never started streaming")

    def sql(self, port: int, *statements: str) -> list[object]:
        """Run statements on one server; return the first column of each last row."""
        with psycopg.connect(self._conninfo(port), autocommit=True) as conn:
            cursors = [conn.execute(statement) for statement in statements]
            rows = [cursor.fetchone() if cursor.description else None for cursor in cursors]
        return [row[0] if row else None for row in rows]

    # URLs ------------------------------------------------------------------------------

    @staticmethod
    def _conninfo(port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def primary_url(self) -> DatabaseURL:
        """The URL of the primary alone (database ``postgres``)."""
        return DatabaseURL.parse(self._conninfo(self.primary))

    def url(self, run: str, *, read: bool = False, options: str = "") -> DatabaseURL:
        """A multi-host URL of the pair (primary first); ``read`` routes reads to the standby."""
        query = [f"run={run}", *([f"read_hosts=127.0.0.1:{self.standby}"] if read else []),
                 *([options] if options else [])]
        return DatabaseURL.parse(f"postgresql://postgres@127.0.0.1:{self.primary},"
                                 f"127.0.0.1:{self.standby}/postgres?{'&'.join(query)}")

    def close(self) -> None:
        """Stop every server still running and remove the folder."""
        for port in self.folders:
            if (self.folders[port] / "postmaster.pid").exists():
                subprocess.run(self._command("pg_ctl", "-D", str(self.folders[port]), "stop",
                                             "-m", "immediate"), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

