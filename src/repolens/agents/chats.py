"""Chats: conversations with a published agent, in a workspace, for an external user.

The one path that answers a message as agent X in chat Y is ``answer``: the chat routes of
every dialect and the batch runner call it, and it hands the turn to the agent runtime
(``runtime.py``), which brings budgets, per-key usage, thoughts and disconnect cancellation.

Rules, checked before anything is written or counted:

* a chat belongs to the workspace of the key that opened it (``knowledge.home_workspace``) and
  to that key; an admin key sees every chat of its workspaces, another key only its own, and
  anything else is reported as missing;
* in whitelist mode every chat and message request names a whitelisted ``external_user_id``
  (reading histories for analysis names none) (``knowledge.check_client``, refused as ``ClientNotAllowed``);
* a chat opened for an external user answers requests that name that user (or none);
* messages run the agent's published version (``assistants.published``): a draft is edited,
  not talked to;
* attachments are files the same key uploaded (``uploads``), UTF-8 text, given to the model
  as data after the message (the runtime's ``TurnRequest.attachments``); the chat keeps which
  files each question came with.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from repolens import knowledge, uploads, validation
from repolens.agents import assistants
from repolens.agents.model import Assistant
from repolens.agents.runtime import Attachment, TurnEvent, TurnFinished, TurnRequest, TurnStarted
from repolens.errors import InvalidInput, NotFound
from repolens.storage.agents import AgentTurnRow
from repolens.storage.chats import AttachedRow, ChatRow, FeedbackFilter, FeedbackKind, FeedbackRow, MessageRow

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.domain import Upload, Workspace
    from repolens.services import Services
    from repolens.storage.base import Database

MAX_CHAT_NAME_CHARS = 256  # Codeer's limit on a chat's name
TITLE_CHARS = 80  # a chat opened without a name is named after this much of its first message
MAX_EXTERNAL_USER_ID_CHARS = knowledge.MAX_EXTERNAL_USER_ID_CHARS
MAX_ATTACHMENTS = 10  # files on one message
MAX_FEEDBACK_CHARS = 4_000
MAX_ROW_ID = 2**63 - 1  # integer ids are signed 64-bit row ids in both backends


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A user's message to a chat."""

    text: str
    agent_id: str
    external_user_id: str | None = None
    attachment_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TitleChanged:
    """The chat got its name from its first message (an event ``answer`` adds to the turn's)."""

    chat_id: int
    name: str


ChatEvent = TurnEvent | TitleChanged


@dataclass(frozen=True, slots=True)
class ChatView:
    """A chat with its messages, the agent turns behind its answers and their feedback."""

    chat: ChatRow
    messages: list[MessageRow]
    turns: dict[str, AgentTurnRow]  # by the answer's message id
    feedback: dict[int, list[FeedbackRow]] = field(default_factory=dict)  # by the answer's row id
    attachments: dict[int, list[AttachedRow]] = field(default_factory=dict)  # by question number, from 1


# -- checks -----------------------------------------------------------------------------------


def _external_user(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("external_user_id must be a string")
    return validation.require_name(value, what="external_user_id", max_chars=MAX_EXTERNAL_USER_ID_CHARS)


def _row_id(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ROW_ID:
        raise InvalidInput(f"{what} must be a positive integer")
    return value


def _workspace(db: Database, workspace_id: int) -> Workspace:
    for ws in db.list_workspaces():
        if ws.id == workspace_id:
            return ws
    raise NotFound("the workspace of this chat is gone")


def _chat(
    db: Database, principal: Principal, chat_id: object, external_user_id: object, *, history: bool = False
) -> ChatRow:
    """A chat the key may use for this external user, past the whitelist (``history``: read for
    analysis, which names no external user and so passes no whitelist)."""
    row_id = _row_id(chat_id, "chat_id")
    user = _external_user(external_user_id)
    chat = db.get_chat(row_id)
    spaces = {w.id for w in knowledge.workspaces_of(db, principal)}
    if chat is None or chat.workspace_id not in spaces or (chat.key_id != principal.key.key_id and not principal.is_admin):
        raise NotFound(f"no chat {row_id}")
    if not history:
        knowledge.check_client(db, _workspace(db, chat.workspace_id), user)
    if chat.external_user_id and user is not None and user != chat.external_user_id:
        raise NotFound(f"no chat {row_id} for external user {user!r}")
    return chat


def check_access(db: Database, principal: Principal, external_user_id: object) -> Workspace:
    """The key's home workspace, once its whitelist lets ``external_user_id`` in (lists of chats)."""
    ws = knowledge.home_workspace(db, principal)
    knowledge.check_client(db, ws, _external_user(external_user_id))
    return ws


# -- chats ------------------------------------------------------------------------------------


def create(
    db: Database, principal: Principal, *, agent_id: object, name: object, external_user_id: object = None
) -> ChatRow:
    """Open a chat with an agent the key sees (published or not: a draft's chat waits for its
    first published version); the whitelist is checked before anything is stored."""
    ws = check_access(db, principal, external_user_id)
    user = _external_user(external_user_id) or ""
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise InvalidInput(f"name must be a string of at most {MAX_CHAT_NAME_CHARS} characters")
    name = validation.require_description(name, max_chars=MAX_CHAT_NAME_CHARS)
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise InvalidInput("agent_id is required")
    viewer = assistants.viewer_for(db, principal)
    agent = assistants.get(db, viewer, principal, agent_id)
    return db.create_chat(
        public_id=str(uuid.uuid4()),
        key_id=viewer.owner,
        title=name.strip(),
        assistant_id=agent.id,
        workspace_id=ws.id,
        external_user_id=user,
    )


def get(
    db: Database, principal: Principal, chat_id: object, *, external_user_id: object = None, history: bool = False
) -> ChatRow:
    """A chat the key may use (for ``external_user_id``, when whitelist mode asks for one)."""
    return _chat(db, principal, chat_id, external_user_id, history=history)


def rename(db: Database, principal: Principal, chat_id: object, *, name: object, external_user_id: object = None) -> ChatRow:
    """Give a chat a new name."""
    chat = _chat(db, principal, chat_id, external_user_id)
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"name must be a non-empty string of at most {MAX_CHAT_NAME_CHARS} characters")
    db.rename_conversation(chat.id, validation.require_description(name.strip(), max_chars=MAX_CHAT_NAME_CHARS))
    renamed = db.get_chat(chat.id)
    assert renamed is not None
    return renamed


def list_chats(
    db: Database,
    principal: Principal,
    *,
    agent_id: str | None = None,
    external_user_id: object = None,
    feedback: FeedbackFilter = "",
    newest_first: bool = True,
    limit: int,
    offset: int,
    history: bool = False,
) -> tuple[list[ChatRow], int]:
    """(one page of chats, their total) of the key's workspaces: every one for an admin key,
    the key's own otherwise (``history``: for analysis, past no whitelist)."""
    if not history:
        check_access(db, principal, external_user_id)
    user = _external_user(external_user_id)
    return db.list_chats(
        workspace_ids=[w.id for w in knowledge.workspaces_of(db, principal)],
        key_id=None if principal.is_admin else principal.key.key_id,
        assistant_id=agent_id.strip() if agent_id else None,
        external_user_id=user,
        feedback=feedback,
        newest_first=newest_first,
        limit=limit,
        offset=offset,
    )


def view(
    db: Database, principal: Principal, chat_id: object, *, external_user_id: object = None, history: bool = False
) -> ChatView:
    """A chat with everything a listing of its messages shows, read in one snapshot
    (``history``: for analysis, past no whitelist)."""
    chat = _chat(db, principal, chat_id, external_user_id, history=history)
    with db.snapshot():
        messages = db.chat_messages(chat.id)
        turns = {t.message_id: t for t in db.agent_turns(chat.id)}
        by_message: dict[int, list[FeedbackRow]] = {}
        for f in db.feedbacks([chat.id]):
            by_message.setdefault(f.message_row, []).append(f)
        by_turn: dict[int, list[AttachedRow]] = {}
        for a in db.chat_attachments(chat.id):
            by_turn.setdefault(a.turn, []).append(a)
    return ChatView(chat, messages, turns, by_message, by_turn)


def add_feedback(
    db: Database,
    principal: Principal,
    chat_id: object,
    message_id: object,
    *,
    kind: FeedbackKind,
    content: object = "",
    external_user_id: object = None,
) -> FeedbackRow:
    """Thumbs (``helpful`` or ``improve``) and a comment on one answer of a chat."""
    chat = _chat(db, principal, chat_id, external_user_id)
    row = _row_id(message_id, "message_id")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidInput(f"content must be a string of at most {MAX_FEEDBACK_CHARS} characters")
    content = validation.require_description(content, max_chars=MAX_FEEDBACK_CHARS)
    answer = next((m for m in db.chat_messages(chat.id) if m.id == row), None)
    if answer is None:
        raise NotFound(f"chat {chat.id} has no message {row}")
    if answer.role != "assistant":
        raise InvalidInput(f"message {row} is the user's; feedback goes on an answer")
    user = _external_user(external_user_id) or chat.external_user_id
    return db.add_feedback(chat.id, message_row=row, kind=kind, content=content, external_user_id=user)


# -- attachments --------------------------------------------------------------------------


def _attachments(db: Database, principal: Principal, ids: Sequence[str]) -> list[Upload]:
    """The key's own uploads a message names, each UTF-8 text (``uploads.text_of`` says why not)."""
    if len(ids) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attached files per message")
    found = [uploads.fetch(db, principal, file_id) for file_id in dict.fromkeys(ids)]
    for upload in found:
        uploads.text_of(upload)
    return found


# -- the one answering path -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    chat: ChatRow
    agent: Assistant
    request: TurnRequest
    title: str  # the name the chat takes from this message ('' = it keeps its own)
    attached: tuple[AttachedRow, ...]


def _prepare(services: Services, principal: Principal, chat_id: object, message: NewMessage) -> _Prepared:
    db = services.store
    chat = _chat(db, principal, chat_id, message.external_user_id)
    if not isinstance(message.text, str) or not message.text.strip():
        raise InvalidInput("message is required")
    if "\x00" in message.text:
        raise InvalidInput("message must not contain NUL (\\u0000) characters")
    viewer = assistants.viewer_for(db, principal)
    agent = assistants.published(db, viewer, principal, message.agent_id)
    files = _attachments(db, principal, message.attachment_ids)
    earlier = db.chat_messages(chat.id)
    title = "" if chat.title or earlier else " ".join(message.text.split())[:TITLE_CHARS]
    turn = sum(1 for m in earlier if m.role == "user") + 1
    request = TurnRequest(
        text=message.text,
        conversation_id=chat.public_id,
        attachments=tuple(Attachment(f.name, uploads.text_of(f)) for f in files),
    )
    attached = tuple(AttachedRow(turn, f.public_id, f.name, f.content_type) for f in files)
    return _Prepared(chat, agent, request, title, attached)


async def answer(
    services: Services, principal: Principal, chat_id: object, message: NewMessage
) -> AsyncGenerator[ChatEvent, None]:
    """Answer one message as agent ``message.agent_id`` in chat ``chat_id``: the runtime's turn
    events, with a ``TitleChanged`` after ``TurnStarted`` when the chat took its name from this
    message. Every check fails on the first event, before anything is stored; closing the
    generator cancels the turn."""
    ready = await anyio.to_thread.run_sync(_prepare, services, principal, chat_id, message)
    chat, store = ready.chat, services.store
    viewer = assistants.viewer_for(store, principal)
    loader = assistants.sub_loader(store, viewer, principal)
    events = services.agents.run(principal, viewer.owner, ready.agent, ready.request, load_assistant=loader)
    try:
        async for event in events:
            if isinstance(event, TurnFinished) and ready.attached:
                # The runtime has stored the turn: name the files its question came with.
                await anyio.to_thread.run_sync(store.add_chat_attachments, chat.id, ready.attached)
            yield event
            if ready.title and isinstance(event, TurnStarted):
                await anyio.to_thread.run_sync(store.rename_conversation, chat.id, ready.title)
                yield TitleChanged(chat.id, ready.title)
    finally:
        await events.aclose()
