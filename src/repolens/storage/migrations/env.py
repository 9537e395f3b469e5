"""Alembic's entry point: runs the revisions on the connection ``migrations.upgrade`` opened
(and locked); there is no alembic.ini and no URL here."""

from __future__ import annotations

from alembic import context

from repolens.storage.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
# transaction_per_migration=False: every pending revision runs in the caller's one transaction.
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
