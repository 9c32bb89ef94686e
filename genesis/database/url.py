"""Database URLs: parsing, normalisation, password hiding, and the configuration resolver.

Accepted forms::

    sqlite:///relative/path.db          sqlite:////absolute/path.db
    postgresql://user:pass@host:5432/db?sslmode=require&run=experiment_1
    postgresql://user@host/db?password=pass      (libpq's query option)
    postgres://...   postgresql+psycopg://...   (normalised to postgresql://)
    host=db.example port=5432 dbname=evo user=alice password='s3 cret'   (libpq keywords)
    postgresql://u@db1:5432,db2:5432/evo?read_hosts=db2:5432&max_read_lag=5
    host=db1,db2 port=5432 dbname=evo     (several servers: see ``url_hosts``)

A PostgreSQL URL may name a *run* with ``?run=name`` (``run=name`` in a keyword string):
each run lives in its own schema, so many runs share one database without seeing each
other. A SQLite run is its file. Every password form libpq accepts (before ``@``,
``password=``, ``sslpassword=``) is kept for the driver and masked wherever the URL is shown.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from genesis.database.errors import ConfigurationError
from genesis.database.url_hosts import (
    DEFAULT_MAX_READ_LAG,
    Hosts,
    check_lag,
    check_synchronous_commit,
    join_hosts,
    keyword_hosts,
    netloc_hosts,
)

if TYPE_CHECKING:
    from genesis.database.config import DatabaseConfig

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_RUN",
    "DatabaseURL",
    "looks_like_keywords",
    "resolve_url",
    "run_name_for_path",
    "shown_location",
    "validate_run_name",
]

DEFAULT_RUN = "default"
DEFAULT_DATA_DIR = "genesis_data"
DEFAULT_SQLITE_FILE = "evolution.db"
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "postgresql+asyncpg": "postgresql",
}
_RUN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_RUN_MAX = 40
_MASK = "***"
_GENESIS_OPTIONS = ("read_hosts", "max_read_lag", "synchronous_commit")
_SECRET_OPTIONS = frozenset({"password", "sslpassword"})
# libpq's connection keywords: a text starting with one of them and '=' is a keyword string.
_LIBPQ_KEYWORDS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth",
    "channel_binding", "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
    "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service",
    "target_session_attrs", "load_balance_hosts",
})
_KEYWORD_START = re.compile(r"\s*([a-z_]+)\s*=")
# keyword = value, the value 'single quoted' or bare; a backslash escapes the next character.
_KEYWORD_PAIR = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(?!')((?:[^\s\\]|\\.)*))"
    r"(?:\s+|$)", re.S)
_ESCAPED = re.compile(r"\\(.)", re.S)
log = logging.getLogger("genesis.database")


def looks_like_keywords(text: str) -> bool:
    """True when ``text`` is a libpq keyword/value string (``host=... dbname=...``)."""
    match = _KEYWORD_START.match(text)
    return match is not None and match.group(1) in _LIBPQ_KEYWORDS


def validate_run_name(name: str, setting: str = "run") -> str:
    """Return ``name`` if it is a valid run name, else a ConfigurationError naming ``setting``.

    Every source of a run name reports a bad one alike: ``{setting}: invalid run name ...``.
    """
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{setting}: invalid run name {name!r}; use 1-40 lowercase letters, digits or "
            "'_', starting with a letter"
        )
    return name


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL whose ``str()`` and ``repr()`` never show a password."""

    backend: str
    path: str = ""
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()
    run: str = DEFAULT_RUN
    run_named: bool = field(default=False, compare=False)  # the URL itself named the run
    more_hosts: Hosts = ()  # servers after (host, port), tried in order
    read_hosts: Hosts = ()  # standbys for read-only queries
    max_read_lag: float = DEFAULT_MAX_READ_LAG  # seconds a standby may trail the primary
    synchronous_commit: str | None = None  # set on every write transaction
    setting: str = field(default="database URL", compare=False)  # where it came from
    creates_folder: bool = field(default=False, compare=False)  # SQLite: make its folder

    @classmethod
    def parse(cls, text: str, setting: str = "DATABASE_URL") -> DatabaseURL:
        """Parse ``text``; errors name ``setting`` and never echo a password."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(f"{setting} is empty; expected sqlite:///path.db or "
                                     "postgresql://user@host:5432/db")
        text = text.strip()
        if looks_like_keywords(text):
            return cls._parse_keywords(text, setting)
        scheme, sep, _ = text.partition("://")
        if not sep:
            raise ConfigurationError(
                f"{setting} has no scheme: expected sqlite:///path.db, "
                "postgresql://user@host:5432/db or libpq keywords (host=... dbname=...)"
            )
        backend = _SCHEMES.get(scheme.lower())
        if backend is None:
            raise ConfigurationError(
                f"{setting} has unsupported scheme {scheme!r}; supported: sqlite, postgresql "
                "(also postgres, postgresql+psycopg)"
            )
        if backend == "sqlite":
            return cls._parse_sqlite(text, setting)
        return cls._parse_postgres(text, setting)

    @classmethod
    def _parse_sqlite(cls, text: str, setting: str) -> DatabaseURL:
        rest = text.split("://", 1)[1]
        if not rest.startswith("/"):
            raise ConfigurationError(
                f"{setting}: a SQLite URL needs three slashes before a relative path "
                "(sqlite:///run.db) and four before an absolute one (sqlite:////tmp/run.db)"
            )
        location, _, query = rest[1:].partition("?")
        if query:
            names = ", ".join(key for key, _ in parse_qsl(query, keep_blank_values=True))
            raise ConfigurationError(f"{setting}: SQLite URLs take no query options "
                                     f"(got {names or '?'}); a SQLite run is its file")
        path = unquote(location)
        if not path or path == ":memory:":
            raise ConfigurationError(f"{setting}: a SQLite URL needs a file path "
                                     "(in-memory databases cannot be shared by connections)")
        return cls(backend="sqlite", path=path, setting=setting)

    @classmethod
    def _parse_postgres(cls, text: str, setting: str) -> DatabaseURL:
        parts = urlsplit(text)
        hostlist = parts.netloc.rpartition("@")[2]
        try:
            if "," in hostlist:
                hosts = tuple((unquote(h), p) for h, p in netloc_hosts(hostlist, setting))
            else:
                hosts = ((unquote(parts.hostname or ""), parts.port),)
        except ValueError as exc:
            message = _masked(str(exc), _secrets_of(text))
            raise ConfigurationError(f"{setting}: malformed PostgreSQL URL ({message}); "
                                     "the port must be a number from 1 to 65535") from None
        database = unquote(parts.path.lstrip("/"))
        if "/" in database:
            raise ConfigurationError(f"{setting}: the database name may not contain '/'")
        return cls._postgres(setting, hosts=hosts, user=unquote(parts.username or ""),
                             password=unquote(parts.password or ""), database=database,
                             options=parse_qsl(parts.query, keep_blank_values=True))

    @classmethod
    def _parse_keywords(cls, text: str, setting: str) -> DatabaseURL:
        """Parse a libpq keyword/value string; errors never show its text."""
        pairs, position = [], 0
        while position < len(text):
            match = _KEYWORD_PAIR.match(text, position)
            if match is None:
                raise ConfigurationError(
                    f"{setting}: malformed keyword/value connection string at character "
                    f"{position + 1}: expected keyword=value or keyword='quoted value'")
            value = match.group(2) if match.group(2) is not None else match.group(3)
            pairs.append((match.group(1), _ESCAPED.sub(r"\1", value)))
            position = match.end()
        named = {key: value for key, value in pairs if key in ("host", "port", "user", "dbname")}
        hosts = keyword_hosts(named.get("host", ""), named.get("port", ""), setting)
        return cls._postgres(setting, hosts=hosts, user=named.get("user", ""),
                             password="", database=named.get("dbname", ""),
                             options=[pair for pair in pairs if pair[0] not in named])

    @classmethod
    def _postgres(cls, setting: str, *, hosts: Hosts, user: str, password: str,
                  database: str, options: list[tuple[str, str]]) -> DatabaseURL:
        """Build a PostgreSQL URL: the run, Genesis' options and a password taken out."""
        passwords = [value for key, value in options if key == "password"]
        if passwords and (password or len(passwords) > 1):
            raise ConfigurationError(f"{setting} gives the password more than once; give it "
                                     "once (before '@' or as password=)")
        runs = [value for key, value in options if key == "run"]
        if len(runs) > 1:
            raise ConfigurationError(f"{setting} names the run {len(runs)} times "
                                     f"({', '.join(map(repr, runs))}); give ?run= once")
        run = validate_run_name(runs[0], f"?run= in {setting}") if runs else DEFAULT_RUN
        own = {key: value for key, value in options if key in _GENESIS_OPTIONS}
        kept = [(key, value) for key, value in options
                if key not in ("run", "password", *_GENESIS_OPTIONS)]
        if len(hosts) > 1 and "target_session_attrs" not in dict(kept):
            kept.append(("target_session_attrs", "read-write"))  # writes need the primary
        return cls(
            backend="postgresql",
            host=hosts[0][0],
            port=hosts[0][1],
            more_hosts=hosts[1:],
            user=user,
            password=passwords[0] if passwords else password,
            database=database,
            options=tuple(kept),
            run=run,
            run_named=bool(runs),
            setting=setting,
            read_hosts=netloc_hosts(own["read_hosts"], f"read_hosts in {setting}")
            if own.get("read_hosts") else (),
            max_read_lag=check_lag(own["max_read_lag"], setting)
            if "max_read_lag" in own else DEFAULT_MAX_READ_LAG,
            synchronous_commit=check_synchronous_commit(own["synchronous_commit"], setting)
            if "synchronous_commit" in own else None,
        )

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str], setting: str = "SQLite file", *,
               creates_folder: bool = False) -> DatabaseURL:
        """Build a SQLite URL for a file path (``creates_folder``: make a missing folder)."""
        return cls(backend="sqlite", path=os.fspath(path), setting=setting,
                   creates_folder=creates_folder)

    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite URL."""
        return self.backend == "sqlite"

    @property
    def is_postgres(self) -> bool:
        """True for a PostgreSQL URL."""
        return self.backend == "postgresql"

    @property
    def endpoint(self) -> str:
        """Host and port (or the file path): what to name in an error message."""
        if self.is_sqlite:
            return self.path
        if self.more_hosts:
            return join_hosts(self.hosts)
        host = self.host or os.environ.get("PGHOST") or os.environ.get("PGHOSTADDR")
        port = self.port or os.environ.get("PGPORT", "5432")
        return f"{host}:{port}" if host else f"the local socket, port {port}"

    @property
    def hosts(self) -> Hosts:
        """Every server the URL names, in the order libpq tries them."""
        return ((self.host, self.port), *self.more_hosts)

    def reader(self) -> DatabaseURL | None:
        """Return the URL of the run's standbys (``read_hosts``), or None without any."""
        if not self.read_hosts:
            return None
        options = tuple(o for o in self.options if o[0] != "target_session_attrs")
        (host, port), *rest = self.read_hosts
        return replace(self, host=host, port=port, more_hosts=tuple(rest), read_hosts=(),
                       options=options, setting=f"read_hosts in {self.setting}")

    def with_run(self, run: str) -> DatabaseURL:
        """Return a copy of this URL that selects another run."""
        if self.is_sqlite:
            raise ConfigurationError("a SQLite run is its file: choose another path instead")
        return replace(self, run=validate_run_name(run), run_named=True)

    def conninfo(self) -> str:
        """Return the libpq URL for the driver, password included: never log it."""
        if not self.is_postgres:
            raise ConfigurationError("conninfo() is only defined for PostgreSQL URLs")
        return self._render(masked=False)

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret of this URL masked (as typed or URL-encoded)."""
        secrets = [self.password, *(value for key, value in self.options
                                    if key in _SECRET_OPTIONS)]
        return _masked(text, secrets)

    def _render(self, masked: bool) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + (_MASK if masked else quote(self.password, safe=""))
        netloc = f"{auth}@" if auth else ""
        if self.more_hosts:
            netloc += join_hosts(self.hosts)
        else:  # an IPv6 address goes in brackets; a socket folder is encoded
            netloc += f"[{self.host}]" if ":" in self.host else quote(self.host, safe=",")
            if self.port is not None:
                netloc += f":{self.port}"
        options = list(self.options)
        if masked:
            options.extend(self._own_options())
        query = "&".join(
            f"{quote_plus(key)}="
            f"{_MASK if masked and key in _SECRET_OPTIONS else quote_plus(value)}"
            for key, value in options)
        return f"postgresql://{netloc}/{quote(self.database, safe='')}" + \
            (f"?{query}" if query else "")

    def _own_options(self) -> list[tuple[str, str]]:
        """The options Genesis reads itself (shown, never sent to libpq)."""
        options = [("run", self.run)] if self.run != DEFAULT_RUN else []
        if self.read_hosts:
            options.append(("read_hosts", join_hosts(self.read_hosts)))
        if self.max_read_lag != DEFAULT_MAX_READ_LAG:
            options.append(("max_read_lag", f"{self.max_read_lag:g}"))
        if self.synchronous_commit:
            options.append(("synchronous_commit", self.synchronous_commit))
        return options

    def __str__(self) -> str:
        if self.is_sqlite:
            return f"sqlite:///{self.path}"
        return self._render(masked=True)

    def __repr__(self) -> str:
        return f"DatabaseURL({str(self)!r})"


def _masked(text: str, secrets: list[str]) -> str:
    """Mask each secret in ``text``, as typed and in its URL-encoded forms."""
    for secret in filter(None, secrets):
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
            text = text.replace(form, _MASK)
    return text


def _secrets_of(text: str) -> list[str]:
    """Best-effort extraction of the secrets of a URL that may not parse."""
    netloc, _, query = text.split("://", 1)[-1].partition("?")
    userinfo = netloc.split("/", 1)[0].rpartition("@")[0]
    options = parse_qsl(query, keep_blank_values=True)
    return [userinfo.partition(":")[2],
            *(value for key, value in options if key in _SECRET_OPTIONS)]


def shown_location(text: str, setting: str) -> str:
    """Return a configured location as people may see it: a URL masked, a file path as is."""
    if not _is_url(text.strip()):
        return text
    try:
        return str(DatabaseURL.parse(text, setting))
    except ConfigurationError:
        return "(a malformed URL, not shown)"


def _is_url(text: str) -> bool:
    """True when ``text`` names a database by URL or libpq keywords, not by file path."""
    return "://" in text or looks_like_keywords(text)


def run_name_for_path(path: str | os.PathLike[str]) -> str:
    """Derive a valid run name from a legacy SQLite path: its folder's name, else its stem.

    ``results_2026_12_01/programs.sqlite`` gives ``results_2026_12_01``: lowercase, any other
    character made ``_``, ``r_`` prefixed when it does not start with a letter, and a name
    longer than 40 characters shortened with a hash of the whole so that it stays unique.
    """
    location = Path(os.fspath(path))
    folder = location.parent.name if location.parent.name not in ("", ".", "..") else ""
    text = re.sub(r"[^a-z0-9_]+", "_", (folder or location.stem).lower()).strip("_")
    if not text or not text[0].isalpha():
        text = f"r_{text}".rstrip("_")
    if len(text) > _RUN_MAX:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        text = f"{text[:_RUN_MAX - 9].rstrip('_')}_{digest}"
    return validate_run_name(text, "run name derived from db_path")


def resolve_url(
    config: DatabaseConfig | None = None, environ: Mapping[str, str] | None = None
) -> DatabaseURL:
    """Choose the database: config URL, ``DATABASE_URL``, config ``db_path``, data dir default.

    ``db_path`` is the SQLite fallback used when ``DATABASE_URL`` is unset (a ``db_path``
    holding a URL counts as an explicit URL). The run is ``config.run_name``, else
    ``GENESIS_RUN``, else the URL's ``?run=``; when ``DATABASE_URL`` selects PostgreSQL for a
    caller that also gave a ``db_path`` (a legacy runner), the run is derived from that path
    (:func:`run_name_for_path`) so that different results folders never share a run.
    The folder of the default file and of a plain ``db_path`` (as ShinkaEvolve does) is
    created when missing; the folder of a file a URL names must exist.
    """
    env = os.environ if environ is None else environ
    explicit_url = getattr(config, "database_url", None)
    db_path = getattr(config, "db_path", None)
    db_path = os.fspath(db_path) if db_path else None
    if explicit_url:
        url = DatabaseURL.parse(explicit_url, "database_url")
    elif db_path and _is_url(db_path):
        url = DatabaseURL.parse(db_path, "db_path")
    elif env.get("DATABASE_URL"):
        url = DatabaseURL.parse(env["DATABASE_URL"], "DATABASE_URL")
    elif db_path:
        url = DatabaseURL.sqlite(db_path, "db_path", creates_folder=True)
    else:
        setting = "GENESIS_DATA_DIR" if env.get("GENESIS_DATA_DIR") else "the default data folder"
        data_dir = env.get("GENESIS_DATA_DIR") or DEFAULT_DATA_DIR
        url = DatabaseURL.sqlite(Path(data_dir) / DEFAULT_SQLITE_FILE, setting,
                                 creates_folder=True)
    if not url.is_postgres:
        return url
    if getattr(config, "run_name", None):
        return url.with_run(validate_run_name(config.run_name, "DatabaseConfig.run_name"))
    if env.get("GENESIS_RUN"):
        return url.with_run(validate_run_name(env["GENESIS_RUN"], "GENESIS_RUN"))
    if not url.run_named and db_path and not _is_url(db_path):
        url = url.with_run(run_name_for_path(db_path))
        log.info("run %r chosen from db_path %s on %s", url.run, db_path, url.endpoint)
    return url
