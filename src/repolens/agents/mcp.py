"""External MCP servers as an assistant's tools, through the official ``mcp`` SDK client.

Streamable HTTP is the transport; stdio only for a command the operator put on the allow-list
(``REPOLENS_MCP_STDIO_COMMANDS``, empty by default), since a stdio server runs on this host.

Header propagation as CodeMie documents it: with ``propagate_headers`` the caller's ``X-*``
headers go on every HTTP request to the assistant's MCP servers, minus the blocklist
(``REPOLENS_FORWARDED_HEADERS_BLOCKLIST``: credentials meant for this server). Their values are
never logged: only the names of servers and tools appear in logs and errors.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from repolens.agents.model import McpServer
from repolens.errors import Forbidden, ProviderError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120  # one tool call; the turn's wall-time budget bounds the whole
MAX_MCP_TOOLS = 64  # tools offered from one server: more crowd the model's context


def forwardable_headers(headers: Iterable[tuple[str, str]], blocklist: Iterable[str]) -> dict[str, str]:
    """The caller's ``X-*`` headers, lower-cased, minus the blocklist."""
    blocked = {h.strip().lower() for h in blocklist}
    return {k.lower(): v for k, v in headers if k.lower().startswith("x-") and k.lower() not in blocked}


@dataclass(frozen=True, slots=True)
class RemoteTool:
    """One tool of a connected MCP server."""

    server: str
    name: str
    description: str
    parameters: dict[str, Any]
    client: Client


def _transport(server: McpServer, forwarded: Mapping[str, str], stdio_commands: Iterable[str]) -> Any:
    if server.url:
        headers = {**server.headers, **forwarded}
        http = httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S), follow_redirects=False
        )
        return http, streamable_http_client(server.url, http_client=http)
    allowed = set(stdio_commands)
    if server.command not in allowed:
        raise Forbidden(
            f"MCP server {server.name!r}: the command {server.command!r} is not on this server's allow-list "
            "(REPOLENS_MCP_STDIO_COMMANDS); use a streamable HTTP url"
        )
    env = {"PATH": os.environ.get("PATH", ""), **server.env}
    return None, StdioServerParameters(command=server.command, args=list(server.args), env=env)


async def connect(
    stack: AsyncExitStack,
    servers: Iterable[McpServer],
    *,
    forwarded: Mapping[str, str],
    stdio_commands: Iterable[str],
) -> list[RemoteTool]:
    """Open each enabled server for the turn (closed with ``stack``) and list its tools."""
    tools: list[RemoteTool] = []
    for server in servers:
        if not server.enabled:
            continue
        http, transport = _transport(server, forwarded, stdio_commands)
        try:
            if http is not None:
                await stack.enter_async_context(http)
            client = await stack.enter_async_context(Client(transport))
            listed = await client.list_tools()
        except Forbidden:
            raise
        except Exception as exc:  # any transport or protocol failure: the server is unusable
            log.warning("MCP server %s could not be reached: %s", server.name, type(exc).__name__)
            raise ProviderError(f"MCP server {server.name!r} could not be reached ({type(exc).__name__})") from exc
        for tool in listed.tools[:MAX_MCP_TOOLS]:
            if server.tools and tool.name not in server.tools:
                continue
            schema = dict(tool.input_schema or {"type": "object", "properties": {}})
            tools.append(RemoteTool(server.name, tool.name, tool.description or "", schema, client))
    return tools


async def call(tool: RemoteTool, arguments: dict[str, Any]) -> tuple[str, bool]:
    """(text, is_error) of one call."""
    result = await tool.client.call_tool(tool.name, arguments)
    parts = [str(getattr(block, "text", "")) for block in result.content]
    text = "\n".join(p for p in parts if p)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content)
    return text, bool(result.is_error)
