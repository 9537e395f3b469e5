"""Agent versions, chats and feedback on answers: their rows, protocol and SQL for both backends.

Beside ``agents.py`` for the same reason it sits beside ``registry.py``: one feature's tables,
written once in the SQL both backends share. A chat is a conversation (``conversations``,
``messages``, ``agent_turns``: what every agent turn writes) plus a ``chats`` row saying which
workspace and external user it belongs to; versions are written by ``agents.py`` together
with the assistant row they belong to, and only read and published here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from repolens.errors import Conflict

if TYPE_CHECKING:
    from repolens.domain import Conversation
    from repolens.storage.relational import Conn

VersionStatus = Literal["draft", "published", "archived"]
FeedbackKind = Literal["helpful", "improve"]
FeedbackFilter = Literal["", "helpful", "improve", "any", "none"]
_VERSION_COLUMNS = "public_id, assistant_id, number, definition, note, status, created_at, published_at"
_CHAT_COLUMNS = (
    "c.id, c.public_id, c.key_id, c.title, h.assistant_id, h.workspace_id, h.external_user_id, c.created_at, c.updated_at"
)
_FEEDBACK_COLUMNS = "id, conversation_id, message_row, kind, content, external_user_id, created_at"


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One stored definition of an assistant."""

    public_id: str
    assistant_id: str
    number: int
    definition: str  # JSON, as ``agents/model.py`` writes it
    note: str
    status: VersionStatus
    created_at: float
    published_at: float | None


@dataclass(frozen=True, slots=True)
class ChatRow:
    """A chat: a conversation with its workspace, agent and external user."""

    id: int  # the conversation's row id: Codeer's integer chat (and history) id
    public_id: str
    key_id: str
    title: str
    assistant_id: str
    workspace_id: int
    external_user_id: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message of a chat with its row id (the integer id feedback names it by)."""

    id: int
    message_id: str
    role: str
    content: str
    created_at: float


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """Thumbs and a comment on one answer."""

    id: int
    conversation_id: int
    message_row: int
    kind: FeedbackKind
    content: str
    external_user_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class AttachedRow:
    """An uploaded file the ``turn``-th question (from 1) of a chat came with."""

    turn: int
    upload_id: str
    name: str
    content_type: str


class ChatStore(Protocol):
    """Versions of assistants, chats, and feedback on their answers."""

    def assistant_versions(self, assistant_id: str) -> list[VersionRow]:
        """Every version of an assistant, newest first."""
        ...

    def publish_assistant_version(self, assistant_id: str, version_id: str) -> bool:
        """Make one version the published one (the one published before becomes archived);
        False if the assistant has no such version."""
        ...

    def create_chat(
        self, *, public_id: str, key_id: str, title: str, assistant_id: str, workspace_id: int, external_user_id: str
    ) -> ChatRow:
        """A new conversation with its chat row, in one transaction."""
        ...

    def get_chat(self, conversation_id: int) -> ChatRow | None:
        """A chat by its conversation's row id."""
        ...

    def list_chats(
        self,
        *,
        workspace_ids: Sequence[int],
        key_id: str | None,
        assistant_id: str | None,
        external_user_id: str | None,
        feedback: FeedbackFilter,
        newest_first: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[ChatRow], int]:
        """(one page of chats, their total) in the workspaces, filtered; ``key_id``: only that key's."""
        ...

    def chat_messages(self, conversation_id: int) -> list[MessageRow]:
        """Every message of a chat with its row id, oldest first."""
        ...

    def add_feedback(
        self, conversation_id: int, *, message_row: int, kind: FeedbackKind, content: str, external_user_id: str
    ) -> FeedbackRow:
        """Keep feedback on one answer of a chat."""
        ...

    def feedbacks(self, conversation_ids: Sequence[int]) -> list[FeedbackRow]:
        """The feedback on the answers of these chats, oldest first."""
        ...

    def add_chat_attachments(self, conversation_id: int, files: Sequence[AttachedRow]) -> None:
        """Keep which files questions of a chat came with."""
        ...

    def chat_attachments(self, conversation_id: int) -> list[AttachedRow]:
        """The files the questions of a chat came with, by turn."""
        ...


class ChatStoreMixin:
    """``ChatStore`` over a backend's connection and write transaction."""

    _integrity_errors: tuple[type[Exception], ...] = ()

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    def get_conversation(self, public_id: str) -> Conversation | None:  # provided by RegistryMixin
        raise NotImplementedError

    # -- versions -------------------------------------------------------------------------

    def assistant_versions(self, assistant_id: str) -> list[VersionRow]:
        rows = self._conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM assistant_versions WHERE assistant_id = ? ORDER BY number DESC",
            (assistant_id,),
        ).fetchall()
        return [VersionRow(*r) for r in rows]

    def publish_assistant_version(self, assistant_id: str, version_id: str) -> bool:
        now = time.time()
        with self._write(content=False) as conn:
            found = conn.execute(
                "SELECT 1 FROM assistant_versions WHERE assistant_id = ? AND public_id = ?", (assistant_id, version_id)
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                "UPDATE assistant_versions SET status = 'archived' WHERE assistant_id = ? AND status = 'published' "
                "AND public_id <> ?",
                (assistant_id, version_id),
            )
            conn.execute(
                "UPDATE assistant_versions SET status = 'published', published_at = ? WHERE public_id = ?",
                (now, version_id),
            )
        return True

    # -- chats ----------------------------------------------------------------------------

    def create_chat(
        self, *, public_id: str, key_id: str, title: str, assistant_id: str, workspace_id: int, external_user_id: str
    ) -> ChatRow:
        now = time.time()
        try:
            with self._write(content=False) as conn:
                conn.execute(
                    "INSERT INTO conversations(public_id, key_id, title, scope, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (public_id, key_id, title, json.dumps([]), now, now),
                )
                conn.execute(
                    "INSERT INTO agent_conversations(conversation_id, assistant_id) "
                    "SELECT id, ? FROM conversations WHERE public_id = ?",
                    (assistant_id, public_id),
                )
                conn.execute(
                    "INSERT INTO chats(conversation_id, workspace_id, assistant_id, external_user_id) "
                    "SELECT id, ?, ?, ? FROM conversations WHERE public_id = ?",
                    (workspace_id, assistant_id, external_user_id, public_id),
                )
        except self._integrity_errors:
            raise Conflict(f"conversation id {public_id!r} is taken; start a new chat", []) from None
        made = self.get_conversation(public_id)
        assert made is not None
        chat = self.get_chat(made.id)
        assert chat is not None
        return chat

    def get_chat(self, conversation_id: int) -> ChatRow | None:
        row = self._conn.execute(
            f"SELECT {_CHAT_COLUMNS} FROM chats h JOIN conversations c ON c.id = h.conversation_id "
            "WHERE h.conversation_id = ?",
            (conversation_id,),
        ).fetchone()
        return ChatRow(*row) if row else None

    def list_chats(
        self,
        *,
        workspace_ids: Sequence[int],
        key_id: str | None,
        assistant_id: str | None,
        external_user_id: str | None,
        feedback: FeedbackFilter,
        newest_first: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[ChatRow], int]:
        if not workspace_ids:
            return [], 0
        where = [f"h.workspace_id IN ({','.join('?' * len(workspace_ids))})"]
        params: list[Any] = list(workspace_ids)
        for column, value in (
            ("c.key_id", key_id),
            ("h.assistant_id", assistant_id),
            ("h.external_user_id", external_user_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        has = "EXISTS (SELECT 1 FROM message_feedback f WHERE f.conversation_id = c.id{})"
        if feedback in ("helpful", "improve"):
            where.append(has.format(" AND f.kind = ?"))
            params.append(feedback)
        elif feedback == "any":
            where.append(has.format(""))
        elif feedback == "none":
            where.append("NOT " + has.format(""))
        sql = f"FROM chats h JOIN conversations c ON c.id = h.conversation_id WHERE {' AND '.join(where)}"
        total = int(self._conn.execute(f"SELECT COUNT(*) {sql}", tuple(params)).fetchone()[0])
        order = "DESC" if newest_first else "ASC"
        rows = self._conn.execute(
            f"SELECT {_CHAT_COLUMNS} {sql} ORDER BY c.created_at {order}, c.id {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [ChatRow(*r) for r in rows], total

    def chat_messages(self, conversation_id: int) -> list[MessageRow]:
        rows = self._conn.execute(
            "SELECT id, message_id, role, content, created_at FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [MessageRow(*r) for r in rows]

    # -- feedback -------------------------------------------------------------------------

    def add_feedback(
        self, conversation_id: int, *, message_row: int, kind: FeedbackKind, content: str, external_user_id: str
    ) -> FeedbackRow:
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO message_feedback(conversation_id, message_row, kind, content, external_user_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, message_row, kind, content, external_user_id, now),
            )
            row = conn.execute(
                f"SELECT {_FEEDBACK_COLUMNS} FROM message_feedback WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
        return FeedbackRow(*row)

    def feedbacks(self, conversation_ids: Sequence[int]) -> list[FeedbackRow]:
        if not conversation_ids:
            return []
        marks = ",".join("?" * len(conversation_ids))
        rows = self._conn.execute(
            f"SELECT {_FEEDBACK_COLUMNS} FROM message_feedback WHERE conversation_id IN ({marks}) ORDER BY id",
            tuple(conversation_ids),
        ).fetchall()
        return [FeedbackRow(*r) for r in rows]

    # -- attachments ----------------------------------------------------------------------

    def add_chat_attachments(self, conversation_id: int, files: Sequence[AttachedRow]) -> None:
        if not files:
            return
        sql = "INSERT INTO chat_attachments(conversation_id, turn, upload_id, name, content_type) VALUES (?, ?, ?, ?, ?)"
        with self._write(content=False) as conn:
            for f in files:
                conn.execute(sql, (conversation_id, f.turn, f.upload_id, f.name, f.content_type))

    def chat_attachments(self, conversation_id: int) -> list[AttachedRow]:
        rows = self._conn.execute(
            "SELECT turn, upload_id, name, content_type FROM chat_attachments WHERE conversation_id = ? ORDER BY turn, id",
            (conversation_id,),
        ).fetchall()
        return [AttachedRow(*r) for r in rows]
