"""Baseline: the schema as it stood when migrations began (storage format 6), both dialects.

Every statement is ``... IF NOT EXISTS``, so a database made before migrations existed (a
SQLite file with ``meta.schema_version = 6``, a PostgreSQL database from the first scale-out
release) upgrades to this revision unchanged: the upgrade only records it. A SQLite file of an
older storage format loses its derived data (files, artifacts, postings, vectors) and keeps its
sources, keys, workspaces and conversations; its sources are marked for re-indexing.

SQLite notes: the FTS5 tables are contentless (tokens come from ``parsing.tokens``, see
``storage/sqlite/store.py``); ``AUTOINCREMENT`` ids are never reused, so a posting that outlived
its row is never attributed to another; vectors are content-addressed by the hash of the
embedded text.

PostgreSQL differs from SQLite, each for a reason:

* ``citext`` names: case-insensitive equality and order, as ``COLLATE NOCASE`` gives SQLite.
* Postings tables (``unit_terms``, ``file_terms``) instead of FTS5: one row per (term, document)
  with the term frequency per column and the document's length, all BM25 needs. Looked up by
  (term, source); deleted by file.
* ``files`` carries each file's lexical lengths (its own and its units'), so BM25's document
  counts and mean lengths for any set of sources are one small sum.
* ``vectors.vec`` is ``halfvec`` without a fixed dimension; each model gets its own HNSW
  expression index once its dimension is known (``PostgresStore._ensure_model``: runtime, not a
  migration, since models come and go with settings).
* ``content_generation`` is a sequence (see ``storage/postgres/store.py``: why not a counter row).

Revision files are history: never edit one that has shipped; add the next revision instead.
"""

from __future__ import annotations

from alembic import op

from repolens.storage.migrations import run_script

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

FTS_TOKENIZE = "porter unicode61 tokenchars '_'"
LEGACY_FORMAT = "6"  # meta.schema_version written by releases before migrations
# What an older storage format loses: everything re-indexing rebuilds.
LEGACY_DERIVED = ("relations", "vectors", "models", "artifacts", "files", "units_fts", "files_fts")

SQLITE = f"""CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    location TEXT NOT NULL,
    branch TEXT,
    commit_sha TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'New',
    state_reason TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    indexed_at REAL,
    file_count INTEGER NOT NULL DEFAULT 0,
    artifact_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    language TEXT,
    sha TEXT NOT NULL,
    size INTEGER NOT NULL,
    n_lines INTEGER NOT NULL,
    parser TEXT NOT NULL,
    content BLOB NOT NULL,
    UNIQUE(source_id, path)
);
CREATE TABLE IF NOT EXISTS artifacts(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    ident TEXT,  -- NULL when it equals qualified_name (most symbols): saves a copy per row
    name TEXT NOT NULL,
    qualified_name TEXT NOT NULL,
    symbol_kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL,
    doc TEXT NOT NULL,
    embed_key INTEGER
);
CREATE INDEX IF NOT EXISTS artifacts_file ON artifacts(file_id);
CREATE INDEX IF NOT EXISTS artifacts_name ON artifacts(source_id, name COLLATE NOCASE);
-- Clustered by the artifact an edge starts in (no rowid, no second copy for that lookup).
CREATE TABLE IF NOT EXISTS relations(
    from_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    kind INTEGER NOT NULL,
    target TEXT NOT NULL,
    line INTEGER NOT NULL,
    source_id INTEGER NOT NULL,
    PRIMARY KEY(from_id, kind, target, line)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_target ON relations(source_id, target, kind);
-- Vectors are content-addressed by the hash of the text that was embedded: a unit whose
-- text did not change keeps its vector through re-parses, renames and copies. A rowid table
-- (append-only, dense pages) with the hash in an index: clustering 400-byte rows on a random
-- hash would split pages on every insert and leave the table a third empty.
CREATE TABLE IF NOT EXISTS models(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS vectors(
    id INTEGER PRIMARY KEY,
    embed_key INTEGER NOT NULL,
    model INTEGER NOT NULL,  -- models.id: a name per row would cost 20 bytes x every unit
    vec BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors(embed_key, model);
CREATE VIRTUAL TABLE IF NOT EXISTS units_fts USING fts5(
    src, name, body, content='', tokenize="{FTS_TOKENIZE}"
);
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5(
    src, path, symbols, body, content='', tokenize="{FTS_TOKENIZE}"
);

CREATE TABLE IF NOT EXISTS api_keys(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL UNIQUE,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    plan TEXT NOT NULL,
    requests_per_hour INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE TABLE IF NOT EXISTS workspaces(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workspace_members(
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    PRIMARY KEY(workspace_id, source_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    source_id INTEGER REFERENCES sources(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'New',
    reason TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    percent REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL
);
CREATE TABLE IF NOT EXISTS conversations(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL,
    title TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_key ON conversations(key_id, updated_at);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    citations TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, id);
CREATE TABLE IF NOT EXISTS key_usage(
    key_id TEXT PRIMARY KEY,
    chat_requests INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_source ON jobs(source_id, id);
"""

POSTGRES = """CREATE EXTENSION IF NOT EXISTS vector;
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

SQLITE_TABLES = (
    "units_fts",
    "files_fts",
    "vectors",
    "models",
    "relations",
    "artifacts",
    "files",
    "messages",
    "conversations",
    "key_usage",
    "jobs",
    "workspace_members",
    "workspaces",
    "api_keys",
    "sources",
    "meta",
)
POSTGRES_TABLES = ("unit_terms", "file_terms", "rate_windows", *SQLITE_TABLES[2:])


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _forget_older_sqlite_format()
        run_script(bind, SQLITE)
        bind.exec_driver_sql("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        bind.exec_driver_sql("DELETE FROM meta WHERE key = 'schema_version'")  # alembic_version rules now
    else:
        run_script(bind, POSTGRES)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in SQLITE_TABLES:
            bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    else:
        for table in POSTGRES_TABLES:
            bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
        bind.exec_driver_sql("DROP SEQUENCE IF EXISTS content_generation")


def _forget_older_sqlite_format() -> None:
    bind = op.get_bind()
    if not bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
        return  # a new file
    row = bind.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or row[0] == LEGACY_FORMAT:
        return
    for table in LEGACY_DERIVED:
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    bind.exec_driver_sql("DELETE FROM meta WHERE key = 'index_version'")
    bind.exec_driver_sql(
        "UPDATE sources SET state = 'New', state_reason = 'storage format changed: re-index needed', "
        "file_count = 0, artifact_count = 0"
    )
