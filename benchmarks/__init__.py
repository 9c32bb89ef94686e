"""Reproducible benchmarks of the Genesis storage engine (run ``python -m benchmarks``)."""
