"""Runs of nodes and flows: state, persistence and scheduling."""
