"""Assistants, the agent turns stored beside conversations, and background tasks, both dialects.

An assistant's definition is one JSON document (``agents/model.py`` owns its shape) beside the
columns lists and visibility filter on: organisation, owner, name, slug, project, shared. A
conversation an assistant took part in gets a row in ``agent_conversations``; each assistant
answer keeps its thought tree and timings in ``agent_turns`` (the text stays in ``messages``,
so every chat surface reads the same history). ``agent_tasks`` are turns run in the background.
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

_TABLES = """CREATE TABLE IF NOT EXISTS assistants(
    id {serial} PRIMARY KEY{autoincrement},
    public_id TEXT NOT NULL UNIQUE,
    organization TEXT NOT NULL,
    owner TEXT NOT NULL,
    owner_name TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    project TEXT NOT NULL DEFAULT '',
    shared INTEGER NOT NULL DEFAULT 1,
    definition TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    UNIQUE(organization, project, slug)
);
CREATE INDEX IF NOT EXISTS assistants_visible ON assistants(organization, updated_at);
CREATE TABLE IF NOT EXISTS agent_conversations(
    conversation_id {bigint} PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    assistant_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_turns(
    id {serial} PRIMARY KEY{autoincrement},
    conversation_id {bigint} NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    thoughts TEXT NOT NULL DEFAULT '[]',
    elapsed_s {real} NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_turns_conversation ON agent_turns(conversation_id, id);
CREATE TABLE IF NOT EXISTS agent_tasks(
    id {serial} PRIMARY KEY{autoincrement},
    public_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    owner_name TEXT NOT NULL DEFAULT '',
    assistant_id TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    final_output TEXT NOT NULL DEFAULT '',
    current_step TEXT NOT NULL DEFAULT '',
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
"""
SQLITE = _TABLES.format(serial="INTEGER", autoincrement=" AUTOINCREMENT", real="REAL", bigint="INTEGER")
POSTGRES = _TABLES.format(serial="BIGSERIAL", autoincrement="", real="DOUBLE PRECISION", bigint="BIGINT")
TABLES = ("agent_tasks", "agent_turns", "agent_conversations", "assistants")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
