"""Persistence for crackq: SQLAlchemy tables, sessions and queries (no Celery, no torch)."""
