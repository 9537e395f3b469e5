"""Language-model providers behind one interface: stream the answer to a list of messages.

Two wire formats cover the field: OpenAI's ``/chat/completions`` (OpenAI itself, vLLM, Ollama,
LM Studio, llama.cpp's server and most gateways) and Anthropic's ``/v1/messages``. Both stream
server-sent events; both are spoken here with httpx, so no vendor SDK is needed at run time.

Reliability rules shared by both:

* Timeouts on connect and between bytes (a stalled stream fails instead of hanging).
* Retries with exponential backoff on 429 and 5xx (honouring ``Retry-After``), but only before
  the first token: once text has reached the caller, a retry would repeat it.
* Upstream chunks are parsed leniently (``choices: null`` on usage chunks, keep-alive comments,
  unknown events); what we emit downstream is strict.
* Cancelling the consumer closes the HTTP stream, so the provider stops generating.

Agents (``repolens.agents``) use the same providers with tool calling: ``stream_agent`` sends
tool declarations (OpenAI ``tools``, Anthropic ``tools`` with ``input_schema``) and a transcript
that may hold earlier tool calls and their results, streams the text deltas, and leaves the tool
calls the model asked for in ``Completion.tool_calls`` (assembled from OpenAI's indexed
``tool_calls`` deltas or Anthropic's ``tool_use`` blocks and ``input_json_delta`` pieces).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import httpx

from repolens.errors import InvalidInput, ProviderError
from repolens.settings import Settings

Role = Literal["system", "user", "assistant"]

RETRIES = 4  # attempts after the first: ~0.5 + 1 + 2 + 4 s of backoff covers a typical 429 burst
BACKOFF_BASE_S = 0.5
MAX_RETRY_AFTER_S = 30  # a provider asking for longer is effectively down for this request
CONNECT_TIMEOUT_S = 10
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version every current model accepts


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt."""

    role: Role
    content: str


AgentRole = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, and its arguments as JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made; ``arguments`` is the JSON text it wrote (maybe invalid)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """One message of an agent transcript: an assistant turn may carry tool calls, a ``tool``
    message answers the call ``tool_call_id`` (``is_error`` when the tool failed)."""

    role: AgentRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Sampling:
    """The sampling settings an assistant may choose; None leaves the provider's default."""

    temperature: float | None = 0.0  # answers about code should be reproducible
    top_p: float | None = None


@dataclass(slots=True)
class StreamUsage:
    """Token counts the provider reported (0 when it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class Completion:
    """Filled in while a stream runs: the finish reason and the provider's usage report."""

    finish_reason: str = "stop"
    usage: StreamUsage = field(default_factory=StreamUsage)
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Tool calls still arriving, by the provider's block/call index: [id, name, argument pieces].
    pending: dict[int, list[Any]] = field(default_factory=dict)

    def close_tool_calls(self) -> None:
        """Turn the pieces of every streamed tool call into ``tool_calls``, in index order."""
        for index in sorted(self.pending):
            call_id, name, pieces = self.pending[index]
            if name:
                self.tool_calls.append(ToolCall(call_id or f"call_{index}", name, "".join(pieces) or "{}"))
        self.pending.clear()


class LLM(Protocol):
    """A chat model that streams text."""

    name: str  # the model id, as reported in answers

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, done: Completion) -> AsyncGenerator[str, None]:
        """Text deltas of the answer; ``done`` receives the finish reason and usage."""
        ...

    def stream_agent(
        self,
        messages: Sequence[AgentMessage],
        *,
        tools: Sequence[ToolSpec],
        max_tokens: int,
        sampling: Sampling,
        done: Completion,
    ) -> AsyncGenerator[str, None]:
        """Text deltas of one model step with ``tools`` offered; ``done.tool_calls`` receives the
        calls the model made (empty when it answered)."""
        ...

    def with_model(self, model: str) -> LLM:
        """The same provider, endpoint and key, asking for another model by name."""
        ...


def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
    if response is not None:
        raw = str(response.headers.get("retry-after", ""))
        if raw.replace(".", "", 1).isdigit():
            return min(float(raw), float(MAX_RETRY_AFTER_S))
    return BACKOFF_BASE_S * float(2**attempt) * (0.8 + 0.4 * random.random())  # jitter spreads retries


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def _sse_lines(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) for every server-sent event of a response."""
    event, data = "", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", list[str]()
        elif line.startswith(":"):
            continue  # keep-alive comment
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


def _error_text(response: httpx.Response, body: bytes) -> str:
    try:
        parsed = json.loads(body)
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        message = err.get("message") if isinstance(err, dict) else None
        if message:
            return str(message)[:300]
    except ValueError:
        pass
    return body.decode("utf-8", "replace")[:300] or response.reason_phrase


class _HttpLLM:
    """Shared plumbing: one client, the retry loop around opening a stream."""

    name: str

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.name = model
        self.timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)

    def with_model(self, model: str) -> LLM:
        twin = copy.copy(self)  # shares nothing mutable: the HTTP client is made per request
        twin.name = model
        return cast(LLM, twin)

    def _request(self, messages: Sequence[ChatMessage], max_tokens: int) -> tuple[str, dict[str, str], dict[str, object]]:
        raise NotImplementedError

    def _parse(self, event: str, data: str, done: Completion) -> str | None:
        raise NotImplementedError

    def _agent_request(
        self, messages: Sequence[AgentMessage], tools: Sequence[ToolSpec], max_tokens: int, sampling: Sampling
    ) -> tuple[str, dict[str, str], dict[str, object]]:
        raise NotImplementedError

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, done: Completion
    ) -> AsyncGenerator[str, None]:
        url, headers, body = self._request(messages, max_tokens)
        async with contextlib.aclosing(self._open(url, headers, body, done)) as deltas:
            async for text in deltas:
                yield text

    async def stream_agent(
        self,
        messages: Sequence[AgentMessage],
        *,
        tools: Sequence[ToolSpec],
        max_tokens: int,
        sampling: Sampling,
        done: Completion,
    ) -> AsyncGenerator[str, None]:
        url, headers, body = self._agent_request(messages, tools, max_tokens, sampling)
        async with contextlib.aclosing(self._open(url, headers, body, done)) as deltas:
            async for text in deltas:
                yield text
        done.close_tool_calls()

    async def _open(
        self, url: str, headers: dict[str, str], body: dict[str, object], done: Completion
    ) -> AsyncGenerator[str, None]:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for attempt in range(RETRIES + 1):
                try:
                    async with client.stream("POST", url, headers=headers, json=body) as response:
                        if response.status_code != 200:
                            payload = await response.aread()
                            if _retryable(response.status_code) and attempt < RETRIES:
                                await asyncio.sleep(_retry_delay(attempt, response))
                                continue
                            raise ProviderError(
                                f"the language model at {self.base_url} answered {response.status_code}: "
                                f"{_error_text(response, payload)}"
                            )
                        async for event, data in _sse_lines(response):
                            if data.strip() == "[DONE]":
                                return
                            text = self._parse(event, data, done)
                            if text:
                                yield text
                        return
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    if attempt < RETRIES:
                        await asyncio.sleep(_retry_delay(attempt, None))
                        continue
                    raise ProviderError(f"the language model at {self.base_url} is unreachable: {exc}") from exc
                except httpx.HTTPError as exc:  # a stream broken after it started: no retry
                    raise ProviderError(f"the language model stream from {self.base_url} broke: {exc}") from exc


class OpenAICompatible(_HttpLLM):
    """Any server that speaks OpenAI's streaming ``/chat/completions``."""

    def _request(self, messages: Sequence[ChatMessage], max_tokens: int) -> tuple[str, dict[str, str], dict[str, object]]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body: dict[str, object] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "temperature": 0,  # answers about code should be reproducible
        }
        return f"{self.base_url}/chat/completions", headers, body

    def _agent_request(
        self, messages: Sequence[AgentMessage], tools: Sequence[ToolSpec], max_tokens: int, sampling: Sampling
    ) -> tuple[str, dict[str, str], dict[str, object]]:
        url, headers, body = self._request([], max_tokens)
        wire: list[dict[str, object]] = []
        for m in messages:
            if m.role == "tool":
                wire.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
            elif m.tool_calls:
                calls = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
                wire.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
            else:
                wire.append({"role": m.role, "content": m.content})
        body["messages"] = wire
        if tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools
            ]
        body.pop("temperature")
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        return url, headers, body

    def _parse(self, event: str, data: str, done: Completion) -> str | None:
        try:
            chunk = json.loads(data)
        except ValueError:
            return None
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk:
            err = chunk["error"]
            detail = err.get("message", err) if isinstance(err, dict) else err
            raise ProviderError(f"the language model failed mid-answer: {detail}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            done.usage = StreamUsage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        choices = chunk.get("choices") or []  # vLLM sends "choices": null on the usage chunk
        if not choices or not isinstance(choices[0], dict):
            return None
        if choices[0].get("finish_reason"):
            done.finish_reason = str(choices[0]["finish_reason"])
        delta = choices[0].get("delta") or {}
        if not isinstance(delta, dict):
            return None
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            slot = done.pending.setdefault(int(call.get("index") or 0), ["", "", []])
            function = call.get("function") or {}
            if call.get("id"):
                slot[0] = str(call["id"])
            if isinstance(function, dict):
                if function.get("name"):
                    slot[1] = str(function["name"])
                if function.get("arguments"):
                    slot[2].append(str(function["arguments"]))
        content = delta.get("content")
        return content if isinstance(content, str) else None


class Anthropic(_HttpLLM):
    """Anthropic's streaming Messages API."""

    def _request(self, messages: Sequence[ChatMessage], max_tokens: int) -> tuple[str, dict[str, str], dict[str, object]]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        headers = {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION, "Accept": "text/event-stream"}
        body: dict[str, object] = {
            "model": self.name,
            "system": system,
            "messages": turns,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        return f"{self.base_url}/v1/messages", headers, body

    def _agent_request(
        self, messages: Sequence[AgentMessage], tools: Sequence[ToolSpec], max_tokens: int, sampling: Sampling
    ) -> tuple[str, dict[str, str], dict[str, object]]:
        system = [ChatMessage("system", m.content) for m in messages if m.role == "system"]
        url, headers, body = self._request(system, max_tokens)
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            if m.role == "tool":
                block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content, "is_error": m.is_error}
                # Anthropic wants all results of one step in one user message, right after the calls.
                if turns and turns[-1]["role"] == "user" and isinstance(turns[-1]["content"], list):
                    turns[-1]["content"].append(block)
                else:
                    turns.append({"role": "user", "content": [block]})
            elif m.tool_calls:
                content: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
                content += [
                    {"type": "tool_use", "id": c.id, "name": c.name, "input": _json_object(c.arguments)}
                    for c in m.tool_calls
                ]
                turns.append({"role": "assistant", "content": content})
            else:
                turns.append({"role": m.role, "content": m.content})
        body["messages"] = turns
        if tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
        body.pop("temperature")
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        return url, headers, body

    def _parse(self, event: str, data: str, done: Completion) -> str | None:
        try:
            payload = json.loads(data)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type", event)
        if kind == "error":
            err = payload.get("error") or {}
            raise ProviderError(f"the language model failed mid-answer: {err.get('message', err)}")
        if kind == "message_start":
            usage = (payload.get("message") or {}).get("usage") or {}
            done.usage.prompt_tokens = int(usage.get("input_tokens") or 0)
        elif kind == "message_delta":
            usage = payload.get("usage") or {}
            done.usage.completion_tokens = int(usage.get("output_tokens") or 0)
            reason = (payload.get("delta") or {}).get("stop_reason")
            if reason:
                done.finish_reason = {"max_tokens": "length", "tool_use": "tool_calls"}.get(reason, "stop")
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if isinstance(block, dict) and block.get("type") == "tool_use":
                done.pending[int(payload.get("index") or 0)] = [str(block.get("id", "")), str(block.get("name", "")), []]
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return str(delta.get("text", ""))
            if delta.get("type") == "input_json_delta":
                slot = done.pending.get(int(payload.get("index") or 0))
                if slot is not None:
                    slot[2].append(str(delta.get("partial_json", "")))
        return None


def _json_object(text: str) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``tool_use.input`` must be."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def load_llm(settings: Settings) -> LLM | None:
    """The configured model, or None for retrieval-only answers."""
    if not settings.llm_provider:
        return None
    if not settings.llm_model:
        raise InvalidInput("REPOLENS_LLM_MODEL is required when REPOLENS_LLM_PROVIDER is set")
    if settings.llm_provider == "anthropic":
        if not settings.llm_api_key:
            raise InvalidInput("REPOLENS_LLM_API_KEY is required for the anthropic provider")
        return Anthropic(
            base_url=settings.llm_base_url or ANTHROPIC_DEFAULT_URL,
            api_key=settings.llm_api_key,
            model=settings.llm_model,
            timeout_s=settings.llm_timeout_s,
        )
    return OpenAICompatible(
        base_url=settings.llm_base_url or OPENAI_DEFAULT_URL,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )
