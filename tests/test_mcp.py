"""The MCP server through the SDK's own client, over streamable HTTP and over stdio.

One server process indexes two real git repositories; every test body runs twice, once against
``/mcp`` of that server and once against a ``repolens mcp`` subprocess reading the same data dir.
Negative tests for keys, scopes, Host and Origin run over HTTP, where they apply.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult

from conftest import GEO_CODE, commit_tree
from server import Server, running_server, wait_for_job

pytestmark = pytest.mark.backends

# A small budget (about 4,500 characters) so that a long file exercises truncation and
# continuation while every other answer of these small repositories fits.
BUDGET_TOKENS = 1500
BIG_LINES = 400
GEO = {
    **GEO_CODE,
    "geo/table.py": "".join(f"ROW_{i:04d} = {i}  # a row of the lookup table\n" for i in range(1, BIG_LINES + 1)),
    "README.md": "# Geo\n\nCompute the total area of shapes.\n",
}
BILLING = {
    "billing/invoice.py": (
        "def compute_invoice_total(lines: list[float], tax_rate: float) -> float:\n"
        '    """Invoice total including tax."""\n'
        "    return sum(lines) * (1 + tax_rate)\n"
    ),
}
TOOL_NAMES = {
    "get_data_sources",
    "semantic_search",
    "grep_search",
    "get_repository_ontology",
    "get_file_tree",
    "read_file",
    "fetch_artifacts",
    "get_artifact_relationships",
    "chat",
    "codebase_search",
    "codebase_consultant",
    "list_workflows",
    "get_workflow_execution",
}
WRITING_TOOLS = {"start_workflow"}  # starts an execution: not read-only
TREE_FLOW = """\
tools:
  - id: tree
    tool: get_file_tree
    tool_args: {data_source: geo, path: geo}
states:
  - id: browse
    tool_id: tree
    next: {state_id: end}
"""
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with ``geo`` and ``billing`` indexed, and keys: admin, scoped to billing, revoked."""
    base = tmp_path_factory.mktemp("mcp")
    allowed = base / "allowed"
    commit_tree(allowed / "geo", GEO)
    commit_tree(allowed / "billing", BILLING)
    env = {
        "REPOLENS_ALLOWED_ROOTS": str(allowed),
        "REPOLENS_MCP_MAX_TOKENS": str(BUDGET_TOKENS),
        "REPOLENS_PUBLIC_URL": "https://code.example.com",
    }
    with running_server(base / "home", env=env) as server, server.client() as c:
        keys: dict[str, str] = {}
        for name in ("geo", "billing"):
            created = c.post("/api/datasources", json={"path": str(allowed / name)})
            assert created.status_code == 202, created.text
            assert wait_for_job(c, created.json()["job"]["id"])["state"] == "Ready"
        keys["billing"] = c.post("/api/admin/keys", json={"name": "b", "scopes": ["billing"]}).json()["key"]
        revoked = c.post("/api/admin/keys", json={"name": "r"}).json()
        assert c.delete(f"/api/admin/keys/{revoked['id']}").status_code == 204
        keys["revoked"] = revoked["key"]
        yield server, keys


@asynccontextmanager
async def connect(server: Server, transport: str, key: str | None = None) -> AsyncIterator[Client]:
    """The SDK client on ``transport``: HTTP to the server's /mcp, or a ``repolens mcp`` subprocess."""
    if transport == "http":
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key or server.admin_key}"})
        async with http, Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
            yield client
    else:
        exe = Path(sys.executable).with_name("repolens")
        command, args = (str(exe), ["mcp"]) if exe.exists() else (sys.executable, ["-m", "repolens", "mcp"])
        params = StdioServerParameters(command=command, args=args, env=dict(server.env))
        async with Client(params) as client:
            yield client


def run(server: Server, transport: str, body: Callable[[Client], Awaitable[None]]) -> None:
    """Run ``body`` with a connected client."""

    async def main() -> None:
        async with connect(server, transport) as client:
            await body(client)

    anyio.run(main)


def text(result: CallToolResult) -> str:
    """The text content of a tool result."""
    return "".join(getattr(block, "text", "") for block in result.content)


async def ok(client: Client, name: str, args: dict[str, Any]) -> str:
    """Call a tool that must succeed; return its text."""
    result = await client.call_tool(name, args)
    assert not result.is_error, text(result)
    return text(result)


TRANSPORTS = pytest.mark.parametrize("transport", ["http", "stdio"])


@TRANSPORTS
def test_initialize_teaches_the_workflow_and_lists_read_only_tools(
    world: tuple[Server, dict[str, str]], transport: str
) -> None:
    server, _ = world

    async def body(client: Client) -> None:
        assert client.server_info is not None and client.server_info.name == "repolens"
        instructions = client.instructions or ""
        for step in ("DISCOVER", "SEARCH", "READ", "EXPAND", "get_data_sources", "fetch_artifacts", "output_offset"):
            assert step in instructions
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOL_NAMES | WRITING_TOOLS
        for tool in listed:
            assert tool.annotations is not None, tool.name
            assert tool.annotations.read_only_hint is (tool.name not in WRITING_TOOLS), tool.name
            assert tool.annotations.destructive_hint is False, tool.name
            assert tool.description, tool.name
        search = next(t for t in listed if t.name == "semantic_search")
        kinds = {alt.get("type") for alt in search.input_schema["properties"]["data_sources"]["anyOf"]}
        assert {"string", "array"} <= kinds
        assert search.input_schema["required"] == ["question"]

    run(server, transport, body)


@TRANSPORTS
def test_discover_search_read_expand_on_a_real_repository(world: tuple[Server, dict[str, str]], transport: str) -> None:
    server, _ = world

    async def body(client: Client) -> None:
        sources = await ok(client, "get_data_sources", {})
        assert 'name="geo"' in sources and 'name="billing"' in sources
        ranked = await ok(client, "get_data_sources", {"query": "invoice tax totals"})
        assert 'name="billing"' in ranked

        found = await ok(client, "semantic_search", {"question": "sum the area of many shapes", "data_sources": ["geo"]})
        assert "geo::geo/shapes.py::total_area" in found
        # List arguments as an array, a JSON-array string and a single string give the same answer.
        as_json = await ok(client, "semantic_search", {"question": "sum the area of many shapes", "data_sources": '["geo"]'})
        as_one = await ok(client, "semantic_search", {"question": "sum the area of many shapes", "data_sources": "geo"})
        assert found == as_json == as_one
        legacy = await ok(client, "codebase_search", {"query": "sum the area of many shapes", "data_sources": "geo"})
        assert "geo::geo/shapes.py::total_area" in legacy

        grep = await ok(client, "grep_search", {"query": "3.14159", "data_sources": "geo"})
        assert "geo/shapes.py" in grep and "3.14159" in grep
        regex = await ok(client, "grep_search", {"query": r"def \w+_total", "regex": True})
        assert "billing/invoice.py" in regex

        ontology = await ok(client, "get_repository_ontology", {"data_source": "geo"})
        assert "python (3)" in ontology and "geo" in ontology and "total_area" in ontology, ontology
        tree = await ok(client, "get_file_tree", {"data_source": "geo", "path": "geo"})
        assert "shapes.py" in tree and "report.py" in tree
        lines = await ok(
            client, "read_file", {"path": "geo/shapes.py", "data_source": "geo", "start_line": 4, "end_line": 8}
        )
        assert "class Shape" in lines and "total_area" not in lines

        fetched = await ok(client, "fetch_artifacts", {"identifiers": ["geo::geo/shapes.py::total_area"]})
        assert "return sum(s.area() for s in shapes)" in fetched
        callers = await ok(
            client, "get_artifact_relationships", {"identifier": "geo::geo/shapes.py::total_area", "profile": "calls_only"}
        )
        assert "geo::geo/report.py::report" in callers and 'resolution="resolved"' in callers
        family = await ok(
            client, "get_artifact_relationships", {"identifier": "geo::geo/shapes.py::Shape", "profile": "inheritance_only"}
        )
        assert "geo::geo/shapes.py::Circle" in family

        for name in ("chat", "codebase_consultant"):  # no model configured: a labelled retrieval-only answer
            answer = await ok(client, name, {"question": "what does report do?", "data_sources": ["geo"]})
            assert "Retrieval-only answer" in answer and 'identifier="geo::geo/report.py::report"' in answer, answer
            follow = await ok(
                client,
                name,
                {"question": "and total_area?", "conversation_id": re.search(r'conversation_id="(\w+)"', answer)[1]},
            )  # type: ignore[index]
            assert "geo::geo/shapes.py::total_area" in follow

    run(server, transport, body)


@TRANSPORTS
def test_a_workflow_is_started_and_followed_to_its_output(world: tuple[Server, dict[str, str]], transport: str) -> None:
    server, _ = world
    with httpx.Client(base_url=f"{server.url}/code-assistant-api/v1", timeout=30) as c:
        made = c.post(
            "/workflows",
            headers={"Authorization": f"Bearer {server.admin_key}"},
            json={"project": "default", "name": f"tree-{transport}", "mode": "Sequential", "yaml_config": TREE_FLOW},
        )
        assert made.status_code == 200, made.text
        workflow_id = made.json()["data"]["id"]

    async def body(client: Client) -> None:
        listed = json.loads(await ok(client, "list_workflows", {}))
        assert {"id": workflow_id, "name": f"tree-{transport}"}.items() <= next(
            w for w in listed["workflows"] if w["id"] == workflow_id
        ).items()
        started = json.loads(await ok(client, "start_workflow", {"workflow_id": f"tree-{transport}", "user_input": "go"}))
        assert started["workflow_id"] == workflow_id and started["overall_status"] == "Not Started"
        followed = json.loads(
            await ok(client, "get_workflow_execution", {"execution_id": started["execution_id"], "wait_seconds": 60})
        )
        assert followed["overall_status"] == "Succeeded", followed
        assert [(s["state_id"], s["status"]) for s in followed["states"]] == [("browse", "Succeeded")]
        assert "shapes.py" in followed["output"] and "shapes.py" in followed["states"][0]["output"]
        missing = await client.call_tool("get_workflow_execution", {"execution_id": "no-such-execution"})
        assert missing.is_error and "Not found (404)" in text(missing) and "no-such-execution" in text(missing)
        unknown = await client.call_tool("start_workflow", {"workflow_id": "no-such-workflow"})
        assert unknown.is_error and "not found" in text(unknown)

    run(server, transport, body)


@TRANSPORTS
def test_long_output_is_cut_under_the_budget_and_the_rest_can_be_read(
    world: tuple[Server, dict[str, str]], transport: str
) -> None:
    server, _ = world

    async def body(client: Client) -> None:
        args: dict[str, Any] = {"path": "geo/table.py", "data_source": "geo"}
        pieces, offset = [], 0
        for _ in range(20):
            page = await ok(client, "read_file", {**args, "output_offset": offset})
            assert len(page) <= BUDGET_TOKENS * 3 + 600, len(page)  # the budget plus the notice
            if "output truncated" not in page:
                pieces.append(page)
                break
            body_text, notice = page.split("\n\n[output truncated", 1)
            pieces.append(body_text)
            offset = int(notice.split("output_offset=")[1].split(";")[0])
        else:
            raise AssertionError("never reached the end of the file")
        assert len(pieces) >= 3
        whole = "\n".join(p.split("\n", 1)[1] if p.startswith("[continued") else p for p in pieces)
        for i in (1, BIG_LINES // 2, BIG_LINES):
            assert f"ROW_{i:04d} = {i}" in whole, i

    run(server, transport, body)


@TRANSPORTS
def test_mistakes_come_back_as_tool_errors_that_say_what_to_do(world: tuple[Server, dict[str, str]], transport: str) -> None:
    server, _ = world

    async def body(client: Client) -> None:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("read_file", {"path": "../../etc/passwd", "data_source": "geo"}, "inside the repository"),
            ("read_file", {"path": "geo/missing.py", "data_source": "geo"}, "read_file"),
            ("fetch_artifacts", {"identifiers": []}, "identifiers"),
            ("fetch_artifacts", {"identifiers": [f"geo::x{i}.py" for i in range(60)]}, "50"),
            ("get_artifact_relationships", {"identifier": "geo::geo/nope.py::Nope"}, "get_artifact_relationships"),
            ("semantic_search", {"question": "x" * 20_000}, "question"),
            ("semantic_search", {"question": "shapes", "data_sources": "no-such-repo"}, "no-such-repo"),
            ("grep_search", {"query": "(unclosed", "regex": True}, "grep_search"),
            ("read_file", {"path": "geo/shapes.py"}, "data_source"),  # two repositories visible: which one?
        ]
        for name, args, needle in cases:
            result = await client.call_tool(name, args)
            assert result.is_error, (name, args, text(result))
            message = text(result)
            assert needle in message, (name, message)
            assert "Traceback" not in message
        missing = await client.call_tool("fetch_artifacts", {"identifiers": ["geo::geo/shapes.py::Nope"]})
        assert not missing.is_error and "not_found" in text(missing)

    run(server, transport, body)


CODEALIVE_ERROR = re.compile(r"\[(\w+)\] Error: ([A-Z][a-z ]+) \((\d{3})\): (.+)\. Retry: (.+)\. Try: \(1\) (.+)", re.S)


@TRANSPORTS
def test_argument_errors_come_back_in_the_documented_codealive_form(
    world: tuple[Server, dict[str, str]], transport: str
) -> None:
    """Missing, out-of-range and mistyped arguments read `[tool] Error: Label (status): ... Retry: ... Try: (1) ...`."""
    server, _ = world

    async def body(client: Client) -> None:
        cases: list[tuple[str, dict[str, Any], str, str]] = [
            ("semantic_search", {}, "400", "question is required"),
            (
                "semantic_search",
                {"question": "area", "max_results": -5},
                "400",
                "max_results must be an integer between 1 and 500",
            ),
            (
                "semantic_search",
                {"question": "area", "max_results": "many"},
                "400",
                "max_results must be an integer between 1 and 500",
            ),
            ("semantic_search", {"question": "x" * 20_000}, "400", "question must be a string of 1 to 10000 characters"),
            ("grep_search", {"query": 42}, "400", "query must be a string of 1 to 1000 characters"),
            (
                "grep_search",
                {"query": "area", "data_sources": 5},
                "400",
                "data_sources must be a string or an array of strings",
            ),
            ("grep_search", {"query": "area", "regex": "maybe"}, "400", "regex must be true or false"),
            (
                "get_artifact_relationships",
                {"identifier": "geo::geo/shapes.py::Shape", "profile": "sideways"},
                "400",
                "profile must be one of calls_only, inheritance_only, all_relevant, references_only",
            ),
            ("read_file", {}, "400", "path is required"),
            ("fetch_artifacts", {"identifiers": []}, "400", "identifiers is required"),  # the core's own check
            ("read_file", {"path": "geo/missing.py", "data_source": "geo"}, "404", "no file 'geo/missing.py' in geo"),
        ]
        for name, args, status, what in cases:
            result = await client.call_tool(name, args)
            message = text(result)
            assert result.is_error, (name, args, message)
            match = CODEALIVE_ERROR.fullmatch(message)
            assert match is not None, message
            assert match[1] == name and match[3] == status and what in match[4], message
            assert match[2] == {"400": "Bad request", "404": "Not found"}[status]
            assert "validation error" not in message and "pydantic" not in message and "input_value" not in message
            assert result.structured_content is not None
            assert result.structured_content["error"]["code"] in ("invalid_tool_arguments", "file_not_found")

    run(server, transport, body)


@TRANSPORTS
def test_query_and_question_are_aliases_and_codebase_search_honours_mode(
    world: tuple[Server, dict[str, str]], transport: str
) -> None:
    """chat, codebase_consultant and semantic_search take `query` for `question`; codebase_search reads `mode`."""
    server, _ = world

    async def body(client: Client) -> None:
        for name in ("chat", "codebase_consultant"):
            answer = await ok(client, name, {"query": "what does report do?", "data_sources": ["geo"]})
            assert 'identifier="geo::geo/report.py::report"' in answer, answer
        found = await ok(client, "semantic_search", {"query": "sum the area of many shapes", "data_sources": "geo"})
        assert "geo::geo/shapes.py::total_area" in found
        legacy = await ok(client, "codebase_search", {"question": "sum the area of many shapes", "data_sources": "geo"})
        assert "geo::geo/shapes.py::total_area" in legacy

        nonsense = {"query": "qwzx vorpal", "data_sources": "geo"}
        assert 'count="0"' in await ok(client, "codebase_search", {**nonsense, "mode": "lexical"})
        assert 'count="0"' not in await ok(client, "codebase_search", {**nonsense, "mode": "semantic"})
        assert 'count="0"' not in await ok(client, "codebase_search", {**nonsense, "mode": "Deep"})
        wrong = await client.call_tool("codebase_search", {**nonsense, "mode": "sideways"})
        assert wrong.is_error and "mode must be one of auto" in text(wrong), text(wrong)

    run(server, transport, body)


@TRANSPORTS
def test_long_calls_report_progress(world: tuple[Server, dict[str, str]], transport: str) -> None:
    server, _ = world

    async def body(client: Client) -> None:
        seen: list[tuple[float, float | None, str | None]] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            seen.append((value, total, message))

        await client.call_tool("semantic_search", {"question": "area of a circle"}, progress_callback=progress)
        assert seen and seen[-1][0] == seen[-1][1], seen
        assert [v for v, _, _ in seen] == sorted(v for v, _, _ in seen)

    run(server, transport, body)


# -- HTTP only: keys, scopes, Host and Origin ---------------------------------------------------


def _raw(server: Server, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/mcp", headers={**MCP_HEADERS, **headers}, json=INIT if body is None else body, timeout=30
    )


def test_http_needs_a_valid_key(world: tuple[Server, dict[str, str]]) -> None:
    server, keys = world
    assert _raw(server, {"Authorization": f"Bearer {server.admin_key}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {keys['revoked']}"}):
        response = _raw(server, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "UNAUTHORIZED"

    async def sdk_without_key() -> None:
        async with connect(server, "http", key="ca_0000000000000_" + "A" * 43) as client:
            await client.list_tools()

    with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the HTTP 401 in its own exception group
        anyio.run(sdk_without_key)


def test_http_scoped_key_sees_only_its_data_source(world: tuple[Server, dict[str, str]]) -> None:
    server, keys = world

    async def main() -> None:
        async with connect(server, "http", key=keys["billing"]) as client:
            sources = await ok(client, "get_data_sources", {})
            assert 'name="billing"' in sources and 'name="geo"' not in sources
            hidden = await client.call_tool("semantic_search", {"question": "area of shapes", "data_sources": "geo"})
            assert hidden.is_error and "geo" in text(hidden)
            for name, args in (
                ("read_file", {"path": "geo/shapes.py", "data_source": "geo"}),
                ("fetch_artifacts", {"identifiers": ["geo::geo/shapes.py::total_area"]}),
                ("grep_search", {"query": "3.14159"}),
            ):
                result = await client.call_tool(name, args)
                assert "3.14159" not in text(result) and "sum(s.area()" not in text(result), (name, text(result))
            own = await ok(client, "semantic_search", {"question": "invoice total with tax"})
            assert "billing::billing/invoice.py::compute_invoice_total" in own

    anyio.run(main)


def test_http_refuses_wrong_host_and_origin(world: tuple[Server, dict[str, str]]) -> None:
    """DNS rebinding protection: only loopback, the public URL and configured hosts and origins."""
    server, _ = world
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    assert _raw(server, {**auth, "Host": "evil.example.net"}).status_code == 421
    assert _raw(server, {**auth, "Origin": "https://evil.example.net"}).status_code == 403
    assert _raw(server, {**auth, "Host": "code.example.com"}).status_code == 200  # REPOLENS_PUBLIC_URL
    assert _raw(server, {**auth, "Origin": "https://code.example.com"}).status_code == 200
    assert _raw(server, {**auth, "Origin": "http://localhost:3000"}).status_code == 200


def test_http_oversize_and_malformed_requests_get_clear_errors(world: tuple[Server, dict[str, str]]) -> None:
    server, _ = world
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    huge = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "semantic_search", "arguments": {"question": "x" * 1_200_000}},
    }
    assert _raw(server, auth, huge).status_code == 413
    broken = httpx.post(f"{server.url}/mcp", headers={**MCP_HEADERS, **auth}, content=b"{not json", timeout=30)
    assert broken.status_code == 400
    assert "Traceback" not in broken.text
    payload = json.loads(broken.text) if broken.headers.get("content-type", "").startswith("application/json") else {}
    assert payload.get("error", {}).get("code") in (-32700, None)


def test_http_a_chat_refused_for_an_unknown_data_source_leaves_no_conversation(
    world: tuple[Server, dict[str, str]],
) -> None:
    """The MCP chat tool refuses an unknown data source before it creates a conversation."""
    server, _ = world
    with server.client() as c:
        key = c.post("/api/admin/keys", json={"name": "mcp-asker"}).json()["key"]

    async def main() -> None:
        async with connect(server, "http", key=key) as client:
            for name in ("chat", "codebase_consultant"):
                refused = await client.call_tool(name, {"question": "what does report do?", "data_sources": ["nope"]})
                assert refused.is_error and "nope" in text(refused), text(refused)

    anyio.run(main)
    with server.client(key) as c:
        assert c.get("/api/chat/conversations").json()["conversations"] == []
