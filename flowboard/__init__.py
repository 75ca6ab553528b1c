"""Flowboard: a node-based creative canvas service."""

__version__ = "0.1.0"
