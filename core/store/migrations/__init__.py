"""Alembic migrations of the store. Every schema change is a new file in ``versions/``."""
