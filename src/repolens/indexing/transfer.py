"""``repolens migrate-data``: move an embedded install (the SQLite file) into PostgreSQL.

Everything a user or a client can name survives with the same public ids: data sources, API
keys (their digests, so every issued key keeps working), local users (their password hashes, and
the secret that signs their sign-in tokens, so issued tokens keep working), uploaded files,
workspaces, conversations with their messages (and the thoughts of assistant turns), assistants
and their tasks, usage, the organization. The index moves too: files, artifacts and relations are
re-written through the PostgreSQL write path (which builds its postings from the same tokens), and
vectors are copied by content key, so nothing is re-parsed from the repositories and nothing is
re-embedded. Job history stays behind. The target must hold no data sources yet: merging two
installs is not a migration.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repolens.domain import Artifact, Relation
from repolens.errors import Conflict, NotFound
from repolens.indexing.units import file_tokens
from repolens.storage.agents import ASSISTANT_COLUMNS, TASK_COLUMNS
from repolens.storage.base import NewArtifact, NewFile
from repolens.storage.postgres.store import PostgresStore
from repolens.storage.relational import ARTIFACT_COLUMNS, RELATION_KINDS, unpack

VECTOR_BATCH = 2_000  # vectors per write: a few MB per transaction
FILE_BATCH = 500  # files per write transaction of the target


@dataclass(slots=True)
class TransferReport:
    """What was moved."""

    sources: int = 0
    files: int = 0
    artifacts: int = 0
    vectors: int = 0
    keys: int = 0
    users: int = 0
    uploads: int = 0
    workspaces: int = 0
    conversations: int = 0
    assistants: int = 0


def _rows(conn: sqlite3.Connection, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def _one(cursor: Any) -> int:
    """The single integer a RETURNING or count query gave."""
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def migrate_data(
    sqlite_path: Path, target: PostgresStore, *, on_progress: Callable[[str], None] = lambda _: None
) -> TransferReport:
    """Copy the SQLite install at ``sqlite_path`` into the (empty) PostgreSQL ``target``."""
    if not sqlite_path.is_file():
        raise NotFound(f"no SQLite database at {sqlite_path}")
    if target.list_sources():
        raise Conflict("the target database already holds data sources; migrate into an empty one", [])
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    report = TransferReport()
    try:
        meta = dict(
            _rows(
                src,
                "SELECT key, value FROM meta WHERE key IN ('org_id', 'org_name', 'index_version') OR key LIKE 'secret:%'",
            )
        )
        with target._write(content=False) as conn:
            for key, value in meta.items():
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        source_ids = _sources(src, target, report, on_progress)
        _vectors(src, target, report, on_progress)
        _registry(src, target, source_ids, report)
    finally:
        src.close()
    return report


def _sources(
    src: sqlite3.Connection, target: PostgresStore, report: TransferReport, on_progress: Callable[[str], None]
) -> dict[int, int]:
    columns = (
        "public_id, name, location, branch, commit_sha, state, state_reason, description, created_at, "
        "indexed_at, file_count, artifact_count"
    )
    mapping: dict[int, int] = {}
    for row in _rows(src, f"SELECT id, {columns} FROM sources ORDER BY id"):
        with target._write() as conn:
            marks = ", ".join("?" * (len(row) - 1))
            new_id = _one(conn.execute(f"INSERT INTO sources({columns}) VALUES ({marks}) RETURNING id", row[1:]))
        mapping[row[0]] = new_id
        files = _rows(
            src,
            "SELECT id, path, language, sha, size, n_lines, parser, content FROM files WHERE source_id = ? ORDER BY id",
            (row[0],),
        )
        for start in range(0, len(files), FILE_BATCH):
            batch = files[start : start + FILE_BATCH]
            target.replace_files(new_id, upserts=list(_new_files(src, batch)), deletes=[], tokenize=file_tokens)
            report.files += len(batch)
        report.artifacts += _one(target._conn.execute("SELECT count(*) FROM artifacts WHERE source_id = ?", (new_id,)))
        # replace_files recounted from the rows; put back the source's own state and counts as they were
        target.update_source(new_id, state=row[6], state_reason=row[7], file_count=row[11], artifact_count=row[12])
        report.sources += 1
        on_progress(f"{row[2]}: {len(files)} files")
    return mapping


def _new_files(src: sqlite3.Connection, files: list[tuple[Any, ...]]) -> Iterator[NewFile]:
    for file_id, path, language, sha, size, n_lines, parser, blob in files:
        content = unpack(blob)
        rows = _rows(
            src,
            f"SELECT {ARTIFACT_COLUMNS}, a.embed_key FROM artifacts a JOIN files f ON f.id = a.file_id "
            "WHERE a.file_id = ? ORDER BY a.id",
            (file_id,),
        )
        arts = [Artifact(*r[:-1]) for r in rows]
        keys = {r[0]: r[-1] for r in rows}
        by_id = {a.id: a for a in arts}
        relations = [
            Relation(
                by_id[from_id].qualified_name if by_id[from_id].kind == "Symbol" else None,
                RELATION_KINDS[kind],
                target,
                line,
                hint,
            )
            for from_id, kind, target, line, hint in _rows(
                src,
                "SELECT r.from_id, r.kind, r.target, r.line, r.hint FROM relations r JOIN artifacts a ON a.id = r.from_id "
                "WHERE a.file_id = ? ORDER BY r.from_id, r.line",
                (file_id,),
            )
            if from_id in by_id
        ]
        yield NewFile(
            path=path,
            language=language,
            sha=sha,
            size=size,
            n_lines=n_lines,
            parser=parser,
            content=content,
            tokens=file_tokens(path, content.split("\n"), arts),
            artifacts=[
                NewArtifact(
                    a.kind,
                    a.ident,
                    a.name,
                    a.qualified_name,
                    a.symbol_kind,
                    a.parent,
                    a.start_line,
                    a.end_line,
                    a.signature,
                    a.doc,
                )
                for a in arts
            ],
            relations=relations,
            embed_keys=[keys.get(a.id) for a in arts],
        )


def _vectors(
    src: sqlite3.Connection, target: PostgresStore, report: TransferReport, on_progress: Callable[[str], None]
) -> None:
    for model_id, name in _rows(src, "SELECT id, name FROM models"):
        cursor = src.execute("SELECT embed_key, vec FROM vectors WHERE model = ? ORDER BY id", (model_id,))
        while batch := cursor.fetchmany(VECTOR_BATCH):
            target.put_vectors(name, [(int(k), bytes(v)) for k, v in batch])
            report.vectors += len(batch)
        on_progress(f"vectors of {name}: {report.vectors}")


def _registry(src: sqlite3.Connection, target: PostgresStore, source_ids: dict[int, int], report: TransferReport) -> None:
    key_columns = (
        "key_id, digest, name, role, plan, requests_per_hour, concurrency, scopes, created_at, "
        "expires_at, revoked_at, last_used_at"
    )
    with target._write(content=False) as conn:
        for row in _rows(src, f"SELECT {key_columns} FROM api_keys ORDER BY id"):
            conn.execute(f"INSERT INTO api_keys({key_columns}) VALUES ({', '.join('?' * len(row))})", row)
            report.keys += 1
        user_columns = "public_id, email, name, password_hash, role, scopes, created_at, disabled_at, last_login_at"
        for row in _rows(src, f"SELECT {user_columns} FROM users ORDER BY id"):
            conn.execute(f"INSERT INTO users({user_columns}) VALUES ({', '.join('?' * len(row))})", row)
            report.users += 1
        upload_columns = "public_id, owner, name, content_type, size, data, created_at"
        for row in _rows(src, f"SELECT {upload_columns} FROM uploads ORDER BY id"):
            conn.execute(f"INSERT INTO uploads({upload_columns}) VALUES ({', '.join('?' * len(row))})", row)
            report.uploads += 1
        for ws_id, public_id, name, description, created in _rows(
            src, "SELECT id, public_id, name, description, created_at FROM workspaces ORDER BY id"
        ):
            new_ws = _one(
                conn.execute(
                    "INSERT INTO workspaces(public_id, name, description, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                    (public_id, name, description, created),
                )
            )
            old_members = _rows(src, "SELECT source_id FROM workspace_members WHERE workspace_id = ?", (ws_id,))
            members = [(new_ws, source_ids[m]) for (m,) in old_members if m in source_ids]
            conn.executemany("INSERT INTO workspace_members(workspace_id, source_id) VALUES (?, ?)", members)
            report.workspaces += 1
        for conv in _rows(
            src, "SELECT id, public_id, key_id, title, scope, created_at, updated_at FROM conversations ORDER BY id"
        ):
            new_conv = _one(
                conn.execute(
                    "INSERT INTO conversations(public_id, key_id, title, scope, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    conv[1:],
                )
            )
            conn.executemany(
                "INSERT INTO messages(conversation_id, message_id, role, content, citations, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (new_conv, *m)
                    for m in _rows(
                        src,
                        "SELECT message_id, role, content, citations, created_at "
                        "FROM messages WHERE conversation_id = ? ORDER BY id",
                        (conv[0],),
                    )
                ],
            )
            for (assistant_id,) in _rows(
                src, "SELECT assistant_id FROM agent_conversations WHERE conversation_id = ?", (conv[0],)
            ):
                conn.execute(
                    "INSERT INTO agent_conversations(conversation_id, assistant_id) VALUES (?, ?)", (new_conv, assistant_id)
                )
            conn.executemany(
                "INSERT INTO agent_turns(conversation_id, message_id, assistant_id, thoughts, elapsed_s, prompt_tokens, "
                "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (new_conv, *t)
                    for t in _rows(
                        src,
                        "SELECT message_id, assistant_id, thoughts, elapsed_s, prompt_tokens, completion_tokens, "
                        "created_at FROM agent_turns WHERE conversation_id = ? ORDER BY id",
                        (conv[0],),
                    )
                ],
            )
            report.conversations += 1
        for table, columns in (("assistants", ASSISTANT_COLUMNS), ("agent_tasks", TASK_COLUMNS)):
            for row in _rows(src, f"SELECT {columns} FROM {table} ORDER BY id"):
                conn.execute(f"INSERT INTO {table}({columns}) VALUES ({', '.join('?' * len(row))})", row)
                report.assistants += table == "assistants"
        for row in _rows(src, "SELECT key_id, chat_requests, prompt_tokens, completion_tokens FROM key_usage"):
            conn.execute(
                "INSERT INTO key_usage(key_id, chat_requests, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?)", row
            )


def report_json(report: TransferReport) -> str:
    """The report as one JSON line."""
    return json.dumps({k: getattr(report, k) for k in report.__dataclass_fields__})
