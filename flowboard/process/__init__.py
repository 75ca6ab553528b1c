"""This process's own life: its children, its signals, its liveness."""
