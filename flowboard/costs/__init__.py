"""Costs: the price table, units of a generation, estimates and recorded spend."""
