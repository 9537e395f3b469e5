"""Assistants, agent turns and background tasks: their rows, protocol and SQL for both backends.

Kept beside ``registry.py`` (not inside it) because it is one feature's tables; the SQL is the
dialect both backends share, as there. The definition of an assistant is stored as the JSON
``agents/model.py`` writes; storage never looks inside it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from repolens.errors import Conflict

if TYPE_CHECKING:
    from repolens.domain import Conversation
    from repolens.storage.relational import Conn

ASSISTANT_COLUMNS = (
    "public_id, organization, owner, owner_name, name, slug, project, shared, definition, version, created_at, updated_at"
)
TASK_COLUMNS = "public_id, owner, owner_name, assistant_id, task, status, final_output, current_step, created_at, updated_at"
_UPDATABLE_TASK_FIELDS = frozenset({"status", "final_output", "current_step"})


@dataclass(frozen=True, slots=True)
class AssistantRow:
    """An assistant as stored."""

    public_id: str
    organization: str
    owner: str
    owner_name: str
    name: str
    slug: str
    project: str
    shared: bool
    definition: str  # JSON
    version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class AgentTurnRow:
    """What an assistant answer carried beside its text: thoughts and timings."""

    message_id: str
    assistant_id: str
    thoughts: str  # JSON tree
    elapsed_s: float
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class AgentTaskRow:
    """A turn run in the background."""

    public_id: str
    owner: str
    owner_name: str
    assistant_id: str
    task: str
    status: str  # STARTED | COMPLETED | FAILED
    final_output: str
    current_step: str
    created_at: float
    updated_at: float


class AgentRegistry(Protocol):
    """Storage of assistants, the turns they answered and their background tasks."""

    def create_assistant(self, row: AssistantRow, *, note: str = "", publish: bool = True) -> AssistantRow:
        """Store a new assistant with its definition as version ``row.version`` (published, or
        a draft), in one transaction (Conflict if its slug is taken in its organisation and project)."""
        ...

    def get_assistant(self, public_id: str) -> AssistantRow | None:
        """An assistant by id."""
        ...

    def assistant_by_slug(self, organization: str, slug: str, project: str | None = None) -> list[AssistantRow]:
        """The organisation's assistants with ``slug`` (in ``project`` if given)."""
        ...

    def list_assistants(self, organization: str) -> list[AssistantRow]:
        """Every assistant of an organisation, most recently updated first."""
        ...

    def update_assistant(self, row: AssistantRow, *, note: str = "", publish: bool = True) -> None:
        """Replace an assistant's fields (its id, organisation and owner stay) and keep the new
        definition as version ``row.version`` (published, or a draft), in one transaction."""
        ...

    def delete_assistant(self, public_id: str) -> bool:
        """Remove an assistant; False if there was none."""
        ...

    def create_agent_conversation(
        self, *, public_id: str, key_id: str, title: str, scope: Sequence[str], assistant_id: str
    ) -> Conversation:
        """A new conversation with a caller-chosen id, started with an assistant."""
        ...

    def conversation_assistants(self, conversation_ids: Sequence[int]) -> dict[int, str]:
        """The assistant each of these conversations was started with (if any)."""
        ...

    def add_agent_turn(
        self,
        conversation_id: int,
        *,
        message_id: str,
        assistant_id: str,
        thoughts: str,
        elapsed_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Keep the thoughts and timings of an assistant's answer ``message_id``."""
        ...

    def agent_turns(self, conversation_id: int) -> list[AgentTurnRow]:
        """The agent turns of a conversation, oldest first."""
        ...

    def create_agent_task(self, row: AgentTaskRow) -> None:
        """Store a new background task."""
        ...

    def get_agent_task(self, public_id: str) -> AgentTaskRow | None:
        """A background task by id."""
        ...

    def update_agent_task(self, public_id: str, **fields: str) -> None:
        """Set a task's status, final_output or current_step."""
        ...


class AgentRegistryMixin:
    """``AgentRegistry`` over a backend's connection and write transaction."""

    _integrity_errors: tuple[type[Exception], ...] = ()

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    def get_conversation(self, public_id: str) -> Conversation | None:  # provided by RegistryMixin
        raise NotImplementedError

    # -- assistants -----------------------------------------------------------------------

    @staticmethod
    def _assistant(row: tuple[Any, ...]) -> AssistantRow:
        values = list(row)
        values[7] = bool(values[7])
        return AssistantRow(*values)

    def create_assistant(self, row: AssistantRow, *, note: str = "", publish: bool = True) -> AssistantRow:
        values = (
            row.public_id,
            row.organization,
            row.owner,
            row.owner_name,
            row.name,
            row.slug,
            row.project,
            int(row.shared),
            row.definition,
            row.version,
            row.created_at,
            row.updated_at,
        )
        try:
            with self._write(content=False) as conn:
                conn.execute(f"INSERT INTO assistants({ASSISTANT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values)
                _add_version(conn, row, note=note, publish=publish)
        except self._integrity_errors:
            raise Conflict(
                f"an assistant with the slug {row.slug!r} already exists in project {row.project!r}", []
            ) from None
        return row

    def get_assistant(self, public_id: str) -> AssistantRow | None:
        row = self._conn.execute(f"SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE public_id = ?", (public_id,)).fetchone()
        return self._assistant(row) if row else None

    def assistant_by_slug(self, organization: str, slug: str, project: str | None = None) -> list[AssistantRow]:
        sql = f"SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE organization = ? AND slug = ?"
        params: tuple[Any, ...] = (organization, slug)
        if project is not None:
            sql += " AND project = ?"
            params += (project,)
        return [self._assistant(r) for r in self._conn.execute(sql + " ORDER BY created_at", params).fetchall()]

    def list_assistants(self, organization: str) -> list[AssistantRow]:
        rows = self._conn.execute(
            f"SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE organization = ? ORDER BY updated_at DESC, id DESC",
            (organization,),
        ).fetchall()
        return [self._assistant(r) for r in rows]

    def update_assistant(self, row: AssistantRow, *, note: str = "", publish: bool = True) -> None:
        try:
            with self._write(content=False) as conn:
                conn.execute(
                    "UPDATE assistants SET name = ?, slug = ?, project = ?, shared = ?, definition = ?, version = ?, "
                    "updated_at = ? WHERE public_id = ?",
                    (
                        row.name,
                        row.slug,
                        row.project,
                        int(row.shared),
                        row.definition,
                        row.version,
                        row.updated_at,
                        row.public_id,
                    ),
                )
                _add_version(conn, row, note=note, publish=publish)
        except self._integrity_errors:
            raise Conflict(
                f"an assistant with the slug {row.slug!r} already exists in project {row.project!r}", []
            ) from None

    def delete_assistant(self, public_id: str) -> bool:
        with self._write(content=False) as conn:
            cur = conn.execute("DELETE FROM assistants WHERE public_id = ?", (public_id,))
            return bool(cur.rowcount)

    # -- conversations --------------------------------------------------------------------

    def create_agent_conversation(
        self, *, public_id: str, key_id: str, title: str, scope: Sequence[str], assistant_id: str
    ) -> Conversation:
        now = time.time()
        try:
            with self._write(content=False) as conn:
                conn.execute(
                    "INSERT INTO conversations(public_id, key_id, title, scope, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (public_id, key_id, title, json.dumps(list(scope)), now, now),
                )
                conn.execute(
                    "INSERT INTO agent_conversations(conversation_id, assistant_id) "
                    "SELECT id, ? FROM conversations WHERE public_id = ?",
                    (assistant_id, public_id),
                )
        except self._integrity_errors:
            raise Conflict(f"conversation id {public_id!r} is taken; start a new conversation", []) from None
        made = self.get_conversation(public_id)
        assert made is not None
        return made

    def conversation_assistants(self, conversation_ids: Sequence[int]) -> dict[int, str]:
        if not conversation_ids:
            return {}
        marks = ",".join("?" * len(conversation_ids))
        rows = self._conn.execute(
            f"SELECT conversation_id, assistant_id FROM agent_conversations WHERE conversation_id IN ({marks})",
            tuple(conversation_ids),
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def add_agent_turn(
        self,
        conversation_id: int,
        *,
        message_id: str,
        assistant_id: str,
        thoughts: str,
        elapsed_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO agent_turns(conversation_id, message_id, assistant_id, thoughts, elapsed_s, prompt_tokens, "
                "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message_id,
                    assistant_id,
                    thoughts,
                    elapsed_s,
                    prompt_tokens,
                    completion_tokens,
                    time.time(),
                ),
            )

    def agent_turns(self, conversation_id: int) -> list[AgentTurnRow]:
        rows = self._conn.execute(
            "SELECT message_id, assistant_id, thoughts, elapsed_s, prompt_tokens, completion_tokens FROM agent_turns "
            "WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [AgentTurnRow(*r) for r in rows]

    # -- tasks ----------------------------------------------------------------------------

    def create_agent_task(self, row: AgentTaskRow) -> None:
        with self._write(content=False) as conn:
            conn.execute(
                f"INSERT INTO agent_tasks({TASK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row.public_id,
                    row.owner,
                    row.owner_name,
                    row.assistant_id,
                    row.task,
                    row.status,
                    row.final_output,
                    row.current_step,
                    row.created_at,
                    row.updated_at,
                ),
            )

    def get_agent_task(self, public_id: str) -> AgentTaskRow | None:
        row = self._conn.execute(f"SELECT {TASK_COLUMNS} FROM agent_tasks WHERE public_id = ?", (public_id,)).fetchone()
        return AgentTaskRow(*row) if row else None

    def update_agent_task(self, public_id: str, **fields: str) -> None:
        unknown = set(fields) - _UPDATABLE_TASK_FIELDS
        if unknown:
            raise ValueError(f"not task fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._write(content=False) as conn:
            conn.execute(
                f"UPDATE agent_tasks SET {assignments}, updated_at = ? WHERE public_id = ?",
                (*fields.values(), time.time(), public_id),
            )


def _add_version(conn: Conn, row: AssistantRow, *, note: str, publish: bool) -> None:
    """Keep ``row``'s definition as its version ``row.version``; publishing it archives the one
    published before (at most one version of an assistant is published)."""
    if publish:
        conn.execute(
            "UPDATE assistant_versions SET status = 'archived' WHERE assistant_id = ? AND status = 'published'",
            (row.public_id,),
        )
    conn.execute(
        "INSERT INTO assistant_versions(public_id, assistant_id, number, definition, note, status, created_at, "
        "published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(uuid.uuid4()),
            row.public_id,
            row.version,
            row.definition,
            note,
            "published" if publish else "draft",
            row.updated_at,
            row.updated_at if publish else None,
        ),
    )
