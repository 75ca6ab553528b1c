"""The in-process event bus and its typed events."""
