"""Drop-in replacements for ShinkaEvolve 0.0.7 modules, backed by Genesis storage."""
