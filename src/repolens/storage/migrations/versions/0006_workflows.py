"""Workflows (issue 19): definitions, executions, their states, transitions and thoughts.

An execution's ``frontier`` is the JSON list of states still to run (with their inputs and
fan-out groups); it is rewritten in the same transaction that records a finished state, so a
killed process resumes exactly where the last committed state left it. ``job_id`` is the
public id of the job-queue row that currently runs the execution (a resume queues a new one).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

SQLITE = """CREATE TABLE IF NOT EXISTS workflows(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    project TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    yaml_config TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'Sequential',
    shared INTEGER NOT NULL DEFAULT 0,
    icon_url TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS workflows_project ON workflows(project, id);
CREATE TABLE IF NOT EXISTS workflow_executions(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    output TEXT,
    error TEXT NOT NULL DEFAULT '',
    project TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '{}',
    frontier TEXT NOT NULL DEFAULT '{}',
    job_id TEXT NOT NULL DEFAULT '',
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS workflow_executions_workflow ON workflow_executions(workflow_id, id);
CREATE INDEX IF NOT EXISTS workflow_executions_job ON workflow_executions(job_id);
CREATE TABLE IF NOT EXISTS workflow_states(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    execution_id INTEGER NOT NULL REFERENCES workflow_executions(id) ON DELETE CASCADE,
    task_key TEXT NOT NULL,
    state_id TEXT NOT NULL,
    task TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    preceding TEXT NOT NULL DEFAULT '[]',
    output TEXT,
    error TEXT NOT NULL DEFAULT '',
    runs INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    completed_at REAL,
    UNIQUE(execution_id, task_key)
);
CREATE TABLE IF NOT EXISTS workflow_transitions(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    execution_id INTEGER NOT NULL REFERENCES workflow_executions(id) ON DELETE CASCADE,
    from_state_id TEXT,
    to_state_id TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_transitions_execution ON workflow_transitions(execution_id, id);
CREATE TABLE IF NOT EXISTS workflow_thoughts(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    state_row_id INTEGER NOT NULL REFERENCES workflow_states(id) ON DELETE CASCADE,
    parent_id TEXT,
    author_name TEXT NOT NULL,
    author_type TEXT NOT NULL,
    input_text TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_thoughts_state ON workflow_thoughts(state_row_id, id);
"""

POSTGRES = (
    SQLITE.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    .replace("INTEGER NOT NULL REFERENCES", "BIGINT NOT NULL REFERENCES")
    .replace("REAL", "DOUBLE PRECISION")
    .replace("input_tokens INTEGER", "input_tokens BIGINT")
    .replace("output_tokens INTEGER", "output_tokens BIGINT")
)

TABLES = ("workflow_thoughts", "workflow_transitions", "workflow_states", "workflow_executions", "workflows")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    for table in TABLES:
        op.get_bind().exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
