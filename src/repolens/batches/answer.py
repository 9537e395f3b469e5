"""Answering one batch item: the ``ItemAnswerer`` seam and the adapter over the agent runtime.

A batch item is one message to an agent in a chat (a new one, or ``history_id`` to continue one),
and its answer must be a real chat in the histories. ``ItemAnswerer`` is that one operation;
``RuntimeAnswerer`` implements it over ``repolens.agents.runtime`` and records the question and
the answer in the ConversationStore. Codeer's chat core ("answer one message as agent X in chat
Y") replaces it without touching the batch runner: the runner only needs the protocol.

The contract the runner relies on: ``key`` is the item's idempotency key. An answerer records
the exchange under it at most once and, asked again with a key it has recorded (the job died
after the answer was written but before the item was marked done), returns the recorded answer
without asking the model again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from repolens import uploads
from repolens.agents import assistants as registry
from repolens.agents.runtime import Attachment, TurnRequest, finished
from repolens.chat.llm import ChatMessage
from repolens.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from collections.abc import Sequence

    from repolens.access.keys import Principal
    from repolens.services import Services
    from repolens.storage.base import Database

TITLE_CHARS = 80  # a new chat's title: the item's name, else the message's start (as codeer-cli does)


@dataclass(frozen=True, slots=True)
class ItemQuestion:
    """One item to answer."""

    key: str  # idempotency key: recorded once, and a repeat returns the recorded answer
    agent_id: str  # the core agent (assistant) id
    message: str
    history_id: int | None = None  # continue this chat (its row id), else start one
    external_user_id: str | None = None
    name: str | None = None  # the new chat's name
    attachments: tuple[str, ...] = ()  # uploaded file ids


@dataclass(frozen=True, slots=True)
class ItemAnswer:
    """Where the answer was recorded and what it cost."""

    chat_id: int
    message_id: int
    response: str
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: tuple[dict[str, Any], ...] = ()


class ItemAnswerer(Protocol):
    """Answers one message as an agent in a chat, recording it once per key."""

    async def answer(self, principal: Principal, question: ItemQuestion) -> ItemAnswer: ...


def usage_of(prompt_tokens: int, completion_tokens: int, calls: int) -> dict[str, int]:
    """Codeer's usage block."""
    return {
        "total_tokens": prompt_tokens + completion_tokens,
        "total_prompt_tokens": prompt_tokens,
        "total_completion_tokens": completion_tokens,
        "total_calls": calls,
    }


def tool_calls_of(thoughts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of a turn's thought tree, flattened in order (sub-assistants' included)."""
    out: list[dict[str, Any]] = []
    for thought in thoughts:
        if thought.get("author_type") == "Tool":
            out.append(
                {
                    "tool_name": thought.get("author_name", ""),
                    "input": thought.get("input_text", ""),
                    "output": str(thought.get("message", ""))[:2000],
                    "error": bool(thought.get("error")),
                }
            )
        out.extend(tool_calls_of(thought.get("children") or []))
    return out


class RuntimeAnswerer:
    """``ItemAnswerer`` over the agent runtime, with the chat written in one transaction."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def answer(self, principal: Principal, question: ItemQuestion) -> ItemAnswer:
        db = self.services.store
        seen = await anyio.to_thread.run_sync(db.find_turn, question.key)
        if seen is not None:  # answered before the process died: keep that answer
            text = await anyio.to_thread.run_sync(db.recorded_answer, seen.message_id)
            return ItemAnswer(seen.chat_id, seen.message_id, text or "", usage_of(0, 0, 0))
        viewer = registry.viewer_for(db, principal)
        assistant = await anyio.to_thread.run_sync(registry.get, db, viewer, principal, question.agent_id)
        history: tuple[ChatMessage, ...] = ()
        if question.history_id is not None:
            owner = await anyio.to_thread.run_sync(db.batch_chat_owner, question.history_id)
            if owner is None or owner != viewer.owner:
                raise NotFound(f"history {question.history_id} not found")
            rows = await anyio.to_thread.run_sync(db.batch_chat_history, question.history_id)
            history = tuple(ChatMessage("user" if role == "user" else "assistant", text) for role, text in rows)
        files = await anyio.to_thread.run_sync(lambda: attachments_of(db, question.attachments, owner=principal))
        request = TurnRequest(text=question.message, history=history, remember=False, attachments=files)
        loader = registry.sub_loader(db, viewer, principal)
        done = await finished(self.services.agents.run(principal, viewer.owner, assistant, request, load_assistant=loader))
        calls = tool_calls_of(done.thoughts)
        title = (question.name or question.message.strip().splitlines()[0] if question.message.strip() else "Batch")[
            :TITLE_CHARS
        ]
        recorded = await anyio.to_thread.run_sync(
            lambda: db.record_turn_once(
                key=question.key,
                history_id=question.history_id,
                owner=viewer.owner,
                title=title,
                scope=list(assistant.definition.context),
                assistant_id=assistant.id,
                question=question.message,
                answer=done.answer,
                citations=json.dumps(list(done.citations)),
                thoughts=json.dumps(done.thoughts),
                elapsed_s=done.elapsed_s,
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens,
            )
        )
        if not recorded.existed:
            await anyio.to_thread.run_sync(
                lambda: db.record_usage(
                    principal.key.key_id, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens
                )
            )
        # Model calls: one per tool call and one for the answer (an upper bound when the model
        # calls several tools in one step); a retrieval-only answer calls no model.
        steps = len(calls) + 1 if done.mode == "agent" else 0
        return ItemAnswer(
            recorded.chat_id,
            recorded.message_id,
            done.answer,
            usage_of(done.prompt_tokens, done.completion_tokens, steps),
            tuple(calls),
        )


def attachments_of(db: Database, ids: Sequence[str], *, owner: Principal | None) -> tuple[Attachment, ...]:
    """Uploaded files as the runtime's attachments (given to the model as data, escaped and
    capped); ``owner``: the files must be that key's."""
    out = []
    for upload_id in dict.fromkeys(ids):
        row = uploads.fetch(db, owner, upload_id) if owner is not None else db.get_upload(upload_id)
        if row is None:
            raise NotFound(f"no uploaded file {upload_id!r}")
        out.append(Attachment(row.name, uploads.text_of(row)))
    return tuple(out)


def check_agent(services: Services, principal: Principal, agent_id: str) -> None:
    """Refuse an agent id the caller cannot run (``NotFound``, as a missing one)."""
    db = services.store
    try:
        registry.get(db, registry.viewer_for(db, principal), principal, agent_id)
    except Forbidden:
        raise NotFound(f"agent {agent_id!r} not found") from None
