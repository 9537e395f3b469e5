"""Schema migrations for both backends, with Alembic (revisions in ``versions/``).

Each store checks its schema when it opens: one ``SELECT`` of ``alembic_version`` compared with
``HEAD``, so a CLI call on an up-to-date database never imports Alembic or SQLAlchemy (half a
second of imports). Only a database behind ``HEAD`` (or new) runs ``upgrade``, which:

* on SQLite takes the write lock (``BEGIN IMMEDIATE``) for the whole upgrade, so two processes
  opening a new file at once migrate it once;
* on PostgreSQL takes a transaction-scoped advisory lock, so replicas and workers starting
  together migrate once, and runs every revision in that one transaction (DDL is transactional
  there): a failed upgrade leaves the previous schema, never half of the next one.

Adding a revision: a new file in ``versions/`` whose ``down_revision`` is the current ``HEAD``,
then set ``HEAD`` to its ``revision``; ``tests/test_migrations.py`` checks that they agree.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from repolens.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

HEAD = "0011"  # the newest revision in versions/
VERSION_TABLE = "alembic_version"
SCRIPT_LOCATION = Path(__file__).parent
_PG_MIGRATION_LOCK = 0x7265706D  # advisory lock id ("repm"): one migrator per database at a time

Dialect = Literal["sqlite", "postgresql"]
_DRIVERS: dict[Dialect, str] = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}

log = logging.getLogger(__name__)


class Migration(NamedTuple):
    """What an upgrade did: the revision before (None for a new database) and after."""

    before: str | None
    after: str


def upgrade(dialect: Dialect, connect: Callable[[], Any]) -> Migration | None:
    """Bring the database that ``connect`` opens (a new DB-API connection per call) to ``HEAD``;
    None if it already was (another process may have just done it)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    before: str | None = None
    with _locked(dialect, connect) as (conn, config):
        before = MigrationContext.configure(conn).get_current_revision()
        if before == HEAD:
            return None
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            raise StorageError(
                f"the database schema is at revision {before!r}, which this version of repolens does not know "
                f"(it knows up to {HEAD!r}): was it written by a newer repolens?"
            ) from exc
    log.info("database schema upgraded from %s to %s", before or "nothing", HEAD)
    return Migration(before, HEAD)


def downgrade(dialect: Dialect, connect: Callable[[], Any], revision: str) -> None:
    """Take the schema back to ``revision`` (``"base"``: nothing). For operators and tests."""
    from alembic import command

    with _locked(dialect, connect) as (_, config):
        command.downgrade(config, revision)


@contextmanager
def _locked(dialect: Dialect, connect: Callable[[], Any]) -> Iterator[tuple[Connection, Config]]:
    """A connection in a transaction that holds the migration lock, and an Alembic config that
    runs on it; commits on success."""
    import sqlalchemy as sa
    from alembic.config import Config

    engine = sa.create_engine(f"{_DRIVERS[dialect]}://", creator=connect, poolclass=sa.pool.NullPool)
    if dialect == "sqlite":
        # The DB-API connection runs in autocommit mode (isolation_level=None), so the
        # transaction is begun here, with the write lock taken up front.
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    try:
        with engine.begin() as conn:
            if dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            yield conn, config
    except sa.exc.DBAPIError as exc:
        raise StorageError(f"schema migration failed: {exc.orig}") from exc
    finally:
        engine.dispose()


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, split where SQLite's own parser sees one end (quotes,
    comments and trigger bodies respected); the DDL of both dialects is plain enough for it."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"unterminated SQL statement: {pending.strip()[:80]!r}")


def run_script(conn: Connection, script: str) -> None:
    """Run every statement of ``script`` on ``conn``, inside its transaction (SQLite's
    ``executescript`` would commit first), straight to the driver (no bind-parameter parsing)."""
    for statement in statements(script):
        conn.exec_driver_sql(statement)
