"""``/v1``: the OpenAI chat API, so any OpenAI client or SDK can ask about the code.

The model name picks where to look: ``repolens`` searches every data source the key sees,
``repolens/<name>`` one repository or workspace (``GET /v1/models`` lists them). The client
sends the whole conversation each time, as OpenAI clients do, so nothing is stored server-side;
the client's own system messages are not passed on (the rules of a grounded answer are ours).
Streaming chunks follow OpenAI's format exactly (specs/ecosystem.md §3.2), with the citations
in a vendor field ``x_citations`` of the last content chunk and of the non-streamed completion.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from repolens import catalog
from repolens.chat.engine import ChatRequest, Delta, Finished, finished_event, split_turns
from repolens.errors import NotFound, RepolensError, status_of
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.surfaces.http.errors import openai_error_body
from repolens.surfaces.http.schemas import OpenAIChatBody, OpenAIChatCompletion, OpenAIModelList
from repolens.surfaces.http.streaming import SSE_EVENT_SCHEMA, SSE_HEADERS, first_event, sse

router = APIRouter(prefix="/v1", tags=["openai"])

MODEL_PREFIX = "repolens"
_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat.completion, or chat.completion.chunk SSE frames when `stream` is true.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def _names_for(model: str, services: Any, principal: Any) -> tuple[str, ...]:
    model = model.strip()
    if model == MODEL_PREFIX:
        return ()
    if model.startswith(MODEL_PREFIX + "/") and model[len(MODEL_PREFIX) + 1 :].strip():
        name = model[len(MODEL_PREFIX) + 1 :].strip()
        catalog.get_data_source(services.store, principal, name)  # NotFound / Forbidden here, clearly
        return (name,)
    raise NotFound(f"model {model!r} not found: use 'repolens' or 'repolens/<data source name>' (see GET /v1/models)")


@router.get("/models", response_model=OpenAIModelList, summary="The data sources, as OpenAI models")
def models(services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    created = int(time.time())
    names = [MODEL_PREFIX] + [f"{MODEL_PREFIX}/{d.name}" for d in catalog.list_data_sources(services.store, principal)]
    data = [{"id": n, "object": "model", "created": created, "owned_by": "repolens"} for n in names]
    return JSONResponse({"object": "list", "data": data})


@router.post(
    "/chat/completions",
    response_model=OpenAIChatCompletion,
    responses=_STREAM_DOC,
    summary="OpenAI-compatible chat completion, grounded in the indexed code",
)
async def chat_completions(body: OpenAIChatBody, services: ServicesDep, principal: PrincipalDep) -> Any:
    question, history = split_turns([(m.role, _text(m.content)) for m in body.messages])
    names = _names_for(body.model, services, principal)
    request = ChatRequest(question=question, names=names, history=history, remember=False)
    events = services.answers.answer(principal, request)
    try:
        await first_event(events)
    except BaseException:
        await events.aclose()
        raise
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    model = body.model

    if not body.stream:
        async with contextlib.aclosing(events):
            finished = await finished_event(events)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": finished.answer, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finished.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": finished.prompt_tokens,
                    "completion_tokens": finished.completion_tokens,
                    "total_tokens": finished.prompt_tokens + finished.completion_tokens,
                },
                "x_citations": finished.citations,
            }
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        frame: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [choice],
        }
        if include_usage:
            frame["usage"] = None
        frame.update(extra)
        return sse(frame)

    async def frames() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        yield chunk({"content": event.text})
                    elif isinstance(event, Finished):
                        yield chunk({}, event.finish_reason, x_citations=event.citations)
                        if include_usage:
                            usage = {
                                "prompt_tokens": event.prompt_tokens,
                                "completion_tokens": event.completion_tokens,
                                "total_tokens": event.prompt_tokens + event.completion_tokens,
                            }
                            last = {
                                "id": completion_id,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": model,
                                "system_fingerprint": None,
                                "choices": [],
                                "usage": usage,
                            }
                            yield sse(last)
        except RepolensError as exc:
            yield sse(openai_error_body(status_of(exc), str(exc)))  # OpenAI's in-stream error frame
        yield sse("[DONE]")

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)
