"""Reading an older-schema SQLite file as it is: the current schema as TEMP views over it.

A read-only store must not upgrade a ShinkaEvolve file (or an older Genesis file). Instead
each of its connections gets TEMP objects, which live in that connection's memory only and
which SQLite resolves before the file's own tables when a name is not qualified:

* a view ``programs`` over ``main.programs``: every column as it is, plus ``rowid`` (the
  insertion order the engine pages by), each optional legacy column the file lacks as the
  value the upgrade adds it with, ``embedding_vec`` packed from the JSON ``embedding`` by a
  Python function (the upgrade's own :func:`legacy_embedding_blob`), and ``source_job_id``
  from the metadata JSON (the upgrade's own expression);
* a view ``islands`` counting the programs per island, as the upgrade fills that table;
* an empty TEMP table for each legacy table the file lacks (an empty file lacks them all).

Every read of the engine and of the operations then runs unchanged and returns what it
returns once the file is upgraded, with one exception: where a legacy file holds two
programs of one ``source_job_id``, the upgrade indexes the job on the first only, while the
view shows it on both. Reads that an index serves on an upgraded file (best program, top-k,
an island's programs) scan the table here, which suits reading a finished run; a run that
is continued is opened writable, and so upgraded.
"""

from __future__ import annotations

import aiosqlite

from genesis.database.backends.sqlite_schema import (
    ISLAND_COUNTS,
    LEGACY_OPTIONAL_COLUMNS,
    LEGACY_TABLES,
    job_id_of,
    legacy_embedding_blob,
)

__all__ = ["EMBEDDING_FUNCTION", "present_current_schema", "view_statements"]

EMBEDDING_FUNCTION = "genesis_embedding_blob"
_NO_PROGRAMS = "genesis_no_programs"  # stands in for the programs table of an empty file


def _temporary(table: str, name: str | None = None) -> str:
    """The CREATE statement of a legacy table, as an empty TEMP table (renamed to ``name``)."""
    ddl = LEGACY_TABLES[table].replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1)
    return ddl if name is None else ddl.replace(f" {table} (", f" {name} (", 1)


def view_statements(source: str, tables: set[str], columns: set[str]) -> list[str]:
    """Statements presenting the current schema over a file's ``tables``.

    ``source`` is the programs table to read (``main.programs``) and ``columns`` its columns.
    """
    derived = ["rowid AS rowid", "*"]
    for name, definition in LEGACY_OPTIONAL_COLUMNS.items():
        if name not in columns:
            derived.append(f"{definition.partition(' DEFAULT ')[2] or 'NULL'} AS {name}")
    if "embedding_vec" not in columns:
        embedding = f"{EMBEDDING_FUNCTION}(embedding)" if "embedding" in columns else "NULL"
        derived.append(f"{embedding} AS embedding_vec")
    if "source_job_id" not in columns:
        job = job_id_of("metadata") if "metadata" in columns else "NULL"
        derived.append(f"{job} AS source_job_id")
    statements = [f"CREATE TEMP VIEW programs AS SELECT {', '.join(derived)} FROM {source}"]
    if "islands" not in tables:
        statements.append("CREATE TEMP VIEW islands AS "
                          + ISLAND_COUNTS.format(programs="temp.programs"))
    statements += [_temporary(table) for table in LEGACY_TABLES
                   if table != "programs" and table not in tables]
    return statements


async def present_current_schema(conn: aiosqlite.Connection) -> None:
    """Give a read-only connection to an older file the current schema, as TEMP views."""
    rows = await conn.execute_fetchall("SELECT name FROM main.sqlite_master WHERE type = 'table'")
    tables = {row[0] for row in rows}
    schema, table = "main", "programs"
    if "programs" not in tables:
        await conn.execute(_temporary("programs", _NO_PROGRAMS))
        schema, table = "temp", _NO_PROGRAMS
    columns = {row[1] for row in await conn.execute_fetchall(
        f"PRAGMA {schema}.table_info({table})")}
    await conn.create_function(EMBEDDING_FUNCTION, 1, legacy_embedding_blob, deterministic=True)
    for statement in view_statements(f"{schema}.{table}", tables, columns):
        await conn.execute(statement)
