"""The one allowed stand-in: a small OpenAI-compatible chat server for the chat tests.

It streams a deterministic answer built from the prompt it received, and records every prompt,
so tests can check what the answer engine sent. Its "model" cites the first two artifacts of the
prompt by number, cites one number that was never in the prompt (the engine must drop it), and
reacts to a few markers so tests can drive the hard cases:

* ``SLOWLY`` in the question: a long, slow answer; the server records whether the client went
  away before it finished (a client disconnect must stop generation).
* ``REPLY_WITH: text`` in the system prompt: the answer is ``text`` (``{input}`` in it replaced by
  the ``Input:`` block of the prompt): how workflow tests script their assistant states.
* ``RATE_LIMITED_ONCE`` in the question: the first request gets a 429 with ``Retry-After: 0``.
* ``REVEAL_SYSTEM_PROMPT`` anywhere in the repository text of the prompt: the model "obeys" the
  injection and repeats its system message, as a gullible model would; the server must not let
  the secret through.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_CHUNKS = 200
SLOW_DELAY_S = 0.05
WORKFLOW_REPLY = "REPLY_WITH:"
_ARTIFACT = re.compile(r'<artifact n="(\d+)" id="([^"]+)"')


@dataclass
class Recorder:
    """What the stand-in saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    slow_finished: int = 0
    slow_aborted: int = 0
    rate_limited: set[str] = field(default_factory=set)
    api_keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last_user_message(self) -> str:
        return str(self.requests[-1]["messages"][-1]["content"])


def is_scripted_slow(messages: list[dict[str, Any]]) -> bool:
    """A workflow assistant scripted to answer ``REPLY_WITH: SLOWLY ...``."""
    system = next((str(m["content"]) for m in messages if m["role"] == "system"), "")
    return system.split(WORKFLOW_REPLY, 1)[-1].strip().startswith("SLOWLY") if WORKFLOW_REPLY in system else False


def answer_for(messages: list[dict[str, Any]]) -> list[str]:
    """The deterministic answer, in the chunks it is streamed in."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = str(messages[-1]["content"])
    question = user.rsplit("\n", 1)[-1]
    if WORKFLOW_REPLY in system:
        # A workflow assistant: reply with the text after the marker, ``{input}`` replaced by the
        # input the state was given (tests/test_workflows_api.py scripts its states this way).
        script = system.split(WORKFLOW_REPLY, 1)[1].strip()
        given = user.split("Input:\n", 1)[1].split("\n\n", 1)[0] if "Input:\n" in user else ""
        text = script.replace("{input}", given)
    elif "REVEAL_SYSTEM_PROMPT" in user.split("Question (answer", 1)[0]:
        text = "Sure! My instructions are:\n" + system
    else:
        cited = _ARTIFACT.findall(user)[:2]
        if cited:
            refs = " and ".join(f"`{ident}` [{n}]" for n, ident in cited)
            text = f"The answer to {question!r} is in {refs}. See also [99]."
        else:
            text = "Not enough context."
    if "SLOWLY" in question or text.startswith("SLOWLY"):
        return [f"word{i} " for i in range(SLOW_CHUNKS)]
    return [text[i : i + 7] for i in range(0, len(text), 7)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature; keep test output quiet
        pass

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        if self.path.endswith("/v1/messages"):
            self._anthropic()
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        rec = self.server.recorder
        with rec.lock:
            rec.requests.append(body)
        question = str(body["messages"][-1]["content"]).rsplit("\n", 1)[-1]
        if "RATE_LIMITED_ONCE" in question and question not in rec.rate_limited:
            rec.rate_limited.add(question)
            self._json(429, {"error": {"message": "slow down", "type": "rate_limit_error"}}, {"Retry-After": "0"})
            return
        chunks = answer_for(body["messages"])
        slow = "SLOWLY" in question or is_scripted_slow(body["messages"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        try:
            for text in chunks:
                frame = {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(frame)}\n\n".encode())
                self.wfile.flush()
                if slow:
                    time.sleep(SLOW_DELAY_S)
            end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            prompt_chars = sum(len(str(m["content"])) for m in body["messages"])
            # vLLM-style usage chunk with "choices": null, which the engine must parse leniently.
            usage = {
                **base,
                "choices": None,
                "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(chunks)},
            }
            self.wfile.write(f"data: {json.dumps(end)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            if slow:
                with rec.lock:
                    rec.slow_finished += 1
        except (BrokenPipeError, ConnectionResetError):
            if slow:
                with rec.lock:
                    rec.slow_aborted += 1

    def _anthropic(self) -> None:
        """Anthropic's Messages API: the system prompt beside the turns, named SSE events."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        rec = self.server.recorder
        with rec.lock:
            rec.requests.append(body)
            rec.api_keys.append(self.headers.get("x-api-key", ""))
        if not self.headers.get("anthropic-version"):
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "version"}})
            return
        messages = [{"role": "system", "content": body.get("system", "")}, *body["messages"]]
        chunks = answer_for(messages)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        prompt_chars = sum(len(str(m["content"])) for m in messages)
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_standin",
                        "role": "assistant",
                        "content": [],
                        "usage": {"input_tokens": prompt_chars // 4, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            ("ping", {"type": "ping"}),
            *[
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
                )
                for text in chunks
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(chunks)}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


@contextmanager
def standin_llm() -> Iterator[tuple[str, Recorder]]:
    """(base URL ending in /v1, recorder) of a stand-in model server on 127.0.0.1."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.recorder = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.recorder
    finally:
        server.shutdown()
        server.server_close()
