"""HTTP layer: parse, call a service, serialise. No business rules here."""
