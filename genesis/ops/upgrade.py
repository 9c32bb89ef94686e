"""Schema upgrades of existing runs: ``genesis db upgrade``.

Opening a store upgrades its schema; this module does it on purpose and reports the versions.
It never creates anything: a missing SQLite file or PostgreSQL run is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis.database.backends import create_store
from genesis.database.protocol import UpgradeProgress
from genesis.database.url import DatabaseURL
from genesis.ops.stores import as_url, ops_config, postgres_version, upgrade_file

__all__ = ["UpgradeResult", "upgrade_run"]


@dataclass(frozen=True)
class UpgradeResult:
    """The schema version of a run before and after an upgrade."""

    url: str
    before: int
    after: int

    @property
    def changed(self) -> bool:
        """True when the upgrade changed the schema."""
        return self.before != self.after


async def upgrade_run(url: DatabaseURL | str, progress: UpgradeProgress | None = None
                      ) -> UpgradeResult:
    """Bring an existing run (or ShinkaEvolve file) to the current schema version.

    The programs indexed for code search on the way are counted on ``progress``.
    """
    url = as_url(url)
    if url.is_sqlite:
        before, after = await upgrade_file(url, progress)
        return UpgradeResult(str(url), before, after)
    before = await postgres_version(url)
    store = create_store(url, ops_config())
    store.upgrade_progress = progress  # type: ignore[attr-defined]
    async with store:
        after = await store.schema_version()
    return UpgradeResult(str(url), before, after)
