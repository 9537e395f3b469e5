"""Agent versions, chats and message feedback (Codeer's agents, chats and histories, issue 20).

* ``assistant_versions``: every definition an assistant had, numbered from 1, each ``draft``,
  ``published`` (at most one per assistant) or ``archived`` (published once, replaced since).
  Assistants made before this revision get their current definition as version ``version``,
  published: they were live, and stay so.
* ``chats``: a conversation opened through a chat API, with the workspace it belongs to and
  the external user it is for (whitelist mode checks that id; histories filter on it). The
  text stays in ``messages`` and the thoughts in ``agent_turns``, as for every agent turn.
* ``message_feedback``: thumbs (``helpful``/``improve``) and a comment on one answer, by the
  row id of its message.
* ``chat_attachments``: the uploaded files the n-th question of a chat came with (the model
  reads their text with the question; the listing names them).
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

_TABLES = """CREATE TABLE IF NOT EXISTS assistant_versions(
    id {serial} PRIMARY KEY{autoincrement},
    public_id TEXT NOT NULL UNIQUE,
    assistant_id TEXT NOT NULL REFERENCES assistants(public_id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    definition TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'draft',
    created_at {real} NOT NULL,
    published_at {real},
    UNIQUE(assistant_id, number)
);
CREATE TABLE IF NOT EXISTS chats(
    conversation_id {bigint} PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    workspace_id {bigint} NOT NULL,
    assistant_id TEXT NOT NULL,
    external_user_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chats_workspace ON chats(workspace_id, conversation_id);
CREATE TABLE IF NOT EXISTS message_feedback(
    id {serial} PRIMARY KEY{autoincrement},
    conversation_id {bigint} NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_row {bigint} NOT NULL,
    kind TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    external_user_id TEXT NOT NULL DEFAULT '',
    created_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS message_feedback_conversation ON message_feedback(conversation_id, id);
CREATE TABLE IF NOT EXISTS chat_attachments(
    id {serial} PRIMARY KEY{autoincrement},
    conversation_id {bigint} NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn INTEGER NOT NULL,
    upload_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_attachments_conversation ON chat_attachments(conversation_id, turn);
"""
SQLITE = _TABLES.format(serial="INTEGER", autoincrement=" AUTOINCREMENT", real="REAL", bigint="INTEGER")
POSTGRES = _TABLES.format(serial="BIGSERIAL", autoincrement="", real="DOUBLE PRECISION", bigint="BIGINT")
# Existing assistants: their live definition becomes their published version. The version id
# is drawn from the assistant's own id so the statement stays one portable INSERT ... SELECT.
BACKFILL = (
    "INSERT INTO assistant_versions(public_id, assistant_id, number, definition, note, status, created_at, published_at) "
    "SELECT public_id || '-v' || CAST(version AS TEXT), public_id, version, definition, '', 'published', updated_at, "
    "updated_at FROM assistants WHERE public_id NOT IN (SELECT assistant_id FROM assistant_versions)"
)
TABLES = ("chat_attachments", "message_feedback", "chats", "assistant_versions")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, SQLITE if bind.dialect.name == "sqlite" else POSTGRES)
    bind.exec_driver_sql(BACKFILL)


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
