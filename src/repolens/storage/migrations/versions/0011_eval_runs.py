"""Who started each evaluation run, so its job runs the agent as them (issue 21).

One row per run, keyed by its job's public id: the starter's key id, name, role, plan and scopes,
the same snapshot a batch keeps. The eval job runs the agent with that key as it is when each
result runs (a key revoked since runs nothing more), so the agent's tools see what the starter's
key sees, no more.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None

SQLITE = """CREATE TABLE IF NOT EXISTS eval_runs(
    job_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

POSTGRES = SQLITE.replace("REAL", "DOUBLE PRECISION")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP TABLE IF EXISTS eval_runs")
