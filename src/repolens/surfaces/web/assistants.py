"""The assistants pages: the assistants a principal may use (the same ones CodeMie's assistants
API lists), one assistant with its conversation, and a turn streamed to the page as it runs.

The stream speaks the chat page's events (``start``, ``delta``, ``done``, ``error``), so the one
script that streams chat answers streams an assistant's too; without script the form posts to
``/assistants/{id}/ask``, which waits for the turn. Turns run in ``repolens.agents`` with the
server's model (retrieval-only without one), under the signed-in principal's scope and budgets.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from repolens.access.sessions import Session
from repolens.agents import assistants as registry
from repolens.agents.model import Assistant, Viewer
from repolens.agents.runtime import Token, TurnEvent, TurnFinished, TurnRequest, TurnStarted
from repolens.errors import RepolensError
from repolens.surfaces.web import WEB_PREFIX
from repolens.surfaces.web.chat import SSE_HEADERS, event_frame
from repolens.surfaces.web.pages import page, see_other
from repolens.surfaces.web.render import render, render_answer
from repolens.surfaces.web.session import Form, FormDep, SessionDep, services_of

router = APIRouter()
MAX_ID_CHARS = 100  # an assistant or conversation id is a uuid (36); nothing longer is one
Identifier = Annotated[str, Query(max_length=MAX_ID_CHARS)]


def _viewer(request: Request, session: Session) -> Viewer:
    return registry.viewer_for(services_of(request).store, session.principal)


def _url(assistant_id: str, conversation_id: str = "") -> str:
    base = f"{WEB_PREFIX}/assistants/{quote(assistant_id, safe='')}"
    return f"{base}?conversation={quote(conversation_id, safe='')}" if conversation_id else base


@router.get("/assistants", response_class=HTMLResponse)
def assistants_home(request: Request, session: SessionDep) -> HTMLResponse:
    store = services_of(request).store
    listing = registry.list_visible(store, _viewer(request, session), session.principal)
    return page(request, session, "assistants.html", assistants=listing)


def _turns(request: Request, session: Session, assistant: Assistant, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's turns, when it is the viewer's and was held with this assistant."""
    view = registry.conversation(services_of(request).store, _viewer(request, session), conversation_id)
    if view.assistant_id not in (None, assistant.id):
        return []
    turns = []
    for m in view.messages:
        citations = json.loads(m.citations) if m.citations else []
        html = render_answer(m.content, citations) if m.role == "assistant" else None
        kept = view.turns.get(m.message_id)
        thoughts = json.loads(kept.thoughts) if kept is not None and kept.thoughts else []
        turns.append({"role": m.role, "text": m.content, "html": html, "citations": citations, "thoughts": thoughts})
    return turns


@router.get("/assistants/{assistant_id}", response_class=HTMLResponse)
def assistant_page(assistant_id: str, request: Request, session: SessionDep, conversation: Identifier = "") -> HTMLResponse:
    store = services_of(request).store
    assistant = registry.get(store, _viewer(request, session), session.principal, assistant_id)
    turns = _turns(request, session, assistant, conversation) if conversation else []
    return page(
        request,
        session,
        "assistant.html",
        assistant=assistant,
        conversation=conversation if turns else "",
        turns=turns,
        stream_url=f"{WEB_PREFIX}/assistants/{quote(assistant.id, safe='')}/stream",
        ask_url=f"{WEB_PREFIX}/assistants/{quote(assistant.id, safe='')}/ask",
    )


async def _start(
    request: Request, session: Session, assistant_id: str, form: Form
) -> tuple[str, AsyncGenerator[TurnEvent, None]]:
    """The turn's events, its first (``TurnStarted``) already read: everything that can refuse the
    turn (scope, size, an unknown conversation) fails here, while an error page can still be sent."""
    services = services_of(request)
    principal = session.principal
    viewer = _viewer(request, session)
    assistant = await run_in_threadpool(registry.get, services.store, viewer, principal, assistant_id)
    turn = TurnRequest(text=form.get("question"), conversation_id=form.get("conversation").strip() or None)
    loader = registry.sub_loader(services.store, viewer, principal)
    events = services.agents.run(principal, viewer.owner, assistant, turn, load_assistant=loader)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    assert isinstance(first, TurnStarted)
    return first.conversation_id, events


@router.post("/assistants/{assistant_id}/ask")
async def ask(assistant_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    """A turn without script: wait for it, then show the conversation."""
    conversation_id, events = await _start(request, session, assistant_id, form)
    async with contextlib.aclosing(events) as rest:
        async for _ in rest:
            pass
    return see_other(_url(assistant_id, conversation_id))


def _citations_html(citations: tuple[dict[str, Any], ...]) -> Markup:
    # The template escapes every value it is given: its output is markup as it stands.
    return Markup(render("citations.html", citations=citations)) if citations else Markup("")


@router.post("/assistants/{assistant_id}/stream")
async def stream(assistant_id: str, request: Request, session: SessionDep, form: FormDep) -> StreamingResponse:
    conversation_id, events = await _start(request, session, assistant_id, form)

    async def frames() -> AsyncIterator[str]:
        yield event_frame("start", {"conversationId": conversation_id})
        try:
            async with contextlib.aclosing(events) as rest:
                async for event in rest:
                    if isinstance(event, Token):
                        yield event_frame("delta", {"text": event.text})
                    elif isinstance(event, TurnFinished):
                        html = await run_in_threadpool(render_answer, event.answer, event.citations)
                        html += _citations_html(event.citations)
                        url = _url(assistant_id, conversation_id)
                        yield event_frame("done", {"conversationId": conversation_id, "html": str(html), "url": url})
        except RepolensError as exc:
            yield event_frame("error", {"message": str(exc)})

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)
