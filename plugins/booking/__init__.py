"""The booking plugin (work in progress)."""
