"""Propagated headers of a running workflow execution (issue 19).

An execution started with ``propagate_headers`` forwards the caller's ``X-*`` headers (minus the
blocklist) to the MCP servers of its assistant and tool states, also when a worker on another
host resumes it after a crash; so they live in the database, in a column of their own that no
API returns. They are kept only while the execution may still run: the write that ends it
(Succeeded, Failed, Aborted) or pauses it (Interrupted) sets the column back to NULL, and a
resume brings new ones only if it asks to (``?propagate_headers=true``).
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # Idempotent, like the baseline (SQLite has no ADD COLUMN IF NOT EXISTS).
    if bind.dialect.name == "sqlite":
        columns = {row[1] for row in bind.exec_driver_sql("PRAGMA table_info(workflow_executions)")}
        if "forwarded_headers" not in columns:
            bind.exec_driver_sql("ALTER TABLE workflow_executions ADD COLUMN forwarded_headers TEXT")
    else:
        bind.exec_driver_sql("ALTER TABLE workflow_executions ADD COLUMN IF NOT EXISTS forwarded_headers TEXT")


def downgrade() -> None:
    op.get_bind().exec_driver_sql("ALTER TABLE workflow_executions DROP COLUMN forwarded_headers")
