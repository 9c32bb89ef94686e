"""The opt-in import hook: ``import shinka.database`` (and its submodules) gets Genesis.

With the hook installed, ShinkaEvolve's own code, unchanged, imports
:mod:`genesis.compat.shinka` wherever it imports ``shinka.database``; the rest of
ShinkaEvolve (runner, LLM clients, evaluation) stays its own. Install it before ShinkaEvolve
is imported, either in Python::

    from genesis.compat.shinka import hook
    hook.install()

or for a whole command (and the processes it starts) with ``genesis shinka -- <command>``,
which puts :mod:`genesis.compat.shinka.boot` (a ``sitecustomize``) on ``PYTHONPATH``.
A ``shinka.database`` submodule that Genesis does not provide fails to import with an error
saying so, never by silently falling back to ShinkaEvolve's SQLite code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIAS", "TARGET", "install", "installed", "uninstall"]

ALIAS = "shinka.database"
TARGET = "genesis.compat.shinka"
_PROVIDED = ("async_dbase", "dbase", "display", "inspirations", "islands", "prompt_dbase")


class _AliasLoader(importlib.abc.Loader):
    """Loads an aliased name by importing its Genesis module and putting it in its place."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a throwaway module: exec_module swaps in the real one

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns whatever sys.modules holds for the name afterwards.
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``shinka.database[.x]`` to ``genesis.compat.shinka[.x]``."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        rest = fullname[len(ALIAS):]
        if rest and rest[1:] not in _PROVIDED:
            raise ModuleNotFoundError(
                f"{fullname} is ShinkaEvolve's own module; with the Genesis hook installed "
                f"shinka.database is Genesis, which provides {', '.join(_PROVIDED)}",
                name=fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(TARGET + rest),
                                               is_package=not rest)


_FINDER = _AliasFinder()


def installed() -> bool:
    """True if the hook is active in this interpreter."""
    return _FINDER in sys.meta_path


def install() -> None:
    """Make ``shinka.database`` resolve to Genesis from now on (idempotent).

    Raises RuntimeError if ShinkaEvolve's own ``shinka.database`` was already imported:
    objects made from it would not be Genesis', so the hook must come first.
    """
    loaded = sys.modules.get(ALIAS)
    if loaded is not None and not loaded.__name__.startswith(TARGET):
        raise RuntimeError("ShinkaEvolve's shinka.database is already imported; install the "
                           "Genesis hook before anything imports ShinkaEvolve")
    if not installed():
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Remove the hook and forget the aliased modules (idempotent)."""
    if installed():
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        if sys.modules[name].__name__.startswith(TARGET):
            del sys.modules[name]
