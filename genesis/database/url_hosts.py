"""Host lists and high-availability options of PostgreSQL URLs.

libpq accepts several servers in one URL (``postgresql://u@db1:5432,db2:5432/db``) or in the
keyword form (``host=db1,db2 port=5432,5433``) and connects to the first one that answers
and suits ``target_session_attrs``. Genesis adds its own options, taken out of what libpq
sees: ``read_hosts`` (standbys for read-only queries), ``max_read_lag`` (seconds a standby
may trail before reads go back to the primary) and ``synchronous_commit`` (set for every
write transaction of the run).
"""

from __future__ import annotations

import math
from urllib.parse import quote

from genesis.database.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_READ_LAG",
    "SYNCHRONOUS_COMMIT",
    "Hosts",
    "check_lag",
    "check_synchronous_commit",
    "join_hosts",
    "keyword_hosts",
    "netloc_hosts",
]

Hosts = tuple[tuple[str, int | None], ...]
DEFAULT_MAX_READ_LAG = 10.0
# PostgreSQL's synchronous_commit levels, weakest first.
SYNCHRONOUS_COMMIT = ("off", "local", "remote_write", "on", "remote_apply")


def _port(text: str, setting: str) -> int | None:
    if not text:
        return None
    if not (text.isdigit() and 1 <= int(text) <= 65535):
        raise ConfigurationError(f"{setting}: a port must be a number from 1 to 65535")
    return int(text)


def _host_port(item: str, setting: str) -> tuple[str, int | None]:
    """Split ``host:port``, ``[v6]:port`` or ``host`` (the port optional)."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, _port(rest.removeprefix(":"), setting)
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    return host, _port(port, setting)


def netloc_hosts(text: str, setting: str) -> Hosts:
    """Parse a comma-separated ``host:port`` list (a URL's host part or ``read_hosts``)."""
    hosts = tuple(_host_port(item.strip(), setting) for item in text.split(","))
    if any(not host for host, _ in hosts) and len(hosts) > 1:
        raise ConfigurationError(f"{setting}: an empty host in a host list")
    return hosts


def keyword_hosts(host: str, port: str, setting: str) -> Hosts:
    """Pair libpq's ``host=a,b`` with ``port=p`` (one for all) or ``port=p1,p2``."""
    names = host.split(",")
    ports = [_port(p.strip(), f"{setting} option 'port'") for p in port.split(",")]
    if len(ports) == 1:
        ports *= len(names)
    if len(ports) != len(names):
        raise ConfigurationError(f"{setting}: 'port' lists {len(ports)} ports for "
                                 f"{len(names)} hosts; give one port or one per host")
    return tuple(zip((n.strip() for n in names), ports, strict=True))


def join_hosts(hosts: Hosts) -> str:
    """Render hosts as a URL's host part: ``db1:5432,[::1]:5433``."""
    def one(host: str, port: int | None) -> str:
        name = f"[{host}]" if ":" in host else quote(host, safe="")
        return name if port is None else f"{name}:{port}"

    return ",".join(one(host, port) for host, port in hosts)


def check_lag(text: str, setting: str) -> float:
    """Parse ``max_read_lag`` (seconds, >= 0)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{setting}: max_read_lag must be a number of seconds >= 0, "
                                 f"got {text!r}")
    return value


def check_synchronous_commit(text: str, setting: str) -> str:
    """Return a valid ``synchronous_commit`` level, else an error listing them."""
    if text not in SYNCHRONOUS_COMMIT:
        raise ConfigurationError(f"{setting}: synchronous_commit must be one of "
                                 f"{', '.join(SYNCHRONOUS_COMMIT)}, got {text!r}")
    return text
