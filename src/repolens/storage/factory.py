"""Open the store the settings name: the only module that picks a storage backend."""

from __future__ import annotations

from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.sqlite.store import SqliteStore


def open_store(settings: Settings) -> Database:
    """The embedded SQLite store in the data directory (PostgreSQL comes in its own issue)."""
    return SqliteStore(settings.db_path)
