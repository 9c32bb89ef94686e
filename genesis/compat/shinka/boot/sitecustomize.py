"""Started by ``genesis shinka``: install the Genesis hook in every Python process.

This folder is put first on ``PYTHONPATH``, so Python imports this module at start-up in
the command and in every Python process it launches. A ``sitecustomize`` that this one
shadows is imported afterwards, as if this one were not there.
"""

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _install_hook() -> None:
    try:
        from genesis.compat.shinka.hook import install
    except ImportError as exc:
        sys.stderr.write(f"genesis shinka: this Python ({sys.executable}) cannot import "
                         f"genesis ({exc}); install genesis-evolve in the environment that "
                         "runs ShinkaEvolve\n")
        raise SystemExit(2) from None
    install()


def _chain() -> None:
    """Import the next ``sitecustomize`` on the path, the one this module shadows."""
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
        try:
            importlib.import_module("sitecustomize")
        except ModuleNotFoundError as exc:
            if exc.name != "sitecustomize":
                raise
    finally:
        sys.path[:] = saved
        if module is not None:
            sys.modules.setdefault("sitecustomize", module)


_install_hook()
_chain()
