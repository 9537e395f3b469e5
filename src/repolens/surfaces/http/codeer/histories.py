"""Codeer's histories (``/api/v1/external/histories...``): the chats of a workspace for analysis.

A history is a chat (its integer id is both). An admin key reads every history of its
workspaces, another key its own. ``/messages`` is the ``history-parts-v1`` export codeer-cli
pages through: every part (questions, tool calls and returns, answers with their feedback) with
``page{limit, offset, total_records}`` and a ``part_revision`` that stays the same across pages
until a message or feedback is added.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request

from repolens.access.keys import Principal
from repolens.agents import chats
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.storage.chats import ChatRow, FeedbackFilter
from repolens.surfaces.http.codeer import parts
from repolens.surfaces.http.codeer.envelope import iso, ok, page_bounds, paged
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/external/histories", tags=["codeer"])
EXPORT_CONTRACT = "history-parts-v1"
MAX_ROW_ID = 2**63 - 1
HistoryId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# ``feedback_filter`` values: Codeer's enum names and the CLI's own words for them.
FEEDBACK_FILTERS: dict[str, FeedbackFilter] = {
    "positive": "helpful",
    "helpful": "helpful",
    "helpful_feedback": "helpful",
    "sys_helpful": "helpful",
    "negative": "improve",
    "improve": "improve",
    "improve_feedback": "improve",
    "sys_improve": "improve",
    "any": "any",
    "all_feedback": "any",
    "none": "none",
    "no_feedback": "none",
}
SNIPPET_CHARS = 240


def _history_json(services: Services, chat: ChatRow, view: chats.ChatView | None = None) -> dict[str, Any]:
    row = services.store.get_assistant(chat.assistant_id)
    name = row.name if row else None
    feedback = [f for rows in (view.feedback.values() if view else ()) for f in rows]
    first = next((m.content for m in view.messages if m.role == "user"), "") if view else ""
    user = chat.external_user_id or None
    return {
        "id": chat.id,
        "name": chat.title,
        "title": chat.title,
        "agent_id": chat.assistant_id,
        "agent_name": name,
        "agent": {"id": chat.assistant_id, "name": name},
        "external_user_id": user,
        "meta": {"conversation_agent_id": chat.assistant_id, "external_user_id": user},
        "feedback_counts": {
            "sys_helpful": sum(1 for f in feedback if f.kind == "helpful"),
            "sys_improve": sum(1 for f in feedback if f.kind == "improve"),
        },
        "snippet": first[:SNIPPET_CHARS],
        "message_count": len(view.messages) if view else None,
        "created_at": iso(chat.created_at),
        "updated_at": iso(chat.updated_at),
    }


def _feedback_filter(value: str | None) -> FeedbackFilter:
    if not value:
        return ""
    found = FEEDBACK_FILTERS.get(value.lower())
    if found is None:
        raise InvalidInput(f"feedback_filter must be one of {', '.join(sorted(FEEDBACK_FILTERS))}")
    return found


def _list(
    services: Services,
    principal: Principal,
    *,
    agent_id: str | None,
    user: str | None,
    feedback: FeedbackFilter,
    newest: bool,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    found, total = chats.list_chats(
        services.store,
        principal,
        agent_id=agent_id,
        external_user_id=user,
        feedback=feedback,
        newest_first=newest,
        limit=limit,
        offset=offset,
        history=True,
    )
    return [_history_json(services, c, chats.view(services.store, principal, c.id, history=True)) for c in found], total


@router.get("", summary="The workspace's chat histories, filtered")
async def list_histories(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
    order_by: Annotated[str, Query(max_length=20)] = "desc",
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    external_user_id: Annotated[str | None, Query(max_length=1000)] = None,
    feedback_filter: Annotated[str | None, Query(max_length=50)] = None,
    has_ai_drafts: bool | None = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    if order_by not in ("asc", "desc", "ascending", "descending", "created_at", "-created_at"):
        raise InvalidInput("order_by must be asc or desc")
    newest = order_by in ("desc", "descending", "-created_at")
    feedback = _feedback_filter(feedback_filter)
    if has_ai_drafts:  # no AI drafts are ever made here
        return paged(request, [], total=0, limit=size, offset=start)
    rows, total = await anyio.to_thread.run_sync(
        lambda: _list(
            services,
            principal,
            agent_id=agent_id,
            user=external_user_id,
            feedback=feedback,
            newest=newest,
            limit=size,
            offset=start,
        )
    )
    return paged(request, rows, total=total, limit=size, offset=start)


@router.get("/{history_id}", summary="One history")
async def get_history(history_id: HistoryId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        view = chats.view(services.store, principal, history_id, history=True)
        return _history_json(services, view.chat, view)

    return ok(await anyio.to_thread.run_sync(run))


@router.get("/{history_id}/messages", summary="Every part of a history (history-parts-v1), paged")
async def history_parts(
    history_id: HistoryId,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset, default=100)

    def run() -> dict[str, Any]:
        view = chats.view(services.store, principal, history_id, history=True)
        found = parts.parts(view, with_tools=True)
        return {
            "export_contract": EXPORT_CONTRACT,
            "history_id": view.chat.id,
            "part_revision": parts.revision(view),
            "page": {"limit": size, "offset": start, "total_records": len(found)},
            "provider_raw_trace": "not_included",
            "messages": found[start : start + size],
        }

    return ok(await anyio.to_thread.run_sync(run))


@router.get("/{history_id}/conversations", summary="A history's messages (the legacy rows)")
async def history_conversations(history_id: HistoryId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        view = chats.view(services.store, principal, history_id, history=True)
        row = services.store.get_assistant(view.chat.assistant_id)
        return parts.message_json(view, row.name if row else "")

    return ok(await anyio.to_thread.run_sync(run))


@router.get("/{history_id}/ai-drafts", summary="A history's AI drafts (none are made here)")
async def ai_drafts(
    history_id: HistoryId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset, default=500)
    await anyio.to_thread.run_sync(lambda: chats.get(services.store, principal, history_id, history=True))
    return paged(request, [], total=0, limit=size, offset=start)
