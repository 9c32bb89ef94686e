"""``DatabaseConfig``: the legacy option names and defaults, plus Genesis' own settings."""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from genesis.database.errors import ConfigurationError

__all__ = [
    "ARCHIVE_CRITERIA",
    "ARCHIVE_STRATEGIES",
    "ISLAND_SPAWN_STRATEGIES",
    "ISLAND_STRATEGIES",
    "PARENT_STRATEGIES",
    "DatabaseConfig",
]

PARENT_STRATEGIES = ("weighted", "power_law", "beam_search", "best_of_n", "sequential")
ISLAND_STRATEGIES = ("uniform", "equal", "proportional", "weighted")
ARCHIVE_STRATEGIES = ("fitness", "crowding")
ISLAND_SPAWN_STRATEGIES = ("initial", "best", "archive_random")
ARCHIVE_CRITERIA = ("combined_score", "loc", "lloc", "complexity", "maintainability", "nesting")
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _default_archive_criteria() -> dict[str, float]:
    return {"combined_score": 1.0}


@dataclass
class DatabaseConfig:
    """Settings of a program database; every field has a documented default.

    The first block are ShinkaEvolve's names and defaults, so ``DatabaseConfig(**old_yaml)``
    keeps working. The second block are Genesis' settings (URL, run, pool, batching).
    """

    db_path: str | None = None
    num_islands: int = 2
    archive_size: int = 40
    elite_selection_ratio: float = 0.3
    num_archive_inspirations: int = 1
    num_top_k_inspirations: int = 1
    migration_interval: int = 10
    migration_rate: float = 0.0
    island_elitism: bool = True
    enforce_island_separation: bool = True
    island_selection_strategy: str = "uniform"
    enable_dynamic_islands: bool = False
    stagnation_threshold: int = 100
    island_spawn_strategy: str = "initial"
    island_spawn_subtree_size: int = 1
    parent_selection_strategy: str = "weighted"
    exploitation_alpha: float = 1.0
    exploitation_ratio: float = 0.2
    parent_selection_lambda: float = 10.0
    num_beams: int = 5
    archive_selection_strategy: str = "fitness"
    archive_criteria: dict[str, float] = field(default_factory=_default_archive_criteria)
    max_stdout_log_chars: int | None = None

    # Genesis settings.
    database_url: str | None = None
    run_name: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 30.0
    sqlite_readers: int = 4
    busy_timeout: float = 60.0
    sqlite_synchronous: str = "FULL"
    sqlite_legacy_embedding: bool | None = None
    batch_max_size: int = 512
    write_retry_timeout: float = 30.0
    max_code_bytes: int = 8 * 1024 * 1024
    strict_numbers: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> DatabaseConfig:
        """Build a config from a mapping; unknown keys are an error naming the key."""
        return cls(**dict(options))

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a plain dict (the password in database_url is masked)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["archive_criteria"] = dict(self.archive_criteria)
        if self.database_url:
            from genesis.database.url import DatabaseURL

            values["database_url"] = str(DatabaseURL.parse(self.database_url, "database_url"))
        if isinstance(self.db_path, str):
            from genesis.database.url import shown_location

            values["db_path"] = shown_location(self.db_path, "db_path")
        return values

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"DatabaseConfig({shown})"


_dataclass_init = DatabaseConfig.__init__


@functools.wraps(_dataclass_init)
def _init_checking_names(self: DatabaseConfig, *args: Any, **options: Any) -> None:
    known = {f.name for f in fields(DatabaseConfig)}
    for key in options:
        if key not in known:
            hint = difflib.get_close_matches(str(key), sorted(known), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigurationError(f"DatabaseConfig has no option {key!r}{suggestion}")
    _dataclass_init(self, *args, **options)


DatabaseConfig.__init__ = _init_checking_names  # type: ignore[method-assign]


def _fail(name: str, problem: str) -> None:
    raise ConfigurationError(f"DatabaseConfig.{name}: {problem}")


# Upper bounds beyond which a run cannot work, and why.
_MAXIMA: dict[str, tuple[int, str]] = {
    "num_islands": (1024, "the first program is copied to every island"),
    "archive_size": (100_000, "every sample reads the whole archive"),
    "num_archive_inspirations": (1000, "each is a program read per sample"),
    "num_top_k_inspirations": (1000, "each is a program read per sample"),
    "num_beams": (100_000, "beams are ranked per sample"),
    "island_spawn_subtree_size": (100_000, "a spawned island copies that many programs"),
    "sqlite_readers": (64, "each reader is a connection and a thread"),
    "pool_min_size": (1000, "each is a server connection"),
    "pool_max_size": (1000, "each is a server connection"),
    "batch_max_size": (100_000, "a batch is one transaction held in memory"),
    "max_code_bytes": (256 * 1024 * 1024, "programs are held in memory whole"),
}


def _check_int(config: DatabaseConfig, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"expected an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        _fail(name, f"must be >= {minimum}, got {value}")
    if name in _MAXIMA and value > _MAXIMA[name][0]:
        maximum, reason = _MAXIMA[name]
        _fail(name, f"must be <= {maximum:,} ({reason}), got {value:,}")


def _check_float(
    config: DatabaseConfig, name: str, low: float | None = None, high: float | None = None
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        _fail(name, f"must be finite, got {value}")
    if low is not None and value < low:
        _fail(name, f"must be >= {low}, got {value}")
    if high is not None and value > high:
        _fail(name, f"must be <= {high}, got {value}")
    setattr(config, name, float(value))


def _check_choice(config: DatabaseConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value in choices:
        return
    hint = difflib.get_close_matches(str(value), choices, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    _fail(name, f"unknown value {value!r}; choose one of {', '.join(choices)}{suggestion}")


def _check_bool(config: DatabaseConfig, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, bool):
        _fail(name, f"expected true or false, got {type(value).__name__} {value!r}")


def _check_criteria(config: DatabaseConfig) -> None:
    criteria = config.archive_criteria
    if not isinstance(criteria, Mapping) or not criteria:
        _fail("archive_criteria", "expected a non-empty mapping of criterion -> weight")
    checked: dict[str, float] = {}
    for key, weight in criteria.items():
        if key not in ARCHIVE_CRITERIA:
            hint = difflib.get_close_matches(str(key), ARCHIVE_CRITERIA, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            _fail("archive_criteria",
                  f"unknown criterion {key!r}; choose from {', '.join(ARCHIVE_CRITERIA)}"
                  f"{suggestion}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            _fail("archive_criteria", f"weight of {key!r} must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight == 0:
            _fail("archive_criteria", f"weight of {key!r} must be finite and non-zero")
        checked[key] = float(weight)
    config.archive_criteria = checked


def _validate(config: DatabaseConfig) -> None:
    if config.db_path is not None and not isinstance(config.db_path, str):
        config.db_path = str(config.db_path)
    for name in ("num_islands", "archive_size", "num_archive_inspirations",
                 "num_top_k_inspirations", "migration_interval"):
        _check_int(config, name, 0)
    for name in ("stagnation_threshold", "island_spawn_subtree_size", "num_beams",
                 "pool_min_size", "pool_max_size", "sqlite_readers", "batch_max_size",
                 "max_code_bytes"):
        _check_int(config, name, 1)
    _check_int(config, "max_stdout_log_chars", 0, optional=True)
    if config.seed is not None:
        _check_int(config, "seed", 0)
    if config.pool_max_size < config.pool_min_size:
        _fail("pool_max_size", f"must be >= pool_min_size ({config.pool_min_size})")
    for name in ("elite_selection_ratio", "migration_rate", "exploitation_ratio"):
        _check_float(config, name, 0.0, 1.0)
    _check_float(config, "exploitation_alpha")
    _check_float(config, "parent_selection_lambda", 0.0)
    for name in ("pool_timeout", "busy_timeout", "write_retry_timeout"):
        _check_float(config, name, 0.0)
    for name in ("island_elitism", "enforce_island_separation", "enable_dynamic_islands",
                 "strict_numbers"):
        _check_bool(config, name)
    if config.sqlite_legacy_embedding is not None:
        _check_bool(config, "sqlite_legacy_embedding")
    _check_choice(config, "parent_selection_strategy", PARENT_STRATEGIES)
    _check_choice(config, "island_selection_strategy", ISLAND_STRATEGIES)
    _check_choice(config, "archive_selection_strategy", ARCHIVE_STRATEGIES)
    _check_choice(config, "island_spawn_strategy", ISLAND_SPAWN_STRATEGIES)
    if isinstance(config.sqlite_synchronous, str):
        config.sqlite_synchronous = config.sqlite_synchronous.upper()
    _check_choice(config, "sqlite_synchronous", SQLITE_SYNCHRONOUS)
    _check_criteria(config)
    if config.database_url is not None:
        from genesis.database.url import DatabaseURL

        DatabaseURL.parse(config.database_url, "database_url")
    if config.run_name is not None:
        from genesis.database.url import validate_run_name

        validate_run_name(config.run_name, "DatabaseConfig.run_name")
