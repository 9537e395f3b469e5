"""Local users and uploaded files (issue 18).

``users``: people who sign in with an email and a password.

A user belongs to the install's organization, as every key does, and carries the same access
vocabulary as a key: a role (``admin`` | ``member``) and scopes (data source public ids; empty =
every data source). Only an Argon2id hash of the password is stored. ``disabled_at`` turns a
user off without deleting what the user owns; sign-in and every token of the user stop at once
(tokens are checked against this row on every request).

``uploads``: files a client uploads to refer to later (CodeMie's ``file_names`` on a chat turn),
kept in the database so that every replica of a scale-out install serves them; each is owned by
the account (key or person) that uploaded it and read back only by it.

Emails are unique whatever their case: ``COLLATE NOCASE`` on SQLite, ``citext`` on PostgreSQL
(the extension the baseline already creates).
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

SQLITE = """
CREATE TABLE IF NOT EXISTS users(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    disabled_at REAL,
    last_login_at REAL
);
CREATE TABLE IF NOT EXISTS uploads(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""

POSTGRES = """
CREATE TABLE IF NOT EXISTS users(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    email CITEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION,
    last_login_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS uploads(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    for table in ("uploads", "users"):
        op.get_bind().exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
