"""Codeer batches with their webhook events, and agent evaluations (issue 21).

Batches: one row per batch and one per item. An item is claimed by the job that runs it
(``claimed_by``: the job's public id) and finished by one conditional update, so a killed job's
items go back to ``pending`` and none is recorded twice. ``workspace_id`` is copied onto each item
so the claim can share slots fairly between workspaces without a join.

Webhook events: one row per event (its ``public_id`` is the id receivers de-duplicate on), with
every delivery attempt recorded in ``webhook_attempts``; ``next_attempt_at`` doubles as the lease
of a dispatcher that is sending it.

Evaluations: labels, evaluators (LLM-as-judge), cases with per-evaluator rubrics, and one result
per (case, evaluator, agent version), rewritten by each run.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

SQLITE = """CREATE TABLE IF NOT EXISTS batches(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    principal TEXT NOT NULL DEFAULT '{}',
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    webhook TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    cancelled_at REAL
);
CREATE INDEX IF NOT EXISTS batches_owner ON batches(workspace_id, id);
CREATE TABLE IF NOT EXISTS batch_items(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    message TEXT NOT NULL,
    external_user_id TEXT,
    name TEXT,
    attachments TEXT NOT NULL DEFAULT '[]',
    history_id INTEGER,
    state TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    chat_id INTEGER,
    message_id INTEGER,
    response TEXT,
    usage TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    UNIQUE(batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_items_queue ON batch_items(state, workspace_id, id);
CREATE INDEX IF NOT EXISTS batch_items_batch ON batch_items(batch_id, seq);
CREATE TABLE IF NOT EXISTS webhook_events(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    give_up_at REAL NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE(batch_id, event)
);
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events(state, next_attempt_at);
CREATE TABLE IF NOT EXISTS webhook_attempts(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT NOT NULL DEFAULT '',
    duration_ms REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhook_attempts_event ON webhook_attempts(event_id, id);
CREATE TABLE IF NOT EXISTS eval_labels(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE(workspace_id, name)
);
CREATE TABLE IF NOT EXISTS eval_evaluators(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    judge_model TEXT,
    template TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_cases(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    input TEXT NOT NULL,
    expected_output TEXT NOT NULL DEFAULT '',
    rubric TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    label_ids TEXT NOT NULL DEFAULT '[]',
    attachment_ids TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_cases_agent ON eval_cases(agent_id, id);
CREATE TABLE IF NOT EXISTS eval_case_evaluators(
    case_id INTEGER NOT NULL REFERENCES eval_cases(id) ON DELETE CASCADE,
    evaluator_id INTEGER NOT NULL REFERENCES eval_evaluators(id) ON DELETE CASCADE,
    rubric TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(case_id, evaluator_id)
);
CREATE TABLE IF NOT EXISTS eval_results(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    case_id INTEGER NOT NULL REFERENCES eval_cases(id) ON DELETE CASCADE,
    evaluator_id INTEGER NOT NULL REFERENCES eval_evaluators(id) ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    job_id TEXT NOT NULL DEFAULT '',
    score REAL,
    reason TEXT NOT NULL DEFAULT '',
    output TEXT NOT NULL DEFAULT '',
    tool_calls TEXT NOT NULL DEFAULT '[]',
    usage TEXT NOT NULL DEFAULT '{}',
    elapsed_s REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE(case_id, evaluator_id, version_id)
);
CREATE INDEX IF NOT EXISTS eval_results_job ON eval_results(job_id, state);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages(message_id);
"""

POSTGRES = (
    SQLITE.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    .replace("INTEGER NOT NULL REFERENCES", "BIGINT NOT NULL REFERENCES")
    .replace("workspace_id INTEGER", "workspace_id BIGINT")
    .replace("history_id INTEGER", "history_id BIGINT")
    .replace("chat_id INTEGER", "chat_id BIGINT")
    .replace("message_id INTEGER", "message_id BIGINT")
    .replace("REAL", "DOUBLE PRECISION")
)

TABLES = (
    "eval_results",
    "eval_case_evaluators",
    "eval_cases",
    "eval_evaluators",
    "eval_labels",
    "webhook_attempts",
    "webhook_events",
    "batch_items",
    "batches",
)


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP INDEX IF EXISTS messages_message_id")
    for table in TABLES:
        op.get_bind().exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
