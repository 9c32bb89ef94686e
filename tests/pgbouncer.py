"""PgBouncer in transaction pooling mode, started for the tests on a free loopback port.

Large deployments put PgBouncer between many workers and the server; in *transaction*
pooling each transaction may run on another server connection, so session state (``SET``,
session advisory locks, server-side prepared statements before PgBouncer 1.21) does not
survive. To make any reliance on it fail every time rather than by chance, the tests' PgBouncer
resets each server connection after every transaction (``DISCARD ALL``) and hands server
connections out round-robin.

It runs as the ``postgres`` user when the tests run as root (PgBouncer refuses root), with
``auth_type = trust`` against the test server. A missing ``pgbouncer`` binary skips the tests
that need it, unless ``GENESIS_REQUIRE_PGBOUNCER=1`` (CI), which makes it a failure.
``GENESIS_PGBOUNCER`` names the binary when it is not on PATH or in ``/usr/sbin``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg

from genesis.database import DatabaseURL

__all__ = ["PgBouncer", "pgbouncer_unavailable", "shared_pgbouncer",
           "stop_shared", "through_pgbouncer"]

_BINARY_PLACES = ("/usr/sbin/pgbouncer", "/usr/local/bin/pgbouncer", "/usr/bin/pgbouncer")
_CONFIG = """[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {user}
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
server_reset_query = DISCARD ALL
server_reset_query_always = 1
server_round_robin = 1
ignore_startup_parameters = extra_float_digits
"""


def through_pgbouncer() -> bool:
    """True when the whole PostgreSQL suite should reach the server through PgBouncer."""
    return os.environ.get("GENESIS_TEST_THROUGH_PGBOUNCER", "") not in ("", "0")


def pgbouncer_binary() -> str | None:
    """Return the pgbouncer executable: ``GENESIS_PGBOUNCER``, else found on PATH or in sbin."""
    chosen = os.environ.get("GENESIS_PGBOUNCER")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    found = shutil.which("pgbouncer")
    return found or next((p for p in _BINARY_PLACES if os.access(p, os.X_OK)), None)


def pgbouncer_unavailable() -> str | None:
    """Return why PgBouncer cannot be started here, or None."""
    if pgbouncer_binary() is None:
        return ("pgbouncer is not installed (apt-get install -y pgbouncer; or set "
                "GENESIS_PGBOUNCER to its path)")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """One PgBouncer process in front of the test server, in a temporary folder."""

    def __init__(self, server: DatabaseURL) -> None:
        self.server = server
        self.port = 0
        self.folder = Path(tempfile.mkdtemp(prefix="genesis-pgbouncer-"))
        self._process: subprocess.Popen[bytes] | None = None

    def route(self, url: DatabaseURL) -> DatabaseURL:
        """The same database and run, reached through this PgBouncer."""
        return replace(url, host="127.0.0.1", port=self.port)

    def start(self, attempts: int = 3) -> PgBouncer:
        """Start PgBouncer and wait until it serves a query; return self."""
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError(pgbouncer_unavailable())
        self.folder.chmod(0o755)  # the postgres user reads the configuration
        user = self.server.user or "postgres"
        users = self.folder / "users.txt"
        users.write_text(f'"{user}" ""\n')
        for _ in range(attempts):
            self.port = _free_port()
            config = self.folder / "pgbouncer.ini"
            config.write_text(_CONFIG.format(host=self.server.host or "127.0.0.1",
                                             port=self.server.port or 5432, listen=self.port,
                                             folder=self.folder, user=user))
            for path in (users, config):
                path.chmod(0o644)
            command = [binary, str(config)]
            if os.geteuid() == 0:
                command[1:1] = ["-u", "postgres"]
            log = (self.folder / "pgbouncer.log").open("ab")
            self._process = subprocess.Popen(command, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"PgBouncer did not start: {self.log_tail()}")

    def _wait_ready(self, seconds: float = 15.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            with contextlib.suppress(psycopg.OperationalError):
                with psycopg.connect(self.route(self.server).conninfo(), connect_timeout=2,
                                     autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 20) -> str:
        """The last lines PgBouncer logged."""
        path = self.folder / "pgbouncer.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop PgBouncer (idempotent); its folder goes with it."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None

    def close(self) -> None:
        """Stop PgBouncer and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


_shared: dict[str, PgBouncer] = {}


def shared_pgbouncer(server: DatabaseURL) -> PgBouncer:
    """The test session's PgBouncer in front of ``server``, started on first use."""
    key = server.endpoint
    if key not in _shared:
        bouncer = PgBouncer(server)
        try:
            _shared[key] = bouncer.start()
        except BaseException:
            bouncer.close()
            raise
        atexit.register(bouncer.close)
    return _shared[key]


def stop_shared() -> None:
    """Stop every PgBouncer this session started."""
    while _shared:
        _shared.popitem()[1].close()
