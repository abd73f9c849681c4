"""Persistence: the schema, the engine, and every query, named in one place per table."""
