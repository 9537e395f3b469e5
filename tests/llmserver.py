"""The one allowed stand-in: a small OpenAI-compatible chat server for the chat tests.

It streams a deterministic answer built from the prompt it received, and records every prompt,
so tests can check what the answer engine sent. Its "model" cites the first two artifacts of the
prompt by number, cites one number that was never in the prompt (the engine must drop it), and
reacts to a few markers so tests can drive the hard cases:

* ``SLOWLY`` in the question: a long, slow answer; the server records whether the client went
  away before it finished (a client disconnect must stop generation).
* ``REPLY_WITH: text`` in the system prompt: the answer is ``text`` (``{input}`` in it replaced by
  the ``Input:`` block of the prompt, ``{question}`` by the last line of the user's message): how
  workflow tests script their assistant states, batch tests their agents and eval tests their judges.
* ``RATE_LIMITED_ONCE`` in the question: the first request gets a 429 with ``Retry-After: 0``.
* ``MODEL_FAILS`` in the question: the model refuses the request with a 400 (not retried), so the
  answer fails (a batch whose items all fail, for the ``failed`` webhook).
* ``REVEAL_SYSTEM_PROMPT`` anywhere in the repository text of the prompt: the model "obeys" the
  injection and repeats its system message, as a gullible model would; the server must not let
  the secret through.

A request that offers ``tools`` (an agent turn) gets a scripted agent instead, on both APIs
(OpenAI ``tool_calls`` deltas with the arguments split across chunks; Anthropic ``tool_use``
blocks with ``input_json_delta`` pieces). The script is in the user's message, one line each:

* ``CALL <tool> <json arguments>``: the n-th model step calls the n-th listed tool. ``$IDENT``
  in the arguments becomes the first ``identifier="..."`` of the latest tool result (so a test
  can search, then fetch what the search found).
* ``LOOP_FOREVER``: every step calls the first listed tool again (a runaway loop).
* ``SLOWLY``: the final answer streams slowly, as above.
* ``MODEL_FAILS``: the model refuses the request with a 400 (not retried): a turn that fails
  after its stream began.

After the script, the answer names every identifier of the latest tool result and quotes its
first line, and says "The tool failed." when that result was an error.
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
_IDENT = re.compile(r"identifier=\"([^\"]+)\"")
_CALL = re.compile(r"^CALL (\S+) (\{.*\})\s*$", re.M)


@dataclass
class Recorder:
    """What the stand-in saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    slow_finished: int = 0
    slow_aborted: int = 0
    rate_limited: set[str] = field(default_factory=set)
    api_keys: list[str] = field(default_factory=list)
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments) made
    latency_s: float = 0.0  # waited before each chat answer starts: a model's time to first token
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
        # The script runs to the end of its paragraph: what the server appends after it (e.g. the
        # output-schema instructions) is not part of it.
        script = system.split(WORKFLOW_REPLY, 1)[1].strip().split("\n\n", 1)[0]
        given = user.split("Input:\n", 1)[1].split("\n\n", 1)[0] if "Input:\n" in user else ""
        text = script.replace("{input}", given).replace("{question}", question)
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


@dataclass
class AgentStep:
    """What the scripted agent does next: call a tool, or answer."""

    text: str
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


def _transcript(body: dict[str, Any]) -> tuple[str, list[tuple[str, bool]], int]:
    """(question, tool results as (text, is_error), tool-call turns so far) of either API's body."""
    question, results, calls = "", list[tuple[str, bool]](), 0
    for m in body["messages"]:
        content = m.get("content")
        if m["role"] == "tool":
            results.append((str(content), 'error="true"' in str(content)))
        elif m["role"] == "assistant":
            if m.get("tool_calls") or (isinstance(content, list) and any(b.get("type") == "tool_use" for b in content)):
                calls += 1
        elif m["role"] == "user":
            if isinstance(content, str):
                question = content
            elif isinstance(content, list):
                for block in content:
                    if block.get("type") == "tool_result":
                        results.append((str(block.get("content", "")), bool(block.get("is_error"))))
    return question, results, calls


def agent_step(body: dict[str, Any]) -> AgentStep:
    """The scripted agent's next step for a request that offers tools."""
    question, results, calls = _transcript(body)
    script = [(name, raw) for name, raw in _CALL.findall(question)]
    latest, failed = results[-1] if results else ("", False)
    if "LOOP_FOREVER" in question and script:
        name, raw = script[0]
        return AgentStep("Looking again. ", name, json.loads(raw))
    if calls < len(script):
        name, raw = script[calls]
        found = _IDENT.findall(latest)
        raw = raw.replace("$IDENT", found[0] if found else "nothing-found")
        return AgentStep("Let me check. " if calls == 0 else "", name, json.loads(raw))
    idents = list(dict.fromkeys(_IDENT.findall(latest)))
    first = next((line for line in latest.splitlines() if line.strip() and not line.startswith("<tool_result")), "")
    text = f"Answer: see {', '.join(f'`{i}`' for i in idents) or 'nothing'}. First line: {first.strip()[:160]}"
    if failed:
        text += " The tool failed."
    return AgentStep(text)


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
        if body.get("tools"):
            if "MODEL_FAILS" in _transcript(body)[0]:
                self._json(400, {"error": {"message": "the scripted model refuses", "type": "invalid_request_error"}})
                return
            self._openai_agent(body)
            return
        question = str(body["messages"][-1]["content"]).rsplit("\n", 1)[-1]
        if "MODEL_FAILS" in question:
            self._json(400, {"error": {"message": "the scripted model refuses", "type": "invalid_request_error"}})
            return
        if "RATE_LIMITED_ONCE" in question and question not in rec.rate_limited:
            rec.rate_limited.add(question)
            self._json(429, {"error": {"message": "slow down", "type": "rate_limit_error"}}, {"Retry-After": "0"})
            return
        if rec.latency_s:
            time.sleep(rec.latency_s)
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

    def _stream_frames(self, frames: list[str], *, slow: bool) -> None:
        """Write SSE frames; a slow stream records whether the client stayed to the end."""
        rec = self.server.recorder
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for frame in frames:
                self.wfile.write(frame.encode())
                self.wfile.flush()
                if slow:
                    time.sleep(SLOW_DELAY_S)
            if slow:
                with rec.lock:
                    rec.slow_finished += 1
        except (BrokenPipeError, ConnectionResetError):
            if slow:
                with rec.lock:
                    rec.slow_aborted += 1

    def _agent(self, body: dict[str, Any]) -> tuple[AgentStep, list[str], bool]:
        step = agent_step(body)
        rec = self.server.recorder
        if step.tool:
            with rec.lock:
                rec.tool_calls.append((step.tool, step.arguments))
        question = _transcript(body)[0]
        slow = "SLOWLY" in question and not step.tool
        pieces = (
            [f"word{i} " for i in range(SLOW_CHUNKS)]
            if slow
            else [step.text[i : i + 7] for i in range(0, len(step.text), 7)]
        )
        return step, pieces, slow

    def _openai_agent(self, body: dict[str, Any]) -> None:
        step, pieces, slow = self._agent(body)
        base = {"id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}

        def frame(delta: dict[str, Any], finish: str | None = None) -> str:
            return f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}\n\n"

        frames = [frame({"content": piece}) for piece in pieces]
        if step.tool:
            args = json.dumps(step.arguments)
            half = len(args) // 2
            call = {"index": 0, "id": f"call_{len(self.server.recorder.tool_calls)}", "type": "function"}
            frames.append(frame({"tool_calls": [{**call, "function": {"name": step.tool, "arguments": args[:half]}}]}))
            frames.append(frame({"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]}))
        frames.append(frame({}, "tool_calls" if step.tool else "stop"))
        usage = {"prompt_tokens": len(json.dumps(body["messages"])) // 4, "completion_tokens": len(pieces) + 1}
        frames.append(f"data: {json.dumps({**base, 'choices': None, 'usage': usage})}\n\ndata: [DONE]\n\n")
        self._stream_frames(frames, slow=slow)

    def _anthropic_agent(self, body: dict[str, Any]) -> None:
        step, pieces, slow = self._agent(body)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        usage = {"input_tokens": len(json.dumps(body["messages"])) // 4, "output_tokens": 1}
        frames = [
            event("message_start", {"message": {"id": "msg_agent", "role": "assistant", "content": [], "usage": usage}})
        ]
        frames.append(event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        frames += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        frames.append(event("content_block_stop", {"index": 0}))
        if step.tool:
            args = json.dumps(step.arguments)
            half = len(args) // 2
            block = {
                "type": "tool_use",
                "id": f"toolu_{len(self.server.recorder.tool_calls)}",
                "name": step.tool,
                "input": {},
            }
            frames.append(event("content_block_start", {"index": 1, "content_block": block}))
            for part in (args[:half], args[half:]):
                frames.append(
                    event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": part}})
                )
            frames.append(event("content_block_stop", {"index": 1}))
        reason = "tool_use" if step.tool else "end_turn"
        frames.append(
            event("message_delta", {"delta": {"stop_reason": reason}, "usage": {"output_tokens": len(pieces) + 1}})
        )
        frames.append(event("message_stop", {}))
        self._stream_frames(frames, slow=slow)

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
        if body.get("tools"):
            self._anthropic_agent(body)
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
