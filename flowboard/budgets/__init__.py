"""Spend limits per organisation: per day and per month, in the price table's units."""
