"""The whole database on one SQLite file: the index and registry of ``sqlite/store.py`` with the
other stores' shared SQL (``storage/database.py``)."""

from __future__ import annotations

from repolens.storage.database import SqlStore
from repolens.storage.sqlite.store import SqliteIndexStore


class SqliteStore(SqliteIndexStore, SqlStore):
    """``Database`` on one SQLite file."""
