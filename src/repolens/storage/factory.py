"""Open the store the settings name: the only module that picks a storage backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repolens.errors import StorageError
from repolens.settings import Settings
from repolens.storage.base import IndexDatabase

if TYPE_CHECKING:
    from repolens.storage.base import Database


def open_store(settings: Settings, *, resident: bool = False) -> Database:
    """The shared PostgreSQL database if ``REPOLENS_DATABASE_URL`` names one, else the SQLite file.

    ``resident``: the process lives on and answers many searches (the server), so the SQLite
    store keeps its lexical postings in memory; PostgreSQL ranks in the database either way.
    """
    if settings.uses_postgres:
        try:
            from repolens.storage.postgres.store import PostgresStore
        except ImportError as exc:
            raise StorageError(
                f"REPOLENS_DATABASE_URL names PostgreSQL but its driver is missing ({exc.name}): "
                "pip install 'repolens[postgres]'"
            ) from exc
        return PostgresStore(settings.database_url)
    from repolens.storage.sqlite.store import SqliteStore

    return SqliteStore(settings.db_path, resident=resident)


def open_index(settings: Settings) -> IndexDatabase:
    """The index and registry alone, for a command that only searches: SQLite's index store (none
    of the other stores' code is imported), else the whole PostgreSQL store."""
    if settings.uses_postgres:
        return open_store(settings)
    from repolens.storage.sqlite.store import SqliteIndexStore

    return SqliteIndexStore(settings.db_path)
