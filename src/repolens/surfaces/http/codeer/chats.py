"""Codeer's chats: ``/api/v2/chats`` (what codeer-cli uses) and the documented ``/api/v1/chats``
routes, with streamed answers, uploads for attachments and feedback. Over ``agents/chats.py``.

Streams are Server-Sent Events. Chat V2 sends ``response.created``, ``response.part.created``/
``.delta``/``.completed`` (the question, each tool call and return, the answer text),
``response.chat.title.updated`` when the chat takes its name from its first message, then
``response.completed`` (always last: the CLI treats a stream without it as cut off); a turn that
fails after the stream began sends ``response.failed`` before it. V1 sends
``response.output_text.delta``/``.completed``, ``response.reasoning_step.start``/``.end`` per tool
call, ``response.error`` on failure, and ends with ``data: [DONE]``. A request refused before the
turn starts (whitelist, unknown chat, unpublished agent) gets the error envelope instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from repolens import uploads
from repolens.access.keys import Principal
from repolens.agents import assistants as registry
from repolens.agents import chats
from repolens.agents.runtime import ThoughtChanged, Token, TurnFinished, TurnStarted
from repolens.domain import Upload
from repolens.errors import InvalidInput, ProviderError, RepolensError, status_of
from repolens.services import Services
from repolens.storage.chats import ChatRow, FeedbackKind
from repolens.surfaces.http.codeer import parts
from repolens.surfaces.http.codeer.agents import agent_json
from repolens.surfaces.http.codeer.envelope import iso, ok, page_bounds, paged
from repolens.surfaces.http.codeer.errors import SERVER_ERROR, code_of
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

log = logging.getLogger(__name__)

router = APIRouter(tags=["codeer"])
V1, V2 = "/api/v1/chats", "/api/v2/chats"
SSE = "text/event-stream"
MAX_ROW_ID = 2**63 - 1
ChatId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# Codeer's feedback types and the words clients use for them.
FEEDBACK_KINDS: dict[str, FeedbackKind] = {
    "sys_helpful": "helpful",
    "helpful": "helpful",
    "positive": "helpful",
    "thumbs_up": "helpful",
    "up": "helpful",
    "sys_improve": "improve",
    "improve": "improve",
    "negative": "improve",
    "thumbs_down": "improve",
    "down": "improve",
}
ORDERS = ("asc", "ascending", "desc", "descending", "created_at", "-created_at")
_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer: the JSON envelope, or Server-Sent Events with `stream: true`.",
        "content": {"application/json": {"schema": {"type": "object"}}, SSE: {"schema": {"type": "string"}}},
    }
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200_000)


class ChatIn(_Body):
    name: Any = None
    agent_id: Any = None
    external_user_id: Any = None


class RenameIn(_Body):
    name: Any = None
    external_user_id: Any = None


class MessageIn(_Body):
    message: Any = None
    agent_id: Any = None
    stream: Any = True
    external_user_id: Any = None
    attached_file_uuids: Any = None
    attachment_ids: Any = None
    include_tool_tags: Any = False


class FeedbackIn(_Body):
    type: Any = None
    content: Any = ""
    external_user_id: Any = None


# -- shapes ---------------------------------------------------------------------------------


def chat_json(chat: ChatRow) -> dict[str, Any]:
    user = chat.external_user_id or None
    return {
        "id": chat.id,
        "name": chat.title,
        "agent_id": chat.assistant_id,
        "external_user_id": user,
        "meta": {"conversation_agent_id": chat.assistant_id, "external_user_id": user},
        "created_at": iso(chat.created_at),
        "updated_at": iso(chat.updated_at),
    }


def _frame(event: str | None, data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _new_message(body: MessageIn) -> chats.NewMessage:
    if not isinstance(body.message, str):
        raise InvalidInput("message is required (a string)")
    if not isinstance(body.agent_id, str) or not body.agent_id.strip():
        raise InvalidInput("agent_id is required")
    if not isinstance(body.stream, bool) or not isinstance(body.include_tool_tags, bool):
        raise InvalidInput("stream and include_tool_tags must be true or false")
    ids = body.attached_file_uuids if body.attached_file_uuids is not None else body.attachment_ids
    if ids is None:
        ids = []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("attached_file_uuids must be a list of uploaded file ids")
    return chats.NewMessage(
        text=body.message,
        agent_id=body.agent_id.strip(),
        external_user_id=body.external_user_id,
        attachment_ids=tuple(ids),
    )


async def _started(
    services: Services, principal: Principal, chat_id: int, message: chats.NewMessage
) -> tuple[AsyncGenerator[chats.ChatEvent, None], TurnStarted, int]:
    """The turn's events past ``TurnStarted`` (every refusal is raised here, before a byte is
    sent) and the number of this question in its chat."""
    events = chats.answer(services, principal, chat_id, message)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    assert isinstance(first, TurnStarted)

    def asked() -> int:
        return sum(1 for m in services.store.chat_messages(chat_id) if m.role == "user") + 1

    return events, first, await anyio.to_thread.run_sync(asked)


def _failure(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, ProviderError):
        return f"the model failed: {exc}", SERVER_ERROR
    if isinstance(exc, RepolensError):
        return str(exc), code_of(status_of(exc), exc)
    log.exception("a chat turn crashed", exc_info=exc)
    return "internal error", SERVER_ERROR


def _usage(done: TurnFinished) -> dict[str, int]:
    return {
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "total_prompt_tokens": done.prompt_tokens,
        "total_completion_tokens": done.completion_tokens,
        "total_calls": max(1, sum(1 for _ in done.thoughts)),
    }


def _answer_row(services: Services, chat_id: int) -> int | None:
    found = [m.id for m in services.store.chat_messages(chat_id) if m.role == "assistant"]
    return found[-1] if found else None


async def _v2_stream(
    services: Services,
    chat_id: int,
    agent_id: str,
    message: str,
    events: AsyncIterator[chats.ChatEvent],
    first: TurnStarted,
    turn: int,
) -> AsyncGenerator[bytes, None]:
    rid = uuid.uuid4().hex
    group = parts.group_id(chat_id, turn)
    base = {"response_id": rid, "chat_id": chat_id, "conversation_group_id": group}
    index = 0

    def part(kind: str, event: str, content: dict[str, Any], n: int) -> bytes:
        return _frame(event, {"type": event, **base, "part_index": n, "part": {"part_kind": kind, "content": content}})

    yield _frame("response.created", {"type": "response.created", **base, "agent_id": agent_id, "model": first.model})
    yield part("user-prompt", "response.part.created", {"content": message}, index)
    yield part("user-prompt", "response.part.completed", {"content": message}, index)
    text_index: int | None = None
    calls: dict[str, int] = {}
    try:
        async for event in events:
            if isinstance(event, Token):
                if text_index is None:
                    index += 1
                    text_index = index
                    yield part("text", "response.part.created", {"content": ""}, text_index)
                delta = {
                    "type": "response.part.delta",
                    **base,
                    "part_index": text_index,
                    "part_kind": "text",
                    "delta": event.text,
                }
                yield _frame("response.part.delta", delta)
            elif isinstance(event, ThoughtChanged):
                thought = event.thought
                if thought.get("author_type") not in parts.TOOL_AUTHORS:
                    continue
                call, ret = parts.tool_parts(thought)
                if thought["id"] not in calls:
                    index += 1
                    calls[thought["id"]] = index
                    yield part("tool-call", "response.part.created", call, index)
                if not thought.get("in_progress"):
                    yield part("tool-call", "response.part.completed", call, calls[thought["id"]])
                    index += 1
                    yield part("tool-return", "response.part.created", ret, index)
                    yield part("tool-return", "response.part.completed", ret, index)
            elif isinstance(event, chats.TitleChanged):
                yield _frame(
                    "response.chat.title.updated", {"type": "response.chat.title.updated", **base, "name": event.name}
                )
            elif isinstance(event, TurnFinished):
                if text_index is None:
                    index += 1
                    text_index = index
                    yield part("text", "response.part.created", {"content": ""}, text_index)
                yield part("text", "response.part.completed", {"content": event.answer}, text_index)
                row = await anyio.to_thread.run_sync(_answer_row, services, chat_id)
                done = {
                    "type": "response.completed",
                    **base,
                    "message_id": row,
                    "final_text": event.answer,
                    "usage": _usage(event),
                    "status": "completed",
                }
                yield _frame("response.completed", done)
                return
    except Exception as exc:  # after the stream began: say so in the stream
        text, code = _failure(exc)
        yield _frame("response.failed", {"type": "response.failed", **base, "message": text, "code": code})
    yield _frame("response.completed", {"type": "response.completed", **base, "message_id": None, "status": "failed"})


async def _v1_stream(
    services: Services, chat_id: int, agent_id: str, events: AsyncIterator[chats.ChatEvent], first: TurnStarted, turn: int
) -> AsyncGenerator[bytes, None]:
    rid = uuid.uuid4().hex
    base = {"response_id": rid, "chat_id": chat_id}
    created = {
        "type": "response.created",
        **base,
        "agent_id": agent_id,
        "model": first.model,
        "conversation_group_id": parts.group_id(chat_id, turn),
    }
    yield _frame("response.created", created)
    try:
        async for event in events:
            if isinstance(event, Token):
                yield _frame(
                    "response.output_text.delta", {"type": "response.output_text.delta", **base, "delta": event.text}
                )
            elif isinstance(event, ThoughtChanged):
                thought = event.thought
                if thought.get("author_type") not in parts.TOOL_AUTHORS:
                    continue
                call, ret = parts.tool_parts(thought)
                step = {"id": thought["id"], "type": f"tool_{call['tool_name']}", "timestamp": iso(None)}
                if thought.get("in_progress"):
                    start = {**step, "content": call["tool_name"], "args": call["args"]}
                    yield _frame(
                        "response.reasoning_step.start", {"type": "response.reasoning_step.start", **base, "step": start}
                    )
                else:
                    end = {**step, "result": {"content": ret["content"], "outcome": ret["outcome"]}, "token_usage": {}}
                    yield _frame("response.reasoning_step.end", {"type": "response.reasoning_step.end", **base, "step": end})
            elif isinstance(event, chats.TitleChanged):
                yield _frame(
                    "response.chat.title.updated", {"type": "response.chat.title.updated", **base, "name": event.name}
                )
            elif isinstance(event, TurnFinished):
                done = {"type": "response.output_text.completed", **base, "final_text": event.answer, "usage": _usage(event)}
                yield _frame("response.output_text.completed", done)
    except Exception as exc:
        text, code = _failure(exc)
        yield _frame("response.error", {"type": "response.error", **base, "message": text, "code": code})
    yield _frame(None, "[DONE]")


async def _send(
    request: Request, services: Services, principal: Principal, chat_id: int, body: MessageIn, *, v2: bool
) -> Any:
    message = _new_message(body)
    events, first, turn = await _started(services, principal, chat_id, message)
    if body.stream:
        stream = (
            _v2_stream(services, chat_id, message.agent_id, message.text, events, first, turn)
            if v2
            else _v1_stream(services, chat_id, message.agent_id, events, first, turn)
        )

        async def body_bytes() -> AsyncIterator[bytes]:
            # A client that goes away closes this generator: the stream and then the turn are
            # closed, which cancels the model's request and the tool call in flight.
            async with contextlib.aclosing(events), contextlib.aclosing(stream):
                async for chunk in stream:
                    yield chunk

        return StreamingResponse(
            body_bytes(), media_type=SSE, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    answer = ""
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TurnFinished):
                answer = event.answer
    return ok(answer)


def _run(fn: Callable[[], Any]) -> Any:
    return anyio.to_thread.run_sync(fn)


# -- Chat V2 ----------------------------------------------------------------------------------


@router.post(V2, summary="Open a chat with an agent")
async def create_chat_v2(body: ChatIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    chat = await _run(
        lambda: chats.create(
            services.store, principal, agent_id=body.agent_id, name=body.name, external_user_id=body.external_user_id
        )
    )
    return ok(chat_json(chat))


@router.post(f"{V2}/{{chat_id}}/messages", summary="Send a message; the answer streams as SSE", responses=_STREAM_DOC)
async def send_v2(chat_id: ChatId, body: MessageIn, request: Request, services: ServicesDep, principal: PrincipalDep) -> Any:
    return await _send(request, services, principal, chat_id, body, v2=True)


@router.get(f"{V2}/{{chat_id}}/messages", summary="A chat's question and answer parts, oldest first")
async def list_messages_v2(
    chat_id: ChatId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
    external_user_id: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    view = await _run(lambda: chats.view(services.store, principal, chat_id, external_user_id=external_user_id))
    found = parts.parts(view, with_tools=False)
    window = found[start : start + size]
    body = paged(request, [], total=len(found), limit=size, offset=start)
    body["data"] = {
        "chat_id": view.chat.id,
        "messages": window,
        "page": {"limit": size, "offset": start, "total_records": len(found)},
    }
    return body


@router.post(f"{V2}/{{chat_id}}/messages/{{message_id}}/feedbacks", summary="Thumbs and a comment on an answer")
@router.post(f"{V1}/{{chat_id}}/messages/{{message_id}}/feedbacks", summary="Thumbs and a comment on an answer")
async def feedback(
    chat_id: ChatId, message_id: ChatId, body: FeedbackIn, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    kind = FEEDBACK_KINDS.get(body.type) if isinstance(body.type, str) else None
    if kind is None:
        raise InvalidInput("type must be sys_helpful (thumbs up) or sys_improve (thumbs down)")
    row = await _run(
        lambda: chats.add_feedback(
            services.store,
            principal,
            chat_id,
            message_id,
            kind=kind,
            content=body.content,
            external_user_id=body.external_user_id,
        )
    )
    return ok(parts.feedback_json(row))


# -- Chat V1 ----------------------------------------------------------------------------------


@router.get(f"{V1}/published-agents", summary="The agents with a published version")
async def published_agents(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        db = services.store
        viewer = registry.viewer_for(db, principal)
        out = []
        for a in registry.list_visible(db, viewer, principal):
            history = registry.versions(db, viewer, principal, a.id)
            live = next((v for v in history if v.status == "published"), None)
            if live is not None:
                out.append(agent_json(db, replace(a, definition=live.definition), history))
        return out

    return ok(await _run(run))


@router.post(V1, summary="Open a chat with an agent")
async def create_chat_v1(body: ChatIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    if not isinstance(body.name, str) or not body.name.strip():
        raise InvalidInput("name is required")
    return await create_chat_v2(body, services, principal)


@router.get(V1, summary="The key's chats")
async def list_chats_v1(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
    order_by: Annotated[Literal[ORDERS], Query()] = "-created_at",  # type: ignore[valid-type]
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    external_user_id: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    newest = order_by in ("desc", "descending", "-created_at")
    found, total = await _run(
        lambda: chats.list_chats(
            services.store,
            principal,
            agent_id=agent_id,
            external_user_id=external_user_id,
            newest_first=newest,
            limit=size,
            offset=start,
        )
    )
    return paged(request, [chat_json(c) for c in found], total=total, limit=size, offset=start)


@router.put(f"{V1}/{{chat_id}}", summary="Rename a chat")
async def rename_chat(chat_id: ChatId, body: RenameIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    chat = await _run(
        lambda: chats.rename(services.store, principal, chat_id, name=body.name, external_user_id=body.external_user_id)
    )
    return ok(chat_json(chat))


@router.get(f"{V1}/{{chat_id}}/messages", summary="A chat's messages, oldest first")
async def list_messages_v1(
    chat_id: ChatId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
    external_user_id: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)

    def run() -> tuple[list[dict[str, Any]], int]:
        view = chats.view(services.store, principal, chat_id, external_user_id=external_user_id)
        row = services.store.get_assistant(view.chat.assistant_id)
        found = parts.message_json(view, row.name if row else "")
        return found[start : start + size], len(found)

    window, total = await _run(run)
    return paged(request, window, total=total, limit=size, offset=start)


@router.post(f"{V1}/{{chat_id}}/messages", summary="Send a message; the answer streams as SSE", responses=_STREAM_DOC)
async def send_v1(chat_id: ChatId, body: MessageIn, request: Request, services: ServicesDep, principal: PrincipalDep) -> Any:
    return await _send(request, services, principal, chat_id, body, v2=False)


# -- files ------------------------------------------------------------------------------------


def file_json(upload: Upload, scope: str) -> dict[str, Any]:
    return {
        "uuid": upload.public_id,
        "id": upload.public_id,
        "attachment_id": upload.public_id,
        "original_name": upload.name,
        "content_type": upload.content_type,
        "size": upload.size,
        "file_url": None,
        "scope": scope,
        "created_at": iso(upload.created_at),
    }


async def _store_upload(services: Services, principal: Principal, part: UploadFile) -> Upload:
    data = await part.read(uploads.MAX_UPLOAD_BYTES + 1)
    kind = (part.content_type or "").split(";")[0].strip()
    if kind == uploads.DEFAULT_CONTENT_TYPE:
        raise InvalidInput("send the file with its own Content-Type (application/octet-stream is refused)")
    stored: Upload = await _run(
        lambda: uploads.store(services.store, principal, name=part.filename or "", content_type=kind or None, data=data)
    )
    return stored


def _scope(value: str | None) -> str:
    if value is None or value == "":
        return "persistent"
    try:
        parsed = json.loads(value) if value.startswith("{") else {"scope": value}
    except ValueError:
        raise InvalidInput('data must be a JSON object such as {"scope": "persistent"}') from None
    scope = parsed.get("scope", "persistent") if isinstance(parsed, dict) else None
    if scope not in ("persistent", "ephemeral"):
        raise InvalidInput("scope must be persistent or ephemeral")
    return str(scope)


@router.post(f"{V1}/upload-file", summary="Upload a file to attach to messages")
async def upload_file(
    services: ServicesDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="the file")],
    data: Annotated[str | None, Form(max_length=1000)] = None,
) -> dict[str, Any]:
    scope = _scope(data)
    return ok(file_json(await _store_upload(services, principal, file), scope))


@router.post("/api/v1/external/files", summary="Upload a file to attach to messages")
async def upload_external(
    services: ServicesDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="the file")],
    scope: Annotated[str | None, Form(max_length=100)] = None,
    purpose: Annotated[str | None, Form(max_length=100)] = None,
    scope_query: Annotated[str | None, Query(alias="scope", max_length=100)] = None,
) -> dict[str, Any]:
    chosen = _scope(scope or scope_query)
    return ok(file_json(await _store_upload(services, principal, file), chosen))


@router.get("/api/v1/external/files/{file_id}", summary="An uploaded file's metadata")
async def get_file(
    file_id: Annotated[str, Path(max_length=64)], services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    found = await _run(lambda: uploads.fetch(services.store, principal, file_id))
    return ok(
        {
            **file_json(found, "persistent"),
            "stored_file": {"available": True, "reason": None, "revision": found.public_id, "size_bytes": found.size},
            "text_snapshot": {"available": False, "revision": None},
        }
    )
