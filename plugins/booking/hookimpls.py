"""Hook implementations of the booking plugin: the only module pluggy sees."""
