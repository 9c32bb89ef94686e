"""The program database: records, configuration, errors, and storage backends."""

from genesis.database.backends import create_store
from genesis.database.config import DatabaseConfig
from genesis.database.engine import AsyncProgramDatabase
from genesis.database.errors import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseError,
    DatabaseLockedError,
    DuplicateJobError,
    DuplicateProgramError,
    GenesisError,
    IntegrityError,
    InvalidArgumentError,
    InvalidProgramError,
    MaintenanceError,
    NotAProgramDatabaseError,
    OperationalError,
    ReadOnlyError,
    SchemaError,
)
from genesis.database.facade import ProgramDatabase
from genesis.database.program import Program
from genesis.database.protocol import ProgramStore, StoreReader, StoreWriter
from genesis.database.url import DatabaseURL, resolve_url

__all__ = [
    "AsyncProgramDatabase",
    "ConfigurationError",
    "ConnectionLostError",
    "DatabaseConfig",
    "DatabaseError",
    "DatabaseLockedError",
    "DatabaseURL",
    "DuplicateJobError",
    "DuplicateProgramError",
    "GenesisError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidProgramError",
    "MaintenanceError",
    "NotAProgramDatabaseError",
    "OperationalError",
    "Program",
    "ProgramDatabase",
    "ProgramStore",
    "ReadOnlyError",
    "SchemaError",
    "StoreReader",
    "StoreWriter",
    "create_store",
    "resolve_url",
]
