"""Compatibility layers: modules of other evolution frameworks on Genesis storage."""
