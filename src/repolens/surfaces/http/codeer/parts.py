"""A chat's stored messages as Codeer's parts (``user-prompt``, ``tool-call``, ``tool-return``,
``text``) and messages, shared by the chat listings and the history export.

Turns are grouped as Codeer groups them: the n-th question of chat C and its answer share
``conversation_group_id`` ``cvg-C-n``, which the stream announces before either is stored.
A question or answer part has its message's integer row id (what feedback names); a tool part
has ``<row id>.<n>``, the n-th tool call of that answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from repolens.agents import chats
from repolens.storage.chats import FeedbackRow
from repolens.surfaces.http.codeer.envelope import iso

FEEDBACK_TYPES = {"helpful": "sys_helpful", "improve": "sys_improve"}
TOOL_AUTHORS = ("Tool", "Agent")  # thoughts that were calls (a sub-assistant is one too)


def group_id(chat_id: int, turn: int) -> str:
    """The group of the ``turn``-th question (from 1) of a chat and of its answer."""
    return f"cvg-{chat_id}-{turn}"


def feedback_json(f: FeedbackRow) -> dict[str, Any]:
    return {
        "id": f.id,
        "tag": "system",
        "type": FEEDBACK_TYPES[f.kind],
        "content": f.content,
        "identity": {"external_user_id": f.external_user_id or None},
        "message_id": f.message_row,
        "created_at": iso(f.created_at),
    }


def _flat(thoughts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in thoughts:
        out.append(t)
        out.extend(_flat(t.get("children", [])))
    return out


def tool_parts(thought: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (call, return) contents of one tool thought."""
    call_id = str((thought.get("metadata") or {}).get("tool_call_id") or thought.get("id") or "")
    name = str(thought.get("author_name") or "")
    call = {"tool_name": name, "tool_call_id": call_id, "args": thought.get("input_text") or ""}
    ret = {
        "tool_name": name,
        "tool_call_id": call_id,
        "content": thought.get("message") or "",
        "outcome": "failed" if thought.get("error") else "success",
    }
    return call, ret


def parts(view: chats.ChatView, *, with_tools: bool) -> list[dict[str, Any]]:
    """Every part of a chat, oldest first (tool parts only for the management export)."""
    out: list[dict[str, Any]] = []
    turn = 0
    for m in view.messages:
        if m.role == "user":
            turn += 1
        group = group_id(view.chat.id, max(turn, 1))
        base = {
            "conversation_id": view.chat.id,
            "conversation_group_id": group,
            "message_id": m.id,
            "created_at": iso(m.created_at),
        }
        if m.role == "user":
            files = [
                {"id": a.upload_id, "name": a.name, "type": a.content_type, "attachment_type": "file"}
                for a in view.attachments.get(turn, [])
            ]
            out.append(
                {
                    **base,
                    "id": m.id,
                    "part_kind": "user-prompt",
                    "source": "user",
                    "content": {"content": m.content},
                    "attached_files": files,
                    "feedbacks": [],
                }
            )
            continue
        record = view.turns.get(m.message_id)
        if with_tools and record is not None:
            calls = [t for t in _flat(json.loads(record.thoughts)) if t.get("author_type") in TOOL_AUTHORS]
            for n, thought in enumerate(calls, 1):
                call, ret = tool_parts(thought)
                out.append(
                    {
                        **base,
                        "id": f"{m.id}.{2 * n - 1}",
                        "part_kind": "tool-call",
                        "source": "assistant",
                        "content": call,
                        "attached_files": [],
                        "feedbacks": [],
                    }
                )
                out.append(
                    {
                        **base,
                        "id": f"{m.id}.{2 * n}",
                        "part_kind": "tool-return",
                        "source": "tool",
                        "content": ret,
                        "attached_files": [],
                        "feedbacks": [],
                    }
                )
        feedback = [feedback_json(f) for f in view.feedback.get(m.id, [])]
        out.append(
            {
                **base,
                "id": m.id,
                "part_kind": "text",
                "source": "assistant",
                "content": {"content": m.content},
                "attached_files": [],
                "feedbacks": feedback,
            }
        )
    for i, part in enumerate(out):
        part["sequence"] = i
    return out


def revision(view: chats.ChatView) -> str:
    """A token that changes whenever a message or feedback is added to the chat."""
    h = hashlib.sha256(f"{view.chat.id}".encode())
    for m in view.messages:
        h.update(f"|m{m.id}".encode())
    for rows in view.feedback.values():
        for f in rows:
            h.update(f"|f{f.id}".encode())
    return h.hexdigest()[:32]


def message_json(view: chats.ChatView, agent_name: str) -> list[dict[str, Any]]:
    """The chat's messages as Codeer's v1 listing shows them (a question and its answer share
    ``group_id``)."""
    out: list[dict[str, Any]] = []
    turn = 0
    for m in view.messages:
        if m.role == "user":
            turn += 1
        record = view.turns.get(m.message_id)
        attached = view.attachments.get(turn, []) if m.role == "user" else []
        usage = None
        if record is not None:
            usage = {
                "total_prompt_tokens": record.prompt_tokens,
                "total_completion_tokens": record.completion_tokens,
                "total_tokens": record.prompt_tokens + record.completion_tokens,
            }
        out.append(
            {
                "id": m.id,
                "group_id": group_id(view.chat.id, max(turn, 1)),
                "role": m.role,
                "content": m.content,
                "meta": {
                    "agent_profile": {"id": view.chat.assistant_id, "name": agent_name},
                    "participant_email": None,
                    "reasoning_steps": None,
                    "token_usage": usage,
                    "related_questions": None,
                    "current_step_index": None,
                    "response_time_ms": round(record.elapsed_s * 1000) if record is not None else None,
                },
                "attached_files": [
                    {
                        "id": a.upload_id,
                        "type": a.content_type,
                        "name": a.name,
                        "url": None,
                        "scope": "persistent",
                        "attachment_type": "file",
                    }
                    for a in attached
                ],
                "feedbacks": [feedback_json(f) for f in view.feedback.get(m.id, [])],
                "created_at": iso(m.created_at),
            }
        )
    return out
