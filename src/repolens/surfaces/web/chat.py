"""The chat pages: conversations, and answers streamed to the page as they are written.

The page posts its form to ``/chat/stream`` with ``fetch`` and reads server-sent events: ``start``
(the conversation's id), ``delta`` (answer text, shown as plain text while it arrives) and
``done`` (the whole answer rendered server-side as sanitised markdown with linked citations,
which replaces the plain text). Without script the same form posts to ``/chat/ask``, which waits
for the answer and shows the conversation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from repolens import catalog, operations
from repolens.access.sessions import Session
from repolens.chat.engine import ChatRequest, Delta, Finished, Started
from repolens.errors import RepolensError
from repolens.surfaces.web import WEB_PREFIX
from repolens.surfaces.web.pages import page, see_other
from repolens.surfaces.web.render import render_answer
from repolens.surfaces.web.session import Form, FormDep, SessionDep, services_of

router = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # no proxy buffering of tokens


def _conversation_page(request: Request, session: Session, conversation_id: str | None) -> HTMLResponse:
    services = services_of(request)
    principal = session.principal
    listing = services.store.list_conversations(principal.key.key_id)
    current = None
    turns: list[dict[str, Any]] = []
    if conversation_id:
        current = services.answers.owned_conversation(principal, conversation_id)
        for m in services.store.messages(current.id):
            citations = json.loads(m.citations)
            turns.append(
                {
                    "role": m.role,
                    "text": m.content,
                    "html": render_answer(m.content, citations) if m.role == "assistant" else None,
                    "citations": citations,
                }
            )
    choices = catalog.list_data_sources(services.store, principal)
    return page(request, session, "chat.html", conversations=listing, current=current, turns=turns, choices=choices)


@router.get("/chat", response_class=HTMLResponse)
def chat_home(request: Request, session: SessionDep) -> HTMLResponse:
    return _conversation_page(request, session, None)


@router.get("/chat/{conversation_id}", response_class=HTMLResponse)
def chat_conversation(conversation_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    return _conversation_page(request, session, conversation_id)


def _chat_request(form: Form) -> ChatRequest:
    source = form.get("source").strip()
    return ChatRequest(
        question=form.get("question"),
        names=(source,) if source else (),
        conversation_id=form.get("conversation").strip() or None,
    )


@router.post("/chat/ask")
async def ask(request: Request, session: SessionDep, form: FormDep) -> Response:
    """The answer without script: wait for it, then show the conversation."""
    started, _ = await services_of(request).answers.complete(session.principal, _chat_request(form))
    return see_other(f"{WEB_PREFIX}/chat/{started.conversation_id}")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/chat/stream")
async def stream(request: Request, session: SessionDep, form: FormDep) -> StreamingResponse:
    events = services_of(request).answers.answer(session.principal, _chat_request(form))
    try:
        # Everything that can refuse the question (bad input, scope, limits) fails here, while an
        # ordinary error page can still be sent.
        started = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    assert isinstance(started, Started)

    async def frames() -> AsyncIterator[str]:
        yield _event("start", {"conversationId": started.conversation_id, "mode": started.mode})
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        yield _event("delta", {"text": event.text})
                    elif isinstance(event, Finished):
                        html = await run_in_threadpool(render_answer, event.answer, event.citations)
                        yield _event(
                            "done",
                            {
                                "conversationId": started.conversation_id,
                                "html": str(html),
                                "url": f"{WEB_PREFIX}/chat/{started.conversation_id}",
                            },
                        )
        except RepolensError as exc:
            yield _event("error", {"message": str(exc)})

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/chat/{conversation_id}/rename")
def rename(conversation_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    operations.rename_conversation(services_of(request), session.principal, conversation_id, form.get("title"))
    return see_other(f"{WEB_PREFIX}/chat/{conversation_id}")


@router.post("/chat/{conversation_id}/delete")
def delete(conversation_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    operations.delete_conversation(services_of(request), session.principal, conversation_id)
    return see_other(f"{WEB_PREFIX}/chat")
