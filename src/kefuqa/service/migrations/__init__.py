"""Alembic migrations of the service schema (run by `kefuqa.service.db.migrate`)."""
