"""Compatibility surfaces: other programs' database APIs, each a thin mapping onto the engine.

``genesis.compat.shinka`` is ShinkaEvolve's ``shinka.database`` package; its import hook lets
ShinkaEvolve's own runner use it unchanged (``genesis shinka -- python run.py``).
"""
