"""Server-sent events shared by the chat dialects (CodeAlive's ``/api/chat``, OpenAI's ``/v1``):
the frame format, the headers, the OpenAPI description of a frame, and the first step of every
streamed answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from repolens.chat.engine import ChatEvent, Started

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of tokens
# One server-sent event as OpenAPI tools read a stream: an event name and a JSON (or [DONE]) payload.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "required": ["data"],
}


def sse(data: dict[str, Any] | str, *, event: str | None = None) -> str:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


async def first_event(events: AsyncIterator[ChatEvent]) -> Started:
    """The ``Started`` event: everything that can fail before an answer (bad input, scope,
    limits, retrieval) fails here, while an ordinary HTTP error can still be sent."""
    event = await anext(events)
    assert isinstance(event, Started)
    return event
