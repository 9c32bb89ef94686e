"""Support for running ShinkaEvolve's own evolution runner end to end with a fake LLM."""
