"""Unit tests for DatabaseConfig: legacy defaults and clear validation errors."""

from __future__ import annotations

import pytest

from genesis.database import ConfigurationError, DatabaseConfig

LEGACY_DEFAULTS = {
    "db_path": None, "num_islands": 2, "archive_size": 40, "elite_selection_ratio": 0.3,
    "num_archive_inspirations": 1, "num_top_k_inspirations": 1, "migration_interval": 10,
    "migration_rate": 0.0, "island_elitism": True, "enforce_island_separation": True,
    "island_selection_strategy": "uniform", "enable_dynamic_islands": False,
    "stagnation_threshold": 100, "island_spawn_strategy": "initial",
    "parent_selection_strategy": "weighted", "exploitation_alpha": 1.0,
    "exploitation_ratio": 0.2, "parent_selection_lambda": 10.0, "num_beams": 5,
    "archive_selection_strategy": "fitness", "archive_criteria": {"combined_score": 1.0},
    "max_stdout_log_chars": None,
}


def test_legacy_defaults() -> None:
    config = DatabaseConfig()
    for name, value in LEGACY_DEFAULTS.items():
        assert getattr(config, name) == value, name


def test_old_yaml_dict_still_works() -> None:
    old_yaml = {"db_path": "evolution_db.sqlite", "num_islands": 4, "archive_size": 20,
                "migration_interval": 5, "migration_rate": 0.1,
                "parent_selection_strategy": "power_law", "exploitation_alpha": 1.5}
    config = DatabaseConfig(**old_yaml)
    assert config.num_islands == 4 and config.parent_selection_strategy == "power_law"
    assert DatabaseConfig.from_dict(old_yaml) == config


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"parent_selection_strategy": "wieghted"}, "did you mean 'weighted'"),
        ({"island_selection_strategy": "random"}, "island_selection_strategy"),
        ({"archive_selection_strategy": "novelty"}, "archive_selection_strategy"),
        ({"num_islands": "4"}, "num_islands: expected an integer"),
        ({"archive_size": -1}, "archive_size: must be >= 0"),
        ({"migration_rate": 1.5}, "migration_rate: must be <= 1.0"),
        ({"island_elitism": "yes"}, "island_elitism: expected true or false"),
        ({"archive_criteria": {"speed": 1.0}}, "unknown criterion 'speed'"),
        ({"archive_criteria": {"combined_score": float("nan")}}, "finite"),
        ({"pool_min_size": 5, "pool_max_size": 2}, "pool_max_size"),
        ({"database_url": "mysql://x@y/z"}, "unsupported scheme"),
        ({"run_name": "Has Spaces"}, "run_name"),
        ({"sqlite_synchronous": "sometimes"}, "sqlite_synchronous"),
    ],
)
def test_invalid_options_name_the_field(options: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DatabaseConfig(**options)
    assert fragment in str(info.value)


def test_unknown_option_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match=r"no option 'num_island'.*'num_islands'"):
        DatabaseConfig.from_dict({"num_island": 3})
    with pytest.raises(ConfigurationError, match=r"no option 'num_island'.*'num_islands'"):
        DatabaseConfig(num_island=3)  # type: ignore[call-arg]


def test_repr_hides_the_password() -> None:
    config = DatabaseConfig(database_url="postgresql://u:topsecret@h/db")
    assert "topsecret" not in repr(config)
    assert "topsecret" not in str(config.to_dict())
