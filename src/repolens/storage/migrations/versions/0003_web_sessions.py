"""Web UI sessions (issue 22): the server-side half of a browser sign-in.

A session row holds a digest of the cookie's secret (never the secret), the principal it signs in
as (``key:<key id>`` now; ``user:<id>`` once local users exist), the session's CSRF token and its
expiry. Signing out deletes the row, so a stolen cookie dies with the session.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

SQLITE = """CREATE TABLE IF NOT EXISTS web_sessions(
    digest TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions(expires_at);
"""

POSTGRES = SQLITE.replace("REAL", "DOUBLE PRECISION")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE IF EXISTS web_sessions")
