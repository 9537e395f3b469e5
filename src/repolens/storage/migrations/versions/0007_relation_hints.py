"""Relation hints: where the parser found a call's or base class's definition (issue 17).

Calls were matched by bare name at query time. Each edge now carries the parser's hint
(``parsing/resolve.py``): ``''`` a name match (languages without a resolver, and every edge
written before this revision), ``'?'`` unresolved (kept named, linked to nothing), or the
qualified name and module locators the edge resolves through. Both dialects add the
column; existing rows become name matches, which is what they were. The index fingerprint
changed with the parser, so sources re-index and gain hints on their next run.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # Idempotent, like the baseline: a database adopted without an alembic_version table may
    # already have the column (SQLite has no ADD COLUMN IF NOT EXISTS).
    if bind.dialect.name == "sqlite":
        columns = {row[1] for row in bind.exec_driver_sql("PRAGMA table_info(relations)")}
        if "hint" not in columns:
            bind.exec_driver_sql("ALTER TABLE relations ADD COLUMN hint TEXT NOT NULL DEFAULT ''")
    else:
        bind.exec_driver_sql("ALTER TABLE relations ADD COLUMN IF NOT EXISTS hint TEXT NOT NULL DEFAULT ''")


def downgrade() -> None:
    op.get_bind().exec_driver_sql("ALTER TABLE relations DROP COLUMN hint")
