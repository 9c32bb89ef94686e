"""Database URLs: parsing, normalisation, password hiding, and the configuration resolver.

Accepted forms::

    sqlite:///relative/path.db          sqlite:////absolute/path.db
    postgresql://user:pass@host:5432/db?sslmode=require&run=experiment_1
    postgres://...   postgresql+psycopg://...   (normalised to postgresql://)

A PostgreSQL URL may name a *run* with ``?run=name``: each run lives in its own schema,
so many runs share one database without seeing each other. A SQLite run is its file.
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
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from genesis.database.errors import ConfigurationError

if TYPE_CHECKING:
    from genesis.database.config import DatabaseConfig

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_RUN",
    "DatabaseURL",
    "resolve_url",
    "run_name_for_path",
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
log = logging.getLogger("genesis.database")


def validate_run_name(name: str, setting: str = "run") -> str:
    """Return ``name`` if it is a valid run name, else raise ConfigurationError naming ``setting``.

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
    """A parsed database URL whose ``str()`` and ``repr()`` never show the password."""

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

    @classmethod
    def parse(cls, text: str, setting: str = "DATABASE_URL") -> DatabaseURL:
        """Parse ``text``; errors name ``setting`` and never echo a password."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(f"{setting} is empty; expected sqlite:///path.db or "
                                     "postgresql://user@host:5432/db")
        text = text.strip()
        scheme, sep, _ = text.partition("://")
        if not sep:
            raise ConfigurationError(
                f"{setting} has no scheme: expected sqlite:///path.db or "
                "postgresql://user@host:5432/db"
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
            raise ConfigurationError(f"{setting}: SQLite URLs take no query options "
                                     f"(got {query!r}); a SQLite run is its file")
        path = unquote(location)
        if not path or path == ":memory:":
            raise ConfigurationError(f"{setting}: a SQLite URL needs a file path "
                                     "(in-memory databases cannot be shared by connections)")
        return cls(backend="sqlite", path=path)

    @classmethod
    def _parse_postgres(cls, text: str, setting: str) -> DatabaseURL:
        password_hint = _password_of(text)
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            message = str(exc).replace(password_hint, _MASK) if password_hint else str(exc)
            raise ConfigurationError(f"{setting}: malformed PostgreSQL URL ({message}); "
                                     "the port must be a number from 1 to 65535") from None
        options = parse_qsl(parts.query, keep_blank_values=True)
        runs = [value for key, value in options if key == "run"]
        if len(runs) > 1:
            raise ConfigurationError(f"{setting} names the run {len(runs)} times "
                                     f"({', '.join(map(repr, runs))}); give ?run= once")
        run = validate_run_name(runs[0], f"?run= in {setting}") if runs else DEFAULT_RUN
        kept = [(key, value) for key, value in options if key != "run"]
        database = unquote(parts.path.lstrip("/"))
        if "/" in database:
            raise ConfigurationError(f"{setting}: the database name may not contain '/'")
        return cls(
            backend="postgresql",
            host=unquote(parts.hostname or ""),
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=database,
            options=tuple(kept),
            run=run,
            run_named=bool(runs),
        )

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str]) -> DatabaseURL:
        """Build a SQLite URL for a file path."""
        return cls(backend="sqlite", path=os.fspath(path))

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
        host = self.host or os.environ.get("PGHOST", "localhost")
        port = self.port or os.environ.get("PGPORT", "5432")
        return f"{host}:{port}"

    def with_run(self, run: str) -> DatabaseURL:
        """Return a copy of this URL that selects another run."""
        if self.is_sqlite:
            raise ConfigurationError("a SQLite run is its file: choose another path instead")
        return replace(self, run=validate_run_name(run), run_named=True)

    def conninfo(self) -> str:
        """Return the libpq URL for the driver, password included: never log it."""
        if not self.is_postgres:
            raise ConfigurationError("conninfo() is only defined for PostgreSQL URLs")
        return self._render(self.password, include_run=False)

    def redact(self, text: str) -> str:
        """Return ``text`` with every occurrence of the password masked."""
        if self.password and self.password in text:
            text = text.replace(self.password, _MASK)
        encoded = quote(self.password, safe="")
        if self.password and encoded in text:
            text = text.replace(encoded, _MASK)
        return text

    def _render(self, password: str, include_run: bool) -> str:
        auth = quote(self.user, safe="")
        if password:
            auth += ":" + (password if password == _MASK else quote(password, safe=""))
        netloc = f"{auth}@" if auth else ""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        netloc += host
        if self.port is not None:
            netloc += f":{self.port}"
        options = list(self.options)
        if include_run and self.run != DEFAULT_RUN:
            options.append(("run", self.run))
        query = f"?{urlencode(options)}" if options else ""
        return f"postgresql://{netloc}/{quote(self.database, safe='')}{query}"

    def __str__(self) -> str:
        if self.is_sqlite:
            return f"sqlite:///{self.path}"
        return self._render(_MASK if self.password else "", include_run=True)

    def __repr__(self) -> str:
        return f"DatabaseURL({str(self)!r})"


def _password_of(text: str) -> str:
    """Best-effort extraction of the password from a URL that may not parse."""
    netloc = text.split("://", 1)[-1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    return userinfo.partition(":")[2]


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
    """
    env = os.environ if environ is None else environ
    explicit_url = getattr(config, "database_url", None)
    db_path = getattr(config, "db_path", None)
    db_path = os.fspath(db_path) if db_path else None
    if explicit_url:
        url = DatabaseURL.parse(explicit_url, "database_url")
    elif db_path and "://" in db_path:
        url = DatabaseURL.parse(db_path, "db_path")
    elif env.get("DATABASE_URL"):
        url = DatabaseURL.parse(env["DATABASE_URL"], "DATABASE_URL")
    elif db_path:
        url = DatabaseURL.sqlite(db_path)
    else:
        data_dir = env.get("GENESIS_DATA_DIR") or DEFAULT_DATA_DIR
        url = DatabaseURL.sqlite(Path(data_dir) / DEFAULT_SQLITE_FILE)
    if not url.is_postgres:
        return url
    if getattr(config, "run_name", None):
        return url.with_run(validate_run_name(config.run_name, "DatabaseConfig.run_name"))
    if env.get("GENESIS_RUN"):
        return url.with_run(validate_run_name(env["GENESIS_RUN"], "GENESIS_RUN"))
    if not url.run_named and db_path and "://" not in db_path:
        url = url.with_run(run_name_for_path(db_path))
        log.info("run %r chosen from db_path %s on %s", url.run, db_path, url.endpoint)
    return url
