"""The orders plugin (work in progress)."""
