"""Keys, workspaces, jobs, conversations and usage: the ``Registry`` half of both SQL backends.

The SQL here is the dialect SQLite and PostgreSQL share (``ON CONFLICT``, ``RETURNING``);
``?`` placeholders and ``COLLATE NOCASE`` are translated for PostgreSQL by its connection
(its name columns are ``citext``). These tables are not derived data: a storage-format change
of the index never drops them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from repolens.domain import (
    ApiKey,
    Conversation,
    Job,
    KeyRole,
    Message,
    MessageRole,
    Upload,
    Usage,
    User,
    WebSession,
    Workspace,
)
from repolens.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from repolens.storage.relational import Conn


_KEY_COLUMNS = (
    "id, key_id, digest, name, role, plan, requests_per_hour, concurrency, scopes, created_at, expires_at, "
    "revoked_at, last_used_at"
)
_JOB_COLUMNS = (
    "id, public_id, source_id, kind, state, reason, phase, done, total, percent, attempts, created_at, "
    "started_at, finished_at, heartbeat_at"
)
_UPDATABLE_JOB_FIELDS = frozenset(
    {"state", "reason", "phase", "done", "total", "percent", "heartbeat_at", "finished_at", "started_at"}
)
UNFINISHED = ("New", "Processing")


def _key(row: tuple[Any, ...]) -> ApiKey:
    values = list(row)
    values[8] = tuple(json.loads(values[8] or "[]"))
    return ApiKey(*values)


def _job(row: tuple[Any, ...]) -> Job:
    return Job(*row)


_USER_COLUMNS = "id, public_id, email, name, password_hash, role, scopes, created_at, disabled_at, last_login_at"
_UPDATABLE_USER_FIELDS = frozenset({"password_hash", "name", "role", "scopes", "disabled_at", "last_login_at"})


def _user(row: tuple[Any, ...]) -> User:
    values = list(row)
    values[6] = tuple(json.loads(values[6] or "[]"))
    return User(*values)


_CONVERSATION_COLUMNS = "id, public_id, key_id, title, scope, created_at, updated_at"


def _conversation(row: tuple[Any, ...]) -> Conversation:
    values = list(row)
    values[4] = tuple(json.loads(values[4] or "[]"))
    return Conversation(*values)


class RegistryMixin:
    """``Registry`` over a backend's connection and write transaction."""

    # The exception a backend raises for a UNIQUE or FOREIGN KEY violation.
    _integrity_errors: tuple[type[Exception], ...] = ()
    # Row locking for the job queue where the backend has it (SQLite's writer lock serializes).
    _skip_locked = ""

    def _serialize_claims(self, conn: Conn) -> None:
        """Make concurrent claims take turns (SQLite: its single writer already does)."""

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    # -- keys -----------------------------------------------------------------------------

    def create_key(
        self,
        *,
        key_id: str,
        digest: str,
        name: str,
        role: KeyRole,
        plan: str,
        requests_per_hour: int,
        concurrency: int,
        scopes: Sequence[str],
        expires_at: float | None,
    ) -> ApiKey:
        """Store a new key."""
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO api_keys(key_id, digest, name, role, plan, requests_per_hour, concurrency, scopes, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    digest,
                    name,
                    role,
                    plan,
                    requests_per_hour,
                    concurrency,
                    json.dumps(list(scopes)),
                    time.time(),
                    expires_at,
                ),
            )
        key = self.get_key(key_id)
        assert key is not None
        return key

    def get_key(self, key_id: str) -> ApiKey | None:
        """A key by its public id (revoked ones included)."""
        row = self._conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return _key(row) if row else None

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [_key(r) for r in self._conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id")]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?", (time.time(), key_id)
            )
        return cur.rowcount > 0

    def organization(self, default_name: str) -> tuple[str, str, bool]:
        """(public id, name, created now) of the install's organization, created on first call."""
        with self._write(content=False) as conn:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('org_id', 'org_name')").fetchall())
            if "org_id" in rows:
                return rows["org_id"], rows.get("org_name", default_name), False
            public_id = secrets.token_hex(12)
            # Replicas starting together race here: exactly one insert wins, the others read it.
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                [("org_id", public_id), ("org_name", default_name)],
            )
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('org_id', 'org_name')").fetchall())
        return rows["org_id"], rows.get("org_name", default_name), rows["org_id"] == public_id

    def install_secret(self, name: str) -> str:
        """A random secret of this install, made on first use and shared by every replica."""
        key = f"secret:{name}"
        with self._write(content=False) as conn:
            # Replicas asking together race here: exactly one insert wins, the others read it.
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, secrets.token_hex(32))
            )
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    # -- users ----------------------------------------------------------------------------

    def create_user(self, *, email: str, name: str, password_hash: str, role: KeyRole, scopes: Sequence[str]) -> User:
        """Store a new user (Conflict if the email is taken, whatever its case)."""
        public_id = secrets.token_hex(12)
        with self._write(content=False) as conn:
            # Checked first rather than caught: PostgreSQL aborts the whole transaction on a violation.
            if conn.execute("SELECT 1 FROM users WHERE email = ? COLLATE NOCASE", (email,)).fetchone():
                raise Conflict(f"a user with email {email!r} already exists", [email])
            try:
                conn.execute(
                    "INSERT INTO users(public_id, email, name, password_hash, role, scopes, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (public_id, email, name, password_hash, role, json.dumps(list(scopes)), time.time()),
                )
            except self._integrity_errors:  # a concurrent create of the same email won the race
                raise Conflict(f"a user with email {email!r} already exists", [email]) from None
        user = self.get_user(public_id)
        assert user is not None
        return user

    def get_user(self, email_or_id: str) -> User | None:
        """A user by public id, else by email (case-insensitive); disabled ones included."""
        columns = f"SELECT {_USER_COLUMNS} FROM users"
        row = self._conn.execute(f"{columns} WHERE public_id = ?", (email_or_id,)).fetchone()
        if row is None:
            row = self._conn.execute(f"{columns} WHERE email = ? COLLATE NOCASE", (email_or_id,)).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        """Every user, oldest first."""
        return [_user(r) for r in self._conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")]

    def update_user(self, user_id: int, **fields: object) -> None:
        """Change ``password_hash``, ``name``, ``role``, ``scopes``, ``disabled_at`` or ``last_login_at``."""
        unknown = set(fields) - _UPDATABLE_USER_FIELDS
        if unknown:
            raise ValueError(f"not user fields: {sorted(unknown)}")
        if not fields:
            return
        values = [json.dumps(list(cast("Sequence[str]", v))) if k == "scopes" else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write(content=False) as conn:
            conn.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*values, user_id))

    # -- uploads --------------------------------------------------------------------------

    def create_upload(self, *, owner: str, name: str, content_type: str, data: bytes) -> Upload:
        """Store an uploaded file."""
        public_id = secrets.token_hex(12)
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO uploads(public_id, owner, name, content_type, size, data, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (public_id, owner, name, content_type, len(data), data, time.time()),
            )
        row = self.get_upload(public_id)
        assert row is not None
        return row

    def get_upload(self, public_id: str) -> Upload | None:
        """An uploaded file by its public id."""
        row = self._conn.execute(
            "SELECT id, public_id, owner, name, content_type, size, data, created_at FROM uploads WHERE public_id = ?",
            (public_id,),
        ).fetchone()
        if row is None:
            return None
        values = list(row)
        values[6] = bytes(values[6])  # PostgreSQL hands BYTEA back as memoryview
        return Upload(*values)

    # -- workspaces -----------------------------------------------------------------------

    def _workspace(self, row: tuple[Any, ...]) -> Workspace:
        members = tuple(
            r[0]
            for r in self._conn.execute(
                "SELECT source_id FROM workspace_members WHERE workspace_id = ? ORDER BY source_id", (row[0],)
            )
        )
        return Workspace(row[0], row[1], row[2], row[3], row[4], members)

    def create_workspace(self, *, name: str, description: str, source_ids: Sequence[int]) -> Workspace:
        """A new workspace (Conflict if the name is taken by a workspace or a repository)."""
        public_id = secrets.token_hex(12)
        with self._write(content=False) as conn:
            if conn.execute("SELECT 1 FROM sources WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
                raise Conflict(f"a repository is already named {name!r}; pick another workspace name", [name])
            if conn.execute("SELECT 1 FROM workspaces WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
                raise Conflict(f"a workspace named {name!r} already exists", [name])
            try:
                row = conn.execute(
                    "INSERT INTO workspaces(public_id, name, description, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                    (public_id, name, description, time.time()),
                ).fetchone()
            except self._integrity_errors:  # a concurrent create of the same name won the race
                raise Conflict(f"a workspace named {name!r} already exists", [name]) from None
            self._set_members(conn, int(row[0]), source_ids)
        ws = self.get_workspace(public_id)
        assert ws is not None
        return ws

    @staticmethod
    def _set_members(conn: Conn, workspace_id: int, source_ids: Sequence[int]) -> None:
        conn.execute("DELETE FROM workspace_members WHERE workspace_id = ?", (workspace_id,))
        wanted = sorted(set(source_ids))
        if not wanted:
            return
        # Checked first rather than caught: PostgreSQL aborts the whole transaction on a violation.
        marks = ",".join("?" * len(wanted))
        found = conn.execute(f"SELECT count(*) FROM sources WHERE id IN ({marks})", tuple(wanted)).fetchone()
        if int(found[0]) != len(wanted):
            raise InvalidInput("a workspace can only hold existing repositories")
        conn.executemany(
            "INSERT INTO workspace_members(workspace_id, source_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(workspace_id, sid) for sid in wanted],
        )

    def get_workspace(self, name_or_id: str) -> Workspace | None:
        """A workspace by public id, else by name (case-insensitive): an id never finds another
        workspace named like it."""
        columns = "SELECT id, public_id, name, description, created_at FROM workspaces"
        row = self._conn.execute(f"{columns} WHERE public_id = ?", (name_or_id,)).fetchone()
        if row is None:
            row = self._conn.execute(f"{columns} WHERE name = ? COLLATE NOCASE", (name_or_id,)).fetchone()
        return self._workspace(row) if row else None

    def list_workspaces(self) -> list[Workspace]:
        """All workspaces, by name."""
        rows = self._conn.execute(
            "SELECT id, public_id, name, description, created_at FROM workspaces ORDER BY name COLLATE NOCASE"
        ).fetchall()
        return [self._workspace(r) for r in rows]

    def update_workspace(
        self,
        workspace_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        source_ids: Sequence[int] | None = None,
    ) -> None:
        """Change a workspace."""
        with self._write(content=False) as conn:
            if name is not None:
                if conn.execute("SELECT 1 FROM sources WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
                    raise Conflict(f"a repository is already named {name!r}", [name])
                taken = conn.execute(
                    "SELECT 1 FROM workspaces WHERE name = ? COLLATE NOCASE AND id <> ?", (name, workspace_id)
                ).fetchone()
                if taken:
                    raise Conflict(f"a workspace named {name!r} already exists", [name])
                conn.execute("UPDATE workspaces SET name = ? WHERE id = ?", (name, workspace_id))
            if description is not None:
                conn.execute("UPDATE workspaces SET description = ? WHERE id = ?", (description, workspace_id))
            if source_ids is not None:
                self._set_members(conn, workspace_id, source_ids)

    def delete_workspace(self, workspace_id: int) -> None:
        """Remove a workspace (its repositories stay)."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))

    # -- jobs -----------------------------------------------------------------------------

    def enqueue_job(self, *, kind: str, source_id: int) -> Job:
        """A new job in state New, or the source's unfinished job of that kind if there is one."""
        with self._write(content=False) as conn:
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE source_id = ? AND kind = ? AND state IN ('New', 'Processing') "
                "ORDER BY id LIMIT 1",
                (source_id, kind),
            ).fetchone()
            if row is not None and row[4] == "New":
                return _job(row)
            # A running job may have read the files already: queue one more run behind it.
            public_id = secrets.token_hex(12)
            conn.execute(
                "INSERT INTO jobs(public_id, source_id, kind, created_at) VALUES (?, ?, ?, ?)",
                (public_id, source_id, kind, time.time()),
            )
        job = self.get_job(public_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> Job | None:
        """A job by public id."""
        row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE public_id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def jobs_for_source(self, source_id: int, limit: int = 20) -> list[Job]:
        """The source's jobs, newest first."""
        rows = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE source_id = ? ORDER BY id DESC LIMIT ?", (source_id, limit)
        )
        return [_job(r) for r in rows]

    def claim_job(self, worker: str, *, kinds: Sequence[str] | None = None, exclude_kinds: Sequence[str] = ()) -> Job | None:
        """Atomically move the oldest New job (of ``kinds``, if given, and not of ``exclude_kinds``)
        to Processing for ``worker``."""
        where, params = "", list[object]()
        if kinds is not None:
            where += f" AND j.kind IN ({', '.join('?' * len(kinds))})"
            params += list(kinds)
        if exclude_kinds:
            where += f" AND j.kind NOT IN ({', '.join('?' * len(exclude_kinds))})"
            params += list(exclude_kinds)
        idle = self._conn.execute(f"SELECT 1 FROM jobs j WHERE state = 'New'{where} LIMIT 1", tuple(params)).fetchone()
        if idle is None:
            return None  # the idle poll: a read, no write lock
        now = time.time()
        with self._write(content=False) as conn:
            self._serialize_claims(conn)
            # A source's jobs run one at a time: two workers writing one source would interleave.
            row = conn.execute(
                "SELECT id FROM jobs j WHERE state = 'New' AND (j.source_id IS NULL OR NOT EXISTS ("
                f"SELECT 1 FROM jobs p WHERE p.source_id = j.source_id AND p.state = 'Processing')){where} "
                f"ORDER BY id LIMIT 1{self._skip_locked}",
                tuple(params),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'Processing', worker = ?, attempts = attempts + 1, "
                "started_at = coalesce(started_at, ?), heartbeat_at = ?, reason = '' WHERE id = ?",
                (worker, now, now, row[0]),
            )
            claimed = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (row[0],)).fetchone()
        return _job(claimed)

    def update_job(self, job_id: int, **fields: object) -> None:
        """Set state, reason, phase, done, total, percent, heartbeat_at or finished_at."""
        self._update_row("jobs", _UPDATABLE_JOB_FIELDS, job_id, fields, content=False)

    def _update_row(
        self, table: str, allowed: frozenset[str], row_id: int, fields: dict[str, object], *, content: bool
    ) -> None:
        """``UPDATE table SET ... WHERE id = row_id`` for ``fields``, whose names must be in ``allowed``
        (they become SQL: never a caller's free text)."""
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidInput(f"cannot update {table.removesuffix('s')} fields {sorted(unknown)!r}")
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write(content=content) as conn:
            conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*fields.values(), row_id))

    def requeue_stale_jobs(self, older_than: float) -> int:
        """Put Processing jobs whose heartbeat is older than ``older_than`` back to New."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'New', worker = '' WHERE state = 'Processing' AND coalesce(heartbeat_at, 0) < ?",
                (older_than,),
            )
        return cur.rowcount

    def iter_unfinished_jobs(self) -> Iterator[Job]:
        """Jobs still New or Processing, oldest first."""
        rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN (?, ?) ORDER BY id", UNFINISHED)
        yield from (_job(r) for r in rows.fetchall())

    # -- conversations and usage ----------------------------------------------------------

    def create_conversation(self, *, key_id: str, title: str, scope: Sequence[str]) -> Conversation:
        """A new, empty conversation."""
        now = time.time()
        public_id = secrets.token_hex(12)
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO conversations(public_id, key_id, title, scope, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (public_id, key_id, title, json.dumps(list(scope)), now, now),
            )
        made = self.get_conversation(public_id)
        assert made is not None
        return made

    def get_conversation(self, public_id: str) -> Conversation | None:
        """A conversation by its public id."""
        row = self._conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE public_id = ?", (public_id,)
        ).fetchone()
        return _conversation(row) if row else None

    def list_conversations(self, key_id: str, limit: int = 100) -> list[Conversation]:
        """The key's conversations, most recently updated first."""
        rows = self._conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE key_id = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
            (key_id, limit),
        )
        return [_conversation(r) for r in rows]

    def delete_conversation(self, conversation_id: int) -> None:
        """Remove a conversation and its messages."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def add_message(
        self, conversation_id: int, *, message_id: str, role: MessageRole, content: str, citations: str = "[]"
    ) -> None:
        """Append a turn (and touch the conversation's ``updated_at``)."""
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO messages(conversation_id, message_id, role, content, citations, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, message_id, role, content, citations, now),
            )
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))

    def messages(self, conversation_id: int) -> list[Message]:
        """Every turn of a conversation, oldest first."""
        rows = self._conn.execute(
            "SELECT message_id, role, content, citations, created_at FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        return [Message(*r) for r in rows]

    def truncate_messages(self, conversation_id: int, keep: int) -> None:
        """Drop every message after the first ``keep`` (and what was kept about them)."""
        with self._write(content=False) as conn:
            conn.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id NOT IN "
                "(SELECT id FROM messages WHERE conversation_id = ? ORDER BY id LIMIT ?)",
                (conversation_id, conversation_id, keep),
            )
            # An assistant's answer keeps its thoughts beside the message (agent_turns, 0004).
            conn.execute(
                "DELETE FROM agent_turns WHERE conversation_id = ? AND message_id NOT IN "
                "(SELECT message_id FROM messages WHERE conversation_id = ?)",
                (conversation_id, conversation_id),
            )

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Give a conversation a new title."""
        with self._write(content=False) as conn:
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def record_usage(self, key_id: str, *, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one chat request and its tokens against the key."""
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO key_usage(key_id, chat_requests, prompt_tokens, completion_tokens) VALUES (?, 1, ?, ?) "
                "ON CONFLICT(key_id) DO UPDATE SET chat_requests = key_usage.chat_requests + 1, "
                "prompt_tokens = key_usage.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = key_usage.completion_tokens + excluded.completion_tokens",
                (key_id, prompt_tokens, completion_tokens),
            )

    def usage(self, key_id: str) -> Usage:
        """The key's chat use so far (zeros if none)."""
        row = self._conn.execute(
            "SELECT key_id, chat_requests, prompt_tokens, completion_tokens FROM key_usage WHERE key_id = ?", (key_id,)
        ).fetchone()
        return Usage(*row) if row else Usage(key_id, 0, 0, 0)

    # -- web sessions -----------------------------------------------------------------------

    def create_session(self, *, digest: str, principal: str, csrf: str, expires_at: float) -> WebSession:
        """Store a web sign-in; expired sessions are swept here, the only place rows are added."""
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO web_sessions(digest, principal, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (digest, principal, csrf, now, expires_at),
            )
        return WebSession(digest, principal, csrf, now, expires_at)

    def get_session(self, digest: str) -> WebSession | None:
        """A web sign-in by the digest of its cookie secret (expired ones included)."""
        row = self._conn.execute(
            "SELECT digest, principal, csrf, created_at, expires_at FROM web_sessions WHERE digest = ?", (digest,)
        ).fetchone()
        return WebSession(*row) if row else None

    def delete_session(self, digest: str) -> None:
        """Sign a web session out."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM web_sessions WHERE digest = ?", (digest,))
