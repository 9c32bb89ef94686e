"""Genesis: an async-first program database for LLM-driven program evolution."""

__version__ = "0.1.0"
