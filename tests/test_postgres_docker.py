"""docker-compose.yml, docker/Dockerfile and .env.example fit together (no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # in the dev extra: these checks never skip

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return dict(pairs)


def test_postgres_service(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16-alpine"
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        assert postgres["environment"][name].startswith(f"${{{name}")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    data, init = postgres["volumes"]
    volume, _, target = data.partition(":")
    assert volume in compose["volumes"] and target == "/var/lib/postgresql/data"
    source, target, mode = init.split(":")
    assert source == "./docker/init-db.sql" and (ROOT / source).is_file()
    assert target.startswith("/docker-entrypoint-initdb.d/") and target.endswith(".sql")
    assert mode == "ro"


def test_genesis_service(compose: dict[str, Any]) -> None:
    genesis = compose["services"]["genesis"]
    assert (ROOT / genesis["build"]["context"] / genesis["build"]["dockerfile"]).is_file()
    assert genesis["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert genesis["environment"]["DATABASE_URL"].startswith("${DATABASE_URL")
    assert genesis["command"] == ["genesis", "demo"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'CMD ["genesis", "demo"]' in dockerfile


def test_env_example_documents_every_variable() -> None:
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    documented = _env_example()
    assert used <= set(documented)
    assert {"DATABASE_URL", "GENESIS_RUN", "GENESIS_DATA_DIR", "PGSSLMODE"} <= set(documented)
    assert documented["DATABASE_URL"].startswith("postgresql://")
    assert f":{documented['POSTGRES_PASSWORD']}@" in documented["DATABASE_URL"]
