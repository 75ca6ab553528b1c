"""Stored records shared by a service and its store (no Flowboard imports but `schema`, `ids`)."""
