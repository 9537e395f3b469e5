"""One contract over every surface: the CLI, the REST API and MCP answer the same use cases with
the same results and the same errors, on one index.

A server and the CLI share one data dir; MCP goes through the SDK's client over HTTP. Each case
asks the same question three ways and compares what comes back: ranked identifiers, grep lines,
fetched content, relations, the refusal of an unknown source, and the removal of a git source
(its clone goes with it, whichever surface removed it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import GEO_CODE, commit_tree
from gitserver import serve_git
from server import Server, running_server, wait_for_job

IDENTIFIER = re.compile(r"\bgeo::[\w/.]+(?:::[\w.~]+)?")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server with ``geo`` indexed from an allowed folder; the CLI shares its data dir."""
    base = tmp_path_factory.mktemp("contract")
    allowed = base / "allowed"
    commit_tree(allowed / "geo", GEO_CODE)
    env = {
        "REPOLENS_ALLOWED_ROOTS": str(allowed),
        "REPOLENS_GIT_SCHEMES": "https,http",
        "REPOLENS_GIT_ALLOW_HOSTS": "127.0.0.1",
    }
    with running_server(base / "home", env=env) as server, server.client() as c:
        created = c.post("/api/datasources", json={"path": str(allowed / "geo")})
        assert created.status_code == 202, created.text
        assert created.json()["dataSource"]["name"] == "geo"
        assert wait_for_job(c, created.json()["job"]["id"])["state"] == "Ready"
        yield server, base


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("repolens")
    return subprocess.run([str(exe), *args], env={**os.environ, **server.env}, capture_output=True, text=True, timeout=120)


def mcp(server: Server, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    """(is_error, text) of one MCP tool call over HTTP."""
    out: list[tuple[bool, str]] = []

    async def main() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {server.admin_key}"})
        async with http, Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
            result = await client.call_tool(tool, arguments)
            out.append((bool(result.is_error), "".join(getattr(b, "text", "") for b in result.content)))

    anyio.run(main)
    return out[0]


def ordered(identifiers: list[str]) -> list[str]:
    return list(dict.fromkeys(identifiers))


def test_search_ranks_the_same_everywhere(world: tuple[Server, Path]) -> None:
    """The same query and scope give the same ranked identifiers over CLI, REST and MCP."""
    server, _ = world
    query = "sum the areas of many shapes"
    by_cli = [r["identifier"] for r in json.loads(cli(server, "search", query, "-s", "geo", "--json").stdout)["results"]]
    with server.client() as c:
        rest = c.get("/api/search", params={"Query": query, "Names": "geo"}).json()["results"]
    by_rest = [r["identifier"] for r in rest]
    error, text = mcp(server, "semantic_search", {"question": query, "data_sources": ["geo"]})
    assert not error, text
    by_mcp = ordered(IDENTIFIER.findall(text))
    assert by_cli and by_cli == by_rest
    assert by_mcp[: len(by_rest)] == by_rest[: len(by_mcp)]
    assert by_cli[0] == "geo::geo/shapes.py::total_area"


def test_grep_takes_the_same_scope_and_finds_the_same_lines(world: tuple[Server, Path]) -> None:
    """grep by source name finds the same files and lines over CLI, REST and MCP."""
    server, _ = world
    source_id = json.loads(cli(server, "sources", "show", "geo", "--json").stdout)["id"]
    lines = set()
    for scope in ("geo", source_id):
        result = cli(server, "grep", "total_area", "-s", scope, "--json")
        assert result.returncode == 0, result.stderr
        lines.add(
            frozenset(
                (r["location"]["path"], m["lineNumber"]) for r in json.loads(result.stdout)["results"] for m in r["matches"]
            )
        )
    with server.client() as c:
        rest = c.get("/api/search/grep", params={"Query": "total_area", "Names": "geo"}).json()["results"]
    lines.add(frozenset((r["location"]["path"], m["lineNumber"]) for r in rest for m in r["matches"]))
    assert len(lines) == 1 and next(iter(lines))
    error, text = mcp(server, "grep_search", {"query": "total_area", "data_sources": ["geo"]})
    assert not error, text
    for path, line in next(iter(lines)):
        assert path in text and str(line) in text


def test_fetch_and_relations_agree(world: tuple[Server, Path]) -> None:
    """A fetched symbol's content and a function's callers are the same over CLI, REST and MCP."""
    server, _ = world
    identifier = "geo::geo/shapes.py::total_area"
    by_cli = json.loads(cli(server, "fetch", identifier, "--json").stdout)["artifacts"][0]["content"]
    relations_cli = json.loads(cli(server, "relations", identifier, "--json").stdout)
    with server.client() as c:
        by_rest = c.post("/api/search/artifacts", json={"identifiers": [identifier]}).json()["artifacts"][0]["content"]
        relations_rest = c.post("/api/search/artifact-relationships", json={"identifier": identifier}).json()
    assert by_cli == by_rest and "return sum(s.area() for s in shapes)" in by_cli
    assert relations_cli == relations_rest
    error, text = mcp(server, "fetch_artifacts", {"identifiers": [identifier]})
    assert not error and "return sum(s.area() for s in shapes)" in text
    error, text = mcp(server, "get_artifact_relationships", {"identifier": identifier})
    assert not error and "geo::geo/report.py::report" in text


def test_an_unknown_source_is_refused_in_the_same_words(world: tuple[Server, Path]) -> None:
    """Naming a source that does not exist is the same error on every surface, in its own format."""
    server, _ = world
    message = "unknown data source 'ghost'"
    for args in (("search", "x", "-s", "ghost"), ("grep", "x", "-s", "ghost")):
        result = cli(server, *args)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    with server.client() as c:
        for route, params in (
            ("/api/search", {"Query": "x", "Names": "ghost"}),
            ("/api/search/grep", {"Query": "x", "Names": "ghost"}),
        ):
            answer = c.get(route, params=params)
            assert answer.status_code == 404 and message in answer.json()["detail"]
    for tool, arguments in (
        ("semantic_search", {"question": "x", "data_sources": ["ghost"]}),
        ("grep_search", {"query": "x", "data_sources": ["ghost"]}),
    ):
        error, text = mcp(server, tool, arguments)
        assert error and message in text, text


def test_removing_a_git_source_removes_its_clone_from_every_surface(world: tuple[Server, Path]) -> None:
    """`sources remove` and DELETE /api/datasources both delete the source's clone, and only its own."""
    server, base = world
    commit_tree(base / "remote" / "o" / "cli-repo", {"a.py": "def a():\n    return 1\n"})
    commit_tree(base / "remote" / "o" / "api-repo", {"b.py": "def b():\n    return 2\n"})
    clones = Path(server.env["REPOLENS_HOME"]) / "clones"
    with serve_git(base / "remote") as url, server.client() as c:
        for name in ("cli-repo", "api-repo"):
            created = c.post("/api/datasources", json={"url": f"{url}/o/{name}"})
            assert created.status_code == 202, created.text
            assert wait_for_job(c, created.json()["job"]["id"])["state"] == "Ready"
        before = {p.name for p in clones.iterdir()}
        assert len(before) == 2
        removed = cli(server, "sources", "remove", "o/cli-repo")
        assert removed.returncode == 0, removed.stderr
        assert len({p.name for p in clones.iterdir()}) == 1
        api_repo = next(d for d in c.get("/api/datasources/all").json() if d["name"] == "o/api-repo")
        assert c.delete(f"/api/datasources/{api_repo['id']}").status_code == 204
        assert not list(clones.iterdir())
