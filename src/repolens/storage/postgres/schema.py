"""The PostgreSQL schema: the same tables as the SQLite file, in PostgreSQL's types.

Differences from SQLite, each for a reason:

* ``citext`` names: case-insensitive equality and order, as ``COLLATE NOCASE`` gives SQLite.
* Postings tables (``unit_terms``, ``file_terms``) instead of FTS5: one row per (term, document)
  with the term frequency per column and the document's length, all BM25 needs. Looked up by
  (term, source); deleted by file.
* ``files`` carries each file's lexical lengths (its own and its units'), so BM25's document
  counts and mean lengths for any set of sources are one small sum.
* ``vectors.vec`` is ``halfvec`` without a fixed dimension; each model gets its own HNSW
  expression index once its dimension is known (``PostgresStore._ensure_model``).
* ``content_generation`` is a sequence (see ``store.py``: why not a counter row).
"""

from __future__ import annotations

from typing import Any

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SEQUENCE IF NOT EXISTS content_generation;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    name CITEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    branch TEXT,
    commit_sha TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'New',
    state_reason TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    indexed_at DOUBLE PRECISION,
    file_count INTEGER NOT NULL DEFAULT 0,
    artifact_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files(
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    language TEXT,
    sha TEXT NOT NULL,
    size BIGINT NOT NULL,
    n_lines INTEGER NOT NULL,
    parser TEXT NOT NULL,
    content BYTEA NOT NULL,
    lex_tokens INTEGER NOT NULL DEFAULT 0,
    unit_docs INTEGER NOT NULL DEFAULT 0,
    unit_tokens INTEGER NOT NULL DEFAULT 0,
    UNIQUE(source_id, path)
);
CREATE TABLE IF NOT EXISTS artifacts(
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    file_id BIGINT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    ident TEXT,
    name CITEXT NOT NULL,
    qualified_name TEXT NOT NULL,
    symbol_kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL,
    doc TEXT NOT NULL,
    embed_key BIGINT
);
CREATE INDEX IF NOT EXISTS artifacts_file ON artifacts(file_id);
CREATE INDEX IF NOT EXISTS artifacts_name ON artifacts(source_id, name);
CREATE INDEX IF NOT EXISTS artifacts_embed_key ON artifacts(embed_key);
CREATE TABLE IF NOT EXISTS relations(
    from_id BIGINT NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    kind SMALLINT NOT NULL,
    target TEXT NOT NULL,
    line INTEGER NOT NULL,
    source_id BIGINT NOT NULL,
    PRIMARY KEY(from_id, kind, target, line)
);
CREATE INDEX IF NOT EXISTS relations_target ON relations(source_id, target, kind);
CREATE TABLE IF NOT EXISTS models(id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, dim INTEGER);
CREATE TABLE IF NOT EXISTS vectors(
    embed_key BIGINT NOT NULL,
    model INTEGER NOT NULL,
    vec HALFVEC NOT NULL,
    PRIMARY KEY(embed_key, model)
);
CREATE TABLE IF NOT EXISTS unit_terms(
    term TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    unit_id BIGINT NOT NULL,
    file_id BIGINT NOT NULL,
    tf_name SMALLINT NOT NULL,
    tf_body SMALLINT NOT NULL,
    doc_len INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS unit_terms_term ON unit_terms(term, source_id);
CREATE INDEX IF NOT EXISTS unit_terms_file ON unit_terms(file_id);
CREATE TABLE IF NOT EXISTS file_terms(
    term TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    file_id BIGINT NOT NULL,
    tf_path SMALLINT NOT NULL,
    tf_symbols SMALLINT NOT NULL,
    tf_body SMALLINT NOT NULL,
    doc_len INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS file_terms_term ON file_terms(term, source_id);
CREATE INDEX IF NOT EXISTS file_terms_file ON file_terms(file_id);
CREATE TABLE IF NOT EXISTS api_keys(
    id BIGSERIAL PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    plan TEXT NOT NULL,
    requests_per_hour INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS workspaces(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    name CITEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS workspace_members(
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    source_id BIGINT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    PRIMARY KEY(workspace_id, source_id)
);
CREATE TABLE IF NOT EXISTS jobs(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    source_id BIGINT REFERENCES sources(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'New',
    reason TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '',
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    percent DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    heartbeat_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_source ON jobs(source_id, id);
CREATE TABLE IF NOT EXISTS conversations(
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL,
    title TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_key ON conversations(key_id, updated_at);
CREATE TABLE IF NOT EXISTS messages(
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    citations TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, id);
CREATE TABLE IF NOT EXISTS key_usage(
    key_id TEXT PRIMARY KEY,
    chat_requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rate_windows(
    bucket TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(bucket, window_start)
);
"""

_SCHEMA_LOCK = 0x7265706D  # advisory lock id: replicas starting together create the schema once


def ensure_schema(conn: Any) -> None:
    """Create what is missing (idempotent; concurrent starters take turns)."""
    with conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        conn.execute(SCHEMA)
