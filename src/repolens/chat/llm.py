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
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

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


class LLM(Protocol):
    """A chat model that streams text."""

    name: str  # the model id, as reported in answers

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, done: Completion) -> AsyncGenerator[str, None]:
        """Text deltas of the answer; ``done`` receives the finish reason and usage."""
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

    def _request(self, messages: Sequence[ChatMessage], max_tokens: int) -> tuple[str, dict[str, str], dict[str, object]]:
        raise NotImplementedError

    def _parse(self, event: str, data: str, done: Completion) -> str | None:
        raise NotImplementedError

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, done: Completion
    ) -> AsyncGenerator[str, None]:
        url, headers, body = self._request(messages, max_tokens)
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
        content = delta.get("content") if isinstance(delta, dict) else None
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
                done.finish_reason = "length" if reason == "max_tokens" else "stop"
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return str(delta.get("text", ""))
        return None


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
