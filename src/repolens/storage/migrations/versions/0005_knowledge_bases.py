"""Knowledge bases: a tree of folders and files per base, FAQs on files, website crawl
targets, and each workspace's client whitelist (both dialects).

A base's files live on disk under the data dir and are indexed through the base's own data
source (``source_id``), so nothing here duplicates the index: these rows are the tree, the
files' identities (size, digests) and what the index cannot know (FAQs, crawl settings).
Removing a data source removes its nodes (``ON DELETE CASCADE``), and a node its FAQs.
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE IF NOT EXISTS kb_nodes(
    id {ID},
    public_id TEXT NOT NULL UNIQUE,
    root_id {INT} NOT NULL,
    parent_id {INT} REFERENCES kb_nodes(id) ON DELETE CASCADE,
    workspace_id {INT} NOT NULL,
    source_id {INT} NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    size {INT} NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    index_sha TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT 'upload',
    origin_url TEXT NOT NULL DEFAULT '',
    created_at {REAL} NOT NULL,
    updated_at {REAL} NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS kb_nodes_sibling ON kb_nodes(parent_id, name);
CREATE INDEX IF NOT EXISTS kb_nodes_root ON kb_nodes(root_id, path);
CREATE TABLE IF NOT EXISTS kb_faqs(
    id {ID},
    node_id {INT} NOT NULL REFERENCES kb_nodes(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    ranges TEXT NOT NULL DEFAULT '[]',
    created_at {REAL} NOT NULL,
    updated_at {REAL} NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_faqs_node ON kb_faqs(node_id, id);
CREATE TABLE IF NOT EXISTS kb_crawl_targets(
    id {ID},
    folder_id {INT} NOT NULL REFERENCES kb_nodes(id) ON DELETE CASCADE,
    start_url TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{{}}',
    state TEXT NOT NULL DEFAULT 'idle',
    runs INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0,
    failures TEXT NOT NULL DEFAULT '[]',
    created_at {REAL} NOT NULL,
    updated_at {REAL} NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_crawl_targets_folder ON kb_crawl_targets(folder_id);
CREATE TABLE IF NOT EXISTS client_whitelist_modes(
    workspace_id {INT} PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS client_whitelist(
    workspace_id {INT} NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    external_user_id TEXT NOT NULL,
    PRIMARY KEY(workspace_id, external_user_id)
);
"""
# The column types each dialect spells its own way; the rest of the DDL is shared.
_TYPES = {
    "sqlite": {"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "INT": "INTEGER", "REAL": "REAL"},
    "postgresql": {"ID": "BIGSERIAL PRIMARY KEY", "INT": "BIGINT", "REAL": "DOUBLE PRECISION"},
}
TABLES = ("client_whitelist", "client_whitelist_modes", "kb_crawl_targets", "kb_faqs", "kb_nodes")


def upgrade() -> None:
    bind = op.get_bind()
    run_script(bind, _TABLES.format(**_TYPES[bind.dialect.name]))


def downgrade() -> None:
    bind = op.get_bind()
    cascade = " CASCADE" if bind.dialect.name == "postgresql" else ""
    for table in TABLES:
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}{cascade}")
