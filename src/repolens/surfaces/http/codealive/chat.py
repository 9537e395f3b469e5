"""``/api/chat``: CodeAlive's chat completions (JSON and SSE) and the conversations behind them.

The SSE stream satisfies both parsers CodeAlive's clients use (specs/codealive.md §3.5): the
metadata event first, then content frames carrying both the documented ``chunk``/``type`` fields
and OpenAI-style ``choices[].delta.content``, a ``done`` frame with the citations, and
``data: [DONE]`` last. A failure after the stream started is an ``event: error`` frame with
problem details; anything wrong before it started is an ordinary HTTP error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from repolens.chat.engine import ChatRequest, Delta, Finished, finished_event, split_turns
from repolens.errors import RepolensError, status_of
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.surfaces.http.errors import problem_body, request_id
from repolens.surfaces.http.schemas import ChatBody, ChatResponse, ConversationDetail, ConversationList
from repolens.surfaces.http.streaming import SSE_EVENT_SCHEMA, SSE_HEADERS, first_event, sse
from repolens.views import iso

router = APIRouter(prefix="/api/chat", tags=["chat"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer: SSE frames when `stream` is true (the default), else JSON.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


def chat_request(body: ChatBody) -> ChatRequest:
    """The engine's request for CodeAlive's body: the last user message is the question."""
    question, history = split_turns([(m.role, m.content) for m in body.messages])
    names = [*(body.names or ()), *(ref.id for ref in body.dataSources or ()), *(body.datasource_ids or ())]
    conversation = body.conversationId or body.conversation_id
    return ChatRequest(
        question=question,
        names=tuple(n for n in names if n.strip()),
        conversation_id=conversation or None,
        history=history,
        debug=body.debug,
    )


def _usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


@router.post(
    "/completions",
    summary="Ask a question about the code (CodeAlive chat)",
    response_model=ChatResponse,
    responses=_STREAM_DOC,
)
async def completions(body: ChatBody, request: Request, services: ServicesDep, principal: PrincipalDep) -> Any:
    engine = services.answers
    chat = chat_request(body)
    events = engine.answer(principal, chat)
    try:
        started = await first_event(events)
    except BaseException:
        await events.aclose()
        raise
    if not body.stream:
        async with contextlib.aclosing(events):
            finished = await finished_event(events)
        message = {"role": "assistant", "content": finished.answer}
        out: dict[str, Any] = {
            "content": finished.answer,
            "conversationId": started.conversation_id,
            "messageId": started.message_id,
            "id": started.conversation_id or started.message_id,
            "choices": [{"index": 0, "message": message, "finish_reason": finished.finish_reason}],
            "citations": finished.citations,
            "usage": _usage(finished),
            "model": started.model,
            "mode": started.mode,
        }
        if body.debug:
            out["plan"] = list(started.plan)
        return JSONResponse(out)
    rid = request_id(request)

    async def frames() -> AsyncIterator[str]:
        meta: dict[str, Any] = {
            "event": "metadata",
            "conversationId": started.conversation_id,
            "messageId": started.message_id,
            "model": started.model,
            "mode": started.mode,
        }
        if body.debug:
            meta["plan"] = list(started.plan)
        yield sse(meta, event="message")
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        yield sse(
                            {
                                "event": "content",
                                "type": "content",
                                "chunk": event.text,
                                "choices": [{"index": 0, "delta": {"content": event.text}}],
                            }
                        )
                    elif isinstance(event, Finished):
                        yield sse(
                            {
                                "event": "done",
                                "type": "done",
                                "done": True,
                                "citations": event.citations,
                                "usage": _usage(event),
                                "finishReason": event.finish_reason,
                            }
                        )
        except RepolensError as exc:
            problem = problem_body(status_of(exc), str(exc))
            problem["requestId"] = rid
            yield sse(problem, event="error")
        yield sse("[DONE]")

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


def _conversation_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "title": row.title,
        "dataSources": list(row.scope),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


@router.get("/conversations", response_model=ConversationList, summary="This key's conversations, newest first")
def list_conversations(services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    rows = services.store.list_conversations(principal.key.key_id)
    return JSONResponse({"conversations": [_conversation_out(r) for r in rows]})


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, summary="A conversation's turns")
def get_conversation(conversation_id: str, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    row = services.answers.owned_conversation(principal, conversation_id)
    turns = [
        {
            "messageId": m.message_id,
            "role": m.role,
            "content": m.content,
            "citations": json.loads(m.citations),
            "createdAt": iso(m.created_at),
        }
        for m in services.store.messages(row.id)
    ]
    return JSONResponse({**_conversation_out(row), "messages": turns})


@router.delete("/conversations/{conversation_id}", status_code=204, summary="Delete a conversation")
def delete_conversation(conversation_id: str, services: ServicesDep, principal: PrincipalDep) -> None:
    row = services.answers.owned_conversation(principal, conversation_id)
    services.store.delete_conversation(row.id)
