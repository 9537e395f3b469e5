"""A real MCP server (the ``mcp`` SDK's ``MCPServer`` over streamable HTTP) for agent tests.

It records the headers of every HTTP request it receives (header propagation is checked on the
wire) and offers three tools: ``lookup_ticket`` (answers from a fixed table), ``fail_always``
(a tool error) and ``slow_count`` (counts slowly, recording whether it finished or was
cancelled: a client that went away must cancel the tool).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

TICKETS = {"ENG-1": "Circle.area returns pi r squared; owner: geometry team"}


@dataclass
class McpRecorder:
    """What the MCP server saw."""

    headers: list[dict[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    slow_finished: int = 0
    slow_cancelled: int = 0


def _app(recorder: McpRecorder) -> Any:
    server = MCPServer("ticket-desk")

    @server.tool()
    def lookup_ticket(ticket: str) -> str:
        """Look up a ticket by its key (e.g. ENG-1)."""
        recorder.calls.append("lookup_ticket")
        return TICKETS.get(ticket, f"no ticket {ticket}")

    @server.tool()
    def fail_always(reason: str = "") -> str:
        """A tool that always fails."""
        recorder.calls.append("fail_always")
        raise ToolError(f"the ticket desk is closed {reason}".strip())

    @server.tool()
    async def slow_count(to: int = 100) -> str:
        """Count slowly."""
        recorder.calls.append("slow_count")
        try:
            for _ in range(to):
                await anyio.sleep(0.05)
        except BaseException:
            recorder.slow_cancelled += 1
            raise
        recorder.slow_finished += 1
        return f"counted to {to}"

    inner = server.streamable_http_app(streamable_http_path="/mcp")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            recorder.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    return app


@contextmanager
def mcp_server() -> Iterator[tuple[str, McpRecorder]]:
    """(URL of the /mcp endpoint, recorder) of a server on 127.0.0.1."""
    recorder = McpRecorder()
    # A short graceful shutdown: a client's cancelled stream may leave a connection open.
    config = uvicorn.Config(
        _app(recorder), host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test MCP server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", recorder
    finally:
        server.should_exit = True
        thread.join(timeout=10)
