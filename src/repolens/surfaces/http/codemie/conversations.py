"""CodeMie's conversations: list, get (every key the SDK's strict ``ConversationDetails`` needs),
history, delete. A conversation is the caller's own; another's is a 404 like a missing one."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from repolens.agents import assistants as registry
from repolens.errors import NotFound
from repolens.surfaces.http.codemie.assistants import thought_json, viewer_of
from repolens.surfaces.http.codemie.errors import codemie_error_body
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso

router = APIRouter()  # included under /code-assistant-api/v1 by codemie/routes.py

REMOVED = "Specified conversation removed"


def _not_found(conversation_id: str) -> JSONResponse:
    """CodeMie's own 404 for a conversation, word for word."""
    body = codemie_error_body(
        404,
        f"The conversation with ID [{conversation_id}] could not be found in the system.",
        message="Conversation not found",
    )
    body["error"]["help"] = (
        "Please verify the conversation ID and try again. If you believe this is an error, contact support."
    )
    return JSONResponse(body, status_code=404)


def _flat(thoughts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A thought tree as the history lists it: every thought, ``children`` as their ids."""
    out: list[dict[str, Any]] = []
    for t in thoughts:
        item = thought_json(t)
        item["children"] = [c["id"] for c in t.get("children", [])]
        out.append(item)
        out.extend(_flat(t.get("children", [])))
    return out


def _history(view: registry.ConversationView) -> list[dict[str, Any]]:
    items = []
    for i, m in enumerate(view.messages):
        turn = view.turns.get(m.message_id)
        items.append(
            {
                "role": "User" if m.role == "user" else "Assistant",
                "message": m.content,
                "historyIndex": i // 2,  # a question and its answer share an index, as in CodeMie
                "date": iso(m.created_at),
                "responseTime": turn.elapsed_s if turn else None,
                "inputTokens": turn.prompt_tokens if turn else None,
                "outputTokens": turn.completion_tokens if turn else None,
                "moneySpent": None,
                "userMark": None,
                "operatorMark": None,
                "messageRaw": None,
                "fileNames": [],
                "assistantId": turn.assistant_id if turn else view.assistant_id,
                "thoughts": _flat(json.loads(turn.thoughts)) if turn else [],
            }
        )
    return items


def _summary(conversation: Any, assistant_id: str | None) -> dict[str, Any]:
    return {
        "id": conversation.public_id,
        "name": conversation.title,
        "folder": None,
        "pinned": False,
        "date": iso(conversation.created_at),
        "update_date": iso(conversation.updated_at),
        "assistant_ids": [assistant_id] if assistant_id else [],
        "initial_assistant_id": assistant_id,
        "very_first_msg_at": iso(conversation.created_at),
        "very_last_msg_at": iso(conversation.updated_at),
        "is_workflow": False,
        "workflow_id": None,
        "conversation_id": conversation.public_id,
        "assistant_icon": None,
        "assistant_names": [],
    }


@router.get("/conversations", summary="The caller's conversations, newest first")
async def list_conversations(services: ServicesDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    viewer = viewer_of(services, principal)
    found = await anyio.to_thread.run_sync(registry.conversations, services.store, viewer)
    return [_summary(c, assistant_id) for c, assistant_id in found]


@router.get("/conversations/{conversation_id}", summary="A conversation with its history")
async def get_conversation(conversation_id: str, services: ServicesDep, principal: PrincipalDep) -> Any:
    viewer = viewer_of(services, principal)
    try:
        view = await anyio.to_thread.run_sync(registry.conversation, services.store, viewer, conversation_id)
    except NotFound:
        return _not_found(conversation_id)
    c = view.conversation
    assistant = None
    if view.assistant_id:
        try:
            assistant = await anyio.to_thread.run_sync(registry.get, services.store, viewer, principal, view.assistant_id)
        except NotFound:
            assistant = None  # deleted since, or no longer visible to this key
    assistant_data = (
        [
            {
                "assistant_id": assistant.id,
                "assistant_name": assistant.name,
                "assistant_icon": None,
                "assistant_type": "codemie",
                "context": [{"context_type": "code", "name": n} for n in assistant.definition.context],
                "tools": [],
                "conversation_starters": list(assistant.definition.conversation_starters),
            }
        ]
        if assistant
        else []
    )
    return {
        "id": c.public_id,
        "date": iso(c.created_at),
        "update_date": iso(c.updated_at),
        "conversation_id": c.public_id,
        "conversation_name": c.title,
        "llm_model": None,
        "folder": None,
        "pinned": False,
        "history": _history(view),
        "user_id": viewer.owner,
        "user_name": viewer.name,
        "assistant_ids": [view.assistant_id] if view.assistant_id else [],
        "assistant_data": assistant_data,
        "initial_assistant_id": view.assistant_id or "",
        "final_user_mark": None,
        "final_operator_mark": None,
        "project": assistant.definition.project if assistant else None,
        "conversation_details": None,
        "assistant_details": None,
        "user_abilities": ["read", "write", "delete"],
        "is_folder_migrated": True,
        "category": None,
        "is_workflow_conversation": False,
        "mcp_server_single_usage": False,
    }


@router.get("/conversations/{conversation_id}/history", summary="A conversation's messages")
async def conversation_history(conversation_id: str, services: ServicesDep, principal: PrincipalDep) -> Any:
    viewer = viewer_of(services, principal)
    try:
        view = await anyio.to_thread.run_sync(registry.conversation, services.store, viewer, conversation_id)
    except NotFound:
        return _not_found(conversation_id)
    return _history(view)


@router.delete("/conversations/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(conversation_id: str, services: ServicesDep, principal: PrincipalDep) -> Any:
    viewer = viewer_of(services, principal)
    try:
        await anyio.to_thread.run_sync(registry.delete_conversation, services.store, viewer, conversation_id)
    except NotFound:
        return _not_found(conversation_id)
    return {"message": REMOVED}
