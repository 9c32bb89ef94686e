"""Unit tests for URL parsing, password hiding and the configuration resolver."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from genesis.database import ConfigurationError, DatabaseConfig, DatabaseURL, resolve_url
from genesis.database.errors import OperationalError, translating
from genesis.ops.stores import as_url


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://alice:s3cret@db.example:6543/evo",
        "postgres://alice:s3cret@db.example:6543/evo",
        "postgresql+psycopg://alice:s3cret@db.example:6543/evo",
    ],
)
def test_postgres_schemes_are_normalised(text: str) -> None:
    url = DatabaseURL.parse(text)
    assert url.backend == "postgresql"
    assert (url.host, url.port, url.user, url.database) == ("db.example", 6543, "alice", "evo")
    assert url.conninfo() == "postgresql://alice:s3cret@db.example:6543/evo"


def test_password_never_in_str_or_repr() -> None:
    url = DatabaseURL.parse("postgresql://alice:s3cret@db.example/evo?sslmode=require&run=exp_1")
    assert "s3cret" not in str(url)
    assert "s3cret" not in repr(url)
    assert "***" in str(url)
    assert url.run == "exp_1"
    assert "sslmode=require" in url.conninfo() and "run=" not in url.conninfo()


def test_password_with_special_characters_round_trips() -> None:
    url = DatabaseURL.parse("postgresql://bob:p%40ss%3Aw%2Ford@h/db")
    assert url.password == "p@ss:w/ord"
    assert DatabaseURL.parse(url.conninfo()).password == "p@ss:w/ord"
    assert "p@ss" not in str(url)
    assert url.redact("failed for p@ss:w/ord") == "failed for ***"


def test_sqlite_relative_and_absolute_paths() -> None:
    assert DatabaseURL.parse("sqlite:///runs/a.db").path == "runs/a.db"
    assert DatabaseURL.parse("sqlite:////tmp/a.db").path == "/tmp/a.db"
    assert str(DatabaseURL.parse("sqlite:////tmp/a.db")) == "sqlite:////tmp/a.db"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("just-a-path.db", "no scheme"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///:memory:", "file path"),
        ("sqlite:///a.db?mode=ro", "no query options"),
        ("postgresql://u:hunter2@h:notaport/db", "port"),
        ("postgresql://u@h/db?run=Bad-Name", "?run= in DATABASE_URL: invalid run name"),
    ],
)
def test_malformed_urls_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DatabaseURL.parse(text)
    assert fragment in str(info.value)
    assert "hunter2" not in str(info.value)


def test_resolver_precedence(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db", "GENESIS_DATA_DIR": str(tmp_path)}
    assert resolve_url(DatabaseConfig(database_url="sqlite:///x.db"), env).path == "x.db"
    # DATABASE_URL wins over a legacy db_path, which is only the SQLite fallback.
    assert resolve_url(DatabaseConfig(db_path="legacy.sqlite"), env).is_postgres
    assert resolve_url(DatabaseConfig(db_path="legacy.sqlite"), {}).path == "legacy.sqlite"
    assert resolve_url(DatabaseConfig(), env).is_postgres
    default = resolve_url(DatabaseConfig(), {"GENESIS_DATA_DIR": str(tmp_path)})
    assert Path(default.path) == tmp_path / "evolution.db"
    assert resolve_url(None, {}).path.endswith("genesis_data/evolution.db")


def test_resolver_run_name_overrides_url() -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db?run=first"}
    assert resolve_url(DatabaseConfig(), env).run == "first"
    assert resolve_url(DatabaseConfig(run_name="second"), env).run == "second"
    assert resolve_url(DatabaseConfig(), {**env, "GENESIS_RUN": "third"}).run == "third"


def test_db_path_may_be_a_url() -> None:
    url = resolve_url(DatabaseConfig(db_path="postgresql://u:pw@h/db"), {})
    assert url.is_postgres and url.password == "pw"


@pytest.mark.parametrize(
    ("db_path", "run"),
    [
        ("results/programs.sqlite", "results"),
        ("runs/Results_2026-12-01 10:00/programs.sqlite", "results_2026_12_01_10_00"),
        ("evolution_db.sqlite", "evolution_db"),
        ("2026/programs.sqlite", "r_2026"),
        ("/abs/" + "x" * 50 + "/programs.sqlite", None),
    ],
)
def test_legacy_db_path_names_the_run_under_database_url(db_path: str, run: str | None) -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db"}
    url = resolve_url(DatabaseConfig(db_path=db_path), env)
    assert url.is_postgres
    if run is not None:
        assert url.run == run
    else:  # too long: shortened, still valid and unique to the folder
        assert len(url.run) <= 40 and url.run.startswith("xxx")
        other = resolve_url(DatabaseConfig(db_path="/abs/" + "x" * 51 + "/p.sqlite"), env)
        assert other.run != url.run


def test_two_results_folders_never_share_a_run() -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db"}
    first = resolve_url(DatabaseConfig(db_path="exp_a/programs.sqlite"), env)
    second = resolve_url(DatabaseConfig(db_path="exp_b/programs.sqlite"), env)
    prompts = resolve_url(DatabaseConfig(db_path="exp_a/prompts.sqlite"), env)
    assert first.run != second.run
    assert prompts.run == first.run  # a results folder's two stores share its run


def test_a_named_run_wins_over_the_db_path_folder() -> None:
    config = DatabaseConfig(db_path="results/programs.sqlite")
    assert resolve_url(config, {"DATABASE_URL": "postgresql://u@h/db?run=given"}).run == "given"
    env = {"DATABASE_URL": "postgresql://u@h/db", "GENESIS_RUN": "chosen"}
    assert resolve_url(config, env).run == "chosen"
    named = DatabaseConfig(db_path="results/programs.sqlite", run_name="mine")
    assert resolve_url(named, env).run == "mine"


def test_the_run_chosen_from_db_path_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="genesis.database"):
        resolve_url(DatabaseConfig(db_path="results/programs.sqlite"),
                    {"DATABASE_URL": "postgresql://u:secret@h/db"})
    assert "run 'results' chosen from db_path results/programs.sqlite" in caplog.text
    assert "secret" not in caplog.text


def test_a_run_named_twice_in_the_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="names the run 2 times"):
        DatabaseURL.parse("postgresql://u@h/db?run=a&run=b")


def test_a_bad_genesis_run_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="GENESIS_RUN"):
        resolve_url(DatabaseConfig(), {"DATABASE_URL": "postgresql://u@h/db",
                                       "GENESIS_RUN": "Bad Name"})


SECRET = "p@ss w0rd/Zq9'"  # characters that are encoded differently by each form
SECRET_FORMS = (SECRET, quote(SECRET, safe=""), quote_plus(SECRET))
KEYWORD_SECRET = SECRET.replace("\\", "\\\\").replace("'", "\\'")


def password_forms(host: str = "db.example", port: int = 5432, user: str = "alice",
                   database: str = "evo", run: str = "exp_1") -> dict[str, str]:
    """One server and run, with the password in each form libpq accepts."""
    encoded = quote(SECRET, safe="")
    return {
        "userinfo": f"postgresql://{user}:{encoded}@{host}:{port}/{database}?run={run}",
        "query": f"postgresql://{user}@{host}:{port}/{database}?password={encoded}&run={run}",
        "keywords": f"host={host} port = {port} dbname={database} user={user} "
                    f"password='{KEYWORD_SECRET}' run={run}",
    }


def assert_no_secret(text: str) -> None:
    """Fail if ``text`` holds the password in any of its spellings."""
    assert not any(form in text for form in SECRET_FORMS), text


@pytest.mark.parametrize("form", ["userinfo", "query", "keywords"])
def test_every_password_form_is_kept_for_the_driver_and_masked_when_shown(form: str) -> None:
    url = DatabaseURL.parse(password_forms()[form])
    assert (url.host, url.port, url.user, url.database, url.run) == (
        "db.example", 5432, "alice", "evo", "exp_1")
    assert url.password == SECRET
    assert DatabaseURL.parse(url.conninfo()).password == SECRET
    assert str(url) == "postgresql://alice:***@db.example:5432/evo?run=exp_1"
    for shown in (str(url), repr(url), repr(DatabaseConfig(database_url=password_forms()[form])),
                  repr(DatabaseConfig(db_path=password_forms()[form]))):
        assert_no_secret(shown)
    assert_no_secret(url.redact(f"failed: {' | '.join(SECRET_FORMS)}"))


def test_ssl_key_passwords_are_masked_too() -> None:
    url = DatabaseURL.parse("postgresql://u@h/db?sslpassword=k3y-secret&sslmode=require")
    assert "k3y-secret" not in str(url) and "sslpassword=***" in str(url)
    assert "sslpassword=k3y-secret" in url.conninfo()
    assert url.redact("bad key k3y-secret") == "bad key ***"


def test_translated_errors_mask_the_query_password() -> None:
    url = DatabaseURL.parse(password_forms()["query"])
    with pytest.raises(OperationalError) as info, translating(url):
        raise sqlite3.OperationalError(f"boom {SECRET} {quote_plus(SECRET)}")
    assert_no_secret(str(info.value))


def test_keyword_strings_follow_libpq_quoting() -> None:
    url = DatabaseURL.parse(r"host=/run/pg dbname='my db' user=a\ b options='-c x=1'")
    assert (url.host, url.database, url.user) == ("/run/pg", "my db", "a b")
    assert url.options == (("options", "-c x=1"),)
    assert DatabaseURL.parse(url.conninfo()).host == "/run/pg"
    assert url.run == "default" and url.port is None


@pytest.mark.parametrize("text", [f"host=h password='{KEYWORD_SECRET}",
                                  f"host=h password {KEYWORD_SECRET}",
                                  f"host=h port=5x password='{KEYWORD_SECRET}'",
                                  f"host=h password=a password='{KEYWORD_SECRET}'"])
def test_malformed_keyword_strings_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DatabaseURL.parse(text, "DATABASE_URL")
    assert str(info.value).startswith("DATABASE_URL")
    assert_no_secret(str(info.value))


def test_keyword_strings_are_targets_wherever_a_url_is() -> None:
    text = password_forms()["keywords"]
    assert as_url(text, "SRC").is_postgres
    assert resolve_url(DatabaseConfig(db_path=text), {}).is_postgres
    assert resolve_url(DatabaseConfig(), {"DATABASE_URL": text}).run == "exp_1"
    assert as_url("results/run=3.db").is_sqlite  # not a libpq keyword: a file name


def test_sqlite_query_options_are_named_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match=r"got password\)") as info:
        DatabaseURL.parse(f"sqlite:///a.db?password={quote(SECRET)}")
    assert_no_secret(str(info.value))


def test_multi_host_url_keeps_every_host_and_targets_the_primary() -> None:
    url = DatabaseURL.parse("postgresql://u:s3cret@db1:5432,[::1]:5433,db3/evo?run=r1")
    assert url.hosts == (("db1", 5432), ("::1", 5433), ("db3", None))
    assert url.endpoint == "db1:5432,[::1]:5433,db3"
    assert url.conninfo() == ("postgresql://u:s3cret@db1:5432,[::1]:5433,db3/evo"
                              "?target_session_attrs=read-write")
    assert "s3cret" not in str(url) + repr(url)
    assert DatabaseURL.parse(url.conninfo()).hosts == url.hosts
    chosen = DatabaseURL.parse("postgresql://u@a,b/evo?target_session_attrs=any")
    assert dict(chosen.options)["target_session_attrs"] == "any"  # the URL's own choice


def test_multi_host_keywords_pair_hosts_with_ports() -> None:
    url = DatabaseURL.parse("host=db1,db2 port=5432,5433 dbname=evo password='s3 cret'")
    assert url.hosts == (("db1", 5432), ("db2", 5433))
    assert "s3 cret" not in str(url) and "s3%20cret" not in str(url)
    assert DatabaseURL.parse("host=db1,db2 port=6000 dbname=evo").hosts == (
        ("db1", 6000), ("db2", 6000))
    with pytest.raises(ConfigurationError, match="'port' lists 3 ports for 2 hosts"):
        DatabaseURL.parse("host=db1,db2 port=1,2,3 dbname=evo")


def test_high_availability_options_are_genesis_own() -> None:
    url = DatabaseURL.parse("postgresql://u:pw@db1,db2/evo?read_hosts=db2:5433,db3"
                            "&max_read_lag=2.5&synchronous_commit=remote_apply")
    assert url.read_hosts == (("db2", 5433), ("db3", None))
    assert (url.max_read_lag, url.synchronous_commit) == (2.5, "remote_apply")
    for name in ("read_hosts", "max_read_lag", "synchronous_commit"):
        assert name not in url.conninfo() and name in str(url)
    reader = url.reader()
    assert reader is not None and reader.hosts == url.read_hosts
    assert "target_session_attrs" not in reader.conninfo() and reader.password == "pw"
    assert DatabaseURL.parse("postgresql://u@h/evo").reader() is None


@pytest.mark.parametrize(("query", "fragment"), [
    ("max_read_lag=soon", "max_read_lag must be a number of seconds >= 0, got 'soon'"),
    ("max_read_lag=-1", "max_read_lag must be a number of seconds >= 0"),
    ("synchronous_commit=always", "synchronous_commit must be one of off, local"),
    ("read_hosts=db2:99999", "read_hosts in DATABASE_URL: a port must be a number"),
])
def test_bad_high_availability_options_name_the_setting(query: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(fragment)) as caught:
        DatabaseURL.parse(f"postgresql://u:s3cret@db1,db2/evo?{query}")
    assert "s3cret" not in str(caught.value)


def test_bad_port_in_a_host_list_is_named_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="port must be a number") as caught:
        DatabaseURL.parse("postgresql://u:s3cret@db1:5432,db2:x/evo")
    assert "s3cret" not in str(caught.value)
