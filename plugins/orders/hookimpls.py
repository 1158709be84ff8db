"""Hook implementations of the orders plugin: the only module pluggy sees."""
