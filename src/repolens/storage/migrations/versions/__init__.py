"""Alembic revisions, oldest first by ``down_revision``; the newest is ``migrations.HEAD``."""
