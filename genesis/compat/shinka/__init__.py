"""ShinkaEvolve's ``shinka.database`` on Genesis: the names its runner and tools import.

Everything here maps ShinkaEvolve 0.0.7's API onto the Genesis engine; the engine's own API
(``genesis.database``) is unaffected. To run ShinkaEvolve itself on it, let
``shinka.database`` resolve to this package: ``genesis shinka -- <your launch command>``, or
:func:`genesis.compat.shinka.hook.install` before ShinkaEvolve is imported.
"""

from genesis.compat.shinka.async_dbase import AsyncProgramDatabase
from genesis.compat.shinka.dbase import DatabaseConfig, Program, ProgramDatabase
from genesis.compat.shinka.prompt_dbase import (
    SystemPrompt,
    SystemPromptConfig,
    SystemPromptDatabase,
    create_system_prompt,
)

__all__ = [
    "AsyncProgramDatabase",
    "DatabaseConfig",
    "Program",
    "ProgramDatabase",
    "SystemPrompt",
    "SystemPromptConfig",
    "SystemPromptDatabase",
    "create_system_prompt",
]
