"""Unit tests for URL parsing, password hiding and the configuration resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesis.database import ConfigurationError, DatabaseConfig, DatabaseURL, resolve_url


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
