"""Persistence of flows, executions and assets; every query is scoped by organisation."""
