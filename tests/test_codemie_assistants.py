"""CodeMie's assistants API (``/code-assistant-api/v1``) on a real server, over HTTP and through
CodeMie's own SDK (``codemie-sdk-python`` 0.1.703, installed by the test in its own venv).

The server has the stand-in model (tests/llmserver.py), which follows the ``CALL`` script in a
message, and a real MCP server (tests/mcpserver.py) that records the headers it receives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from clients import client_venv
from conftest import GEO_CODE, commit_tree
from llmserver import SLOW_CHUNKS, SLOW_DELAY_S, Recorder, standin_llm
from mcpserver import McpRecorder, mcp_server
from repolens.services import build_services
from repolens.settings import Settings
from repolens.storage.agents import AssistantRow
from server import Server, running_server, signed_in_client, start_server, wait_for_job

pytestmark = pytest.mark.backends

API = "/code-assistant-api/v1"
SDK_VERSION = "0.1.703"
MCP_ASSISTANTS = "codemie-mcp-assistants==0.2.0"
PROPAGATED_SECRET = "corr-5d1e-never-logged"  # a header value that goes to the MCP server only
SLOW_ANSWER_S = SLOW_CHUNKS * SLOW_DELAY_S  # how long the stand-in takes over an answer asked SLOWLY
SECOND_MODEL = "standin-2"  # served too (REPOLENS_LLM_MODELS): a turn or an assistant may pick it
SEARCH_THEN_FETCH = (
    "How is the area of a circle computed?\n"
    'CALL semantic_search {"question": "circle area radius"}\n'
    'CALL fetch_artifacts {"identifiers": ["$IDENT"]}\n'
)


def body(name: str = "Geo helper", **changes: Any) -> dict[str, Any]:
    """An ``AssistantCreateRequest`` as the SDK sends it."""
    return {
        "name": name,
        "description": "Answers about geo",
        "system_prompt": "Prefer short answers.",
        "project": "demo",
        "llm_model_type": "standin-1",
        "context": [{"context_type": "code", "name": "geo"}],
        "toolkits": [{"toolkit": "Code", "tools": [{"name": "semantic_search"}, {"name": "fetch_artifacts"}]}],
        "conversation_starters": ["Where is the area computed?"],
        "shared": True,
        "is_react": True,
        "icon_url": "https://example.invalid/icon.png",
        **changes,
    }


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, module_backend: str
) -> Iterator[tuple[Server, Recorder, str, McpRecorder, dict[str, str]]]:
    base = tmp_path_factory.mktemp("codemie")
    allowed = base / "repos"
    repos = [commit_tree(allowed / "geo", GEO_CODE), commit_tree(allowed / "other", {"x.py": "def other(): pass\n"})]
    with standin_llm() as (llm_url, recorder), mcp_server() as (mcp_url, mcp_seen):
        env = {
            "REPOLENS_ALLOWED_ROOTS": str(allowed),
            "REPOLENS_LLM_BASE_URL": llm_url,
            "REPOLENS_LLM_MODEL": "standin-1",
            "REPOLENS_LLM_MODELS": SECOND_MODEL,
        }
        with (base / "server.log").open("w") as log:  # its JSON log, the access log with it
            server = start_server(base / "home", env=env, stderr=log)
            try:
                keys: dict[str, str] = {}
                with server.client() as c:
                    for repo in repos:
                        made = c.post("/api/datasources", json={"path": str(repo), "name": repo.name})
                        assert made.status_code == 202, made.text
                        assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
                    keys["member"] = c.post("/api/admin/keys", json={"name": "member"}).json()["key"]
                    keys["other-scope"] = c.post("/api/admin/keys", json={"name": "o", "scopes": ["other"]}).json()["key"]
                yield server, recorder, mcp_url, mcp_seen, keys
            finally:
                server.stop()


def create(c: httpx.Client, payload: dict[str, Any]) -> str:
    made = c.post(f"{API}/assistants", json=payload)
    assert made.status_code == 200, made.text
    assert made.json()["message"] == "Specified assistant saved" and made.json()["validation"] is None
    return str(made.json()["assistantId"])


def codemie_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "details", "help"}, error
    return dict(error)


def count(server: Server) -> int:
    with server.client() as c:
        return len(c.get(f"{API}/assistants", params={"per_page": 200}).json()["data"])


# -- CRUD over HTTP ----------------------------------------------------------------------------


def test_crud_with_codemies_messages_filters_and_pages(world: Any) -> None:
    server, *_ = world
    with server.client() as c:
        first = create(c, body("Alpha helper"))
        second = create(c, body("Beta helper", shared=False))
        listed = c.get(f"{API}/assistants", params={"minimal_response": "True", "per_page": 200}).json()
        assert set(listed) == {"data", "pagination"}
        names = {a["name"] for a in listed["data"]}
        assert {"Alpha helper", "Beta helper"} <= names
        assert set(listed["data"][0]) == {"id", "name", "description", "icon_url", "created_by", "slug", "project"}
        searched = c.get(f"{API}/assistants", params={"filters": json.dumps({"search": "alpha"})}).json()["data"]
        assert [a["id"] for a in searched] == [first]
        paged = c.get(f"{API}/assistants", params={"per_page": 1, "page": 1, "sort_by": "name", "sort_order": "asc"})
        assert paged.json()["pagination"]["per_page"] == 1 and len(paged.json()["data"]) == 1
        got = c.get(f"{API}/assistants/id/{first}").json()
        assert got["slug"] == "alpha-helper" and got["toolkits"][0]["tools"][1]["name"] == "fetch_artifacts"
        assert got["context"] == [{"context_type": "code", "name": "geo"}] and got["icon_url"].endswith("icon.png")
        assert got["created_by"]["id"] and got["user_abilities"] == ["read", "write", "delete"]
        assert got["conversation_starters"] == ["Where is the area computed?"]
        assert c.get(f"{API}/assistants/slug/alpha-helper").json()["id"] == first
        starters = ["Who calls total_area?", "What is a <Shape>?"]
        updated = c.put(
            f"{API}/assistants/{first}", json=body("Alpha helper 2", description="Renamed", conversation_starters=starters)
        )
        assert updated.status_code == 200 and updated.json()["message"] == "Specified assistant updated"
        got = c.get(f"{API}/assistants/id/{first}").json()
        assert got["name"] == "Alpha helper 2" and got["slug"] == "alpha-helper" and got["version_count"] == 2
        assert got["conversation_starters"] == starters
        assert c.get(f"{API}/assistants/slug/alpha-helper").json()["conversation_starters"] == starters
        tools = c.get(f"{API}/assistants/tools").json()
        assert tools[0]["toolkit"] == "Code" and "semantic_search" in {t["name"] for t in tools[0]["tools"]}
        assert {x["name"] for x in c.get(f"{API}/assistants/context", params={"project_name": "demo"}).json()} == {
            "geo",
            "other",
        }
        for made in (first, second):
            gone = c.delete(f"{API}/assistants/{made}")
            assert gone.json() == {"message": "Specified assistant removed"}
        error = codemie_error(c.get(f"{API}/assistants/id/{first}"), 404)
        assert first in error["details"]


def test_listing_sorts_scopes_and_pages(world: Any) -> None:
    server, _, _, _, keys = world
    with server.client() as admin, server.client(keys["member"]) as member:
        # Created in the order b, a, c (so creation order differs from name order).
        made = {name: create(admin, body(f"Sortable {name}")) for name in ("b", "a", "c")}
        mine = create(member, body("Sortable member's"))

        def listed(c: httpx.Client = admin, **params: Any) -> list[str]:
            params = {"filters": json.dumps({"search": "sortable"}), "per_page": 200, **params}
            got = c.get(f"{API}/assistants", params=params)
            assert got.status_code == 200, got.text
            return [a["name"].removeprefix("Sortable ") for a in got.json()["data"]]

        assert listed(sort_by="name", sort_order="asc") == ["a", "b", "c", "member's"]
        assert listed(sort_by="name", sort_order="desc") == ["member's", "c", "b", "a"]
        assert listed(sort_by="name") == ["member's", "c", "b", "a"]  # desc is CodeMie's default order
        assert listed(sort_by="date", sort_order="asc") == ["b", "a", "c", "member's"]
        assert listed(sort_by="date", sort_order="desc") == ["member's", "c", "a", "b"]
        # No usage or likes are counted here: those sorts keep the default order (newest change first).
        assert listed(sort_by="usage") == listed(sort_by="likes", sort_order="asc") == listed()
        assert listed() == ["member's", "c", "a", "b"]
        admin.put(f"{API}/assistants/{made['b']}", json=body("Sortable b", description="touched"))
        assert listed(sort_by="update_date", sort_order="desc")[0] == "b"
        # Pages over a sorted list: the second page of two holds the rest.
        paged = admin.get(
            f"{API}/assistants",
            params={
                "filters": json.dumps({"search": "sortable"}),
                "sort_by": "name",
                "sort_order": "asc",
                "per_page": 3,
                "page": 1,
            },
        ).json()
        assert [a["name"] for a in paged["data"]] == ["Sortable member's"]
        assert paged["pagination"] == {"page": 1, "per_page": 3, "total": 4, "pages": 2}
        # Scopes: the caller's own, everything it may see, and the marketplace this server has not.
        assert listed(member, scope="created_by_user") == ["member's"]
        assert listed(scope="created_by_user") == ["b", "c", "a"]  # b changed last
        assert set(listed(scope="visible_to_user")) == set(listed(scope="all")) == {"a", "b", "c", "member's"}
        assert set(listed(member, scope="project_with_marketplace")) == {"a", "b", "c", "member's"}
        assert listed(scope="marketplace") == [] and listed(scope="templates") == []
        bad = codemie_error(admin.get(f"{API}/assistants", params={"scope": "everyone"}), 422)
        assert bad["details"][0]["loc"] == ["query", "scope"]
        codemie_error(admin.get(f"{API}/assistants", params={"sort_by": "colour"}), 422)
        codemie_error(admin.get(f"{API}/assistants", params={"sort_by": "name", "sort_order": "sideways"}), 422)
        for assistant_id in (*made.values(), mine):
            assert admin.delete(f"{API}/assistants/{assistant_id}").status_code == 200


def test_calling_an_assistant_by_slug(world: Any) -> None:
    server, *_ = world
    with server.client() as c:
        made = create(c, body("Slug caller"))
        slug = c.get(f"{API}/assistants/id/{made}").json()["slug"]
        assert slug == "slug-caller"
        conversation = str(uuid.uuid4())
        answer = c.post(
            f"{API}/assistants/slug/{slug}/model", json={"text": SEARCH_THEN_FETCH, "conversation_id": conversation}
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["success"] is True and "Circle" in result["generated"]
        assert [t["author_name"] for t in result["thoughts"]] == ["semantic_search", "fetch_artifacts"]
        # the turn is the assistant's: its conversation names it
        assert c.get(f"{API}/conversations/{conversation}").json()["initial_assistant_id"] == made
        with c.stream("POST", f"{API}/assistants/slug/{slug}/model", json={"text": SEARCH_THEN_FETCH, "stream": True}) as s:
            lines = [json.loads(line) for line in s.iter_lines() if line]
        assert lines[-1]["last"] is True and "Circle" in lines[-1]["generated"]
        missing = codemie_error(c.post(f"{API}/assistants/slug/no-such-slug/model", json={"text": "hi"}), 404)
        assert "no-such-slug" in missing["details"]
        c.delete(f"{API}/assistants/{made}")


def test_bad_input_in_codemies_error_shape_and_nothing_half_written(world: Any) -> None:
    server, recorder, *_ = world
    before_assistants, before_requests = count(server), len(recorder.requests)
    with server.client() as c:
        assert codemie_error(c.get(f"{API}/assistants/id/{uuid.uuid4()}"), 404)["message"] == "Not found"
        invalid = codemie_error(c.post(f"{API}/assistants", json={"description": "no name"}), 422)
        assert invalid["details"][0]["loc"] == ["body", "name"]
        codemie_error(c.post(f"{API}/assistants", json=body(temperature=7)), 422)
        unknown_tool = body(toolkits=[{"toolkit": "Git", "tools": [{"name": "delete_branch"}]}])
        assert "delete_branch" in codemie_error(c.post(f"{API}/assistants", json=unknown_tool), 400)["details"]
        codemie_error(c.post(f"{API}/assistants", json=body(context=[{"context_type": "code", "name": "nope"}])), 404)
        codemie_error(c.post(f"{API}/assistants", json=body(assistant_ids=[str(uuid.uuid4())])), 404)
        codemie_error(c.post(f"{API}/assistants", json=body(mcp_servers=[{"name": "x", "enabled": True}])), 400)
        made = create(c, body("Sizer"))
        big = {"text": "x" * 100_001, "conversation_id": str(uuid.uuid4())}
        assert "100000" in codemie_error(c.post(f"{API}/assistants/{made}/model", json=big), 413)["details"]
        huge = c.post(f"{API}/assistants/{made}/model", content=b'{"text": "' + b"x" * 1_100_000 + b'"}')
        codemie_error(huge, 413)
        codemie_error(c.post(f"{API}/assistants/{made}/model", json={"text": "   "}), 400)
        codemie_error(c.post(f"{API}/assistants/{made}/model", json={"text": "hi", "history": [{"role": "x"}]}), 422)
        assert c.get(f"{API}/conversations").json() == [] or all(
            not m["name"].startswith("x" * 20) for m in c.get(f"{API}/conversations").json()
        )
        c.delete(f"{API}/assistants/{made}")
    with httpx.Client(base_url=server.url) as anonymous:
        assert codemie_error(anonymous.get(f"{API}/assistants"), 401)["message"] == "Unauthorized"
    assert count(server) == before_assistants and len(recorder.requests) == before_requests


def test_organisations_owners_and_key_scopes(world: Any, module_backend: str) -> None:
    server, _, _, _, keys = world
    with server.client() as admin, server.client(keys["member"]) as member, server.client(keys["other-scope"]) as scoped:
        shared = create(member, body("Member shared"))
        private = create(member, body("Member private", shared=False))
        # Another organisation's assistant, as an OIDC project mapping would store it.
        services = build_services(Settings(home=server.home, embedder="hash", database_url=module_backend))
        foreign = str(uuid.uuid4())
        try:
            services.store.create_assistant(
                AssistantRow(
                    foreign,
                    "other-org",
                    "someone",
                    "Someone",
                    "Foreign",
                    "foreign",
                    "demo",
                    True,
                    json.dumps({"name": "Foreign"}),
                    1,
                    0.0,
                    0.0,
                )
            )
        finally:
            services.close()
        for c in (admin, member):
            codemie_error(c.get(f"{API}/assistants/id/{foreign}"), 404)
            codemie_error(c.post(f"{API}/assistants/{foreign}/model", json={"text": "hi"}), 404)
            codemie_error(c.delete(f"{API}/assistants/{foreign}"), 404)
        assert foreign not in {a["id"] for a in admin.get(f"{API}/assistants", params={"per_page": 200}).json()["data"]}
        # A key that may not see ``geo`` sees neither assistant searching it.
        codemie_error(scoped.get(f"{API}/assistants/id/{shared}"), 404)
        assert scoped.get(f"{API}/assistants").json()["data"] == []
        codemie_error(scoped.post(f"{API}/assistants", json=body("Scoped")), 404)  # geo is unknown to it
        # The admin may see the member's private one; change only what it owns, unless admin.
        member_view = member.get(f"{API}/assistants/id/{shared}").json()
        assert member_view["user_abilities"] == ["read", "write", "delete"]
        other = create(admin, body("Admin's own", shared=True))
        codemie_error(member.put(f"{API}/assistants/{other}", json=body("Hijack")), 403)
        codemie_error(member.delete(f"{API}/assistants/{other}"), 403)
        assert admin.get(f"{API}/assistants/id/{other}").json()["name"] == "Admin's own"
        assert member.get(f"{API}/assistants/id/{other}").json()["user_abilities"] == ["read"]
        for made in (shared, private):
            assert admin.delete(f"{API}/assistants/{made}").status_code == 200
        admin.delete(f"{API}/assistants/{other}")


# -- calling over HTTP -------------------------------------------------------------------------


def test_sync_stream_and_background_calls(world: Any) -> None:
    server, *_ = world
    with server.client() as c:
        made = create(c, body("Caller"))
        conversation = str(uuid.uuid4())
        sync = c.post(f"{API}/assistants/{made}/model", json={"text": SEARCH_THEN_FETCH, "conversation_id": conversation})
        assert sync.status_code == 200, sync.text
        result = sync.json()
        assert result["generated"].startswith("Let me check.") and "Circle" in result["generated"]
        assert [t["author_name"] for t in result["thoughts"]] == ["semantic_search", "fetch_artifacts"]
        assert result["thoughts"][0]["author_type"] == "Tool" and result["thoughts"][0]["output_format"] == "text"
        assert result["success"] is True and result["timeElapsed"] > 0 and result["tokensUsed"] > 0
        # The docs' /chat spelling is the same call; the conversation continues.
        again = c.post(f"{API}/assistants/{made}/chat", json={"text": "Thanks", "conversationId": conversation})
        assert again.status_code == 200 and again.json()["generated"].startswith("Answer:")
        with c.stream(
            "POST", f"{API}/assistants/{made}/model", json={"text": SEARCH_THEN_FETCH, "stream": True}
        ) as streamed:
            assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in streamed.iter_lines() if line]
        chunks = "".join(x["generated_chunk"] or "" for x in lines if not x["last"])
        thoughts = [x["thought"] for x in lines if x.get("thought")]
        assert [(t["author_name"], t["in_progress"]) for t in thoughts] == [
            ("semantic_search", True),
            ("semantic_search", False),
            ("fetch_artifacts", True),
            ("fetch_artifacts", False),
        ]
        assert lines[-1]["last"] is True and lines[-1]["generated"] == chunks and chunks.startswith("Let me check.")
        started = c.post(f"{API}/assistants/{made}/model", json={"text": SEARCH_THEN_FETCH, "background_task": True})
        task_id = started.json()["taskId"]
        assert started.json()["generated"] == "Task is running in the background" and task_id
        deadline = time.monotonic() + 60
        task = c.get(f"{API}/tasks/{task_id}").json()
        while task["status"] == "STARTED" and time.monotonic() < deadline:
            time.sleep(0.2)
            task = c.get(f"{API}/tasks/{task_id}").json()
        assert task["status"] == "COMPLETED" and "Circle" in task["final_output"], task
        codemie_error(c.get(f"{API}/tasks/{uuid.uuid4()}"), 404)
        # Conversations: the synchronous one holds both turns with their thoughts.
        listed = c.get(f"{API}/conversations").json()
        assert conversation in {x["id"] for x in listed}
        details = c.get(f"{API}/conversations/{conversation}").json()
        assert details["initial_assistant_id"] == made and details["assistant_ids"] == [made]
        history = details["history"]
        assert [(h["role"], h["historyIndex"]) for h in history] == [
            ("User", 0),
            ("Assistant", 0),
            ("User", 1),
            ("Assistant", 1),
        ]
        assert [t["author_name"] for t in history[1]["thoughts"]] == ["semantic_search", "fetch_artifacts"]
        assert c.get(f"{API}/conversations/{conversation}/history").json() == history
        assert c.delete(f"{API}/conversations/{conversation}").json() == {"message": "Specified conversation removed"}
        missing = codemie_error(c.get(f"{API}/conversations/{conversation}"), 404)
        assert missing["message"] == "Conversation not found" and conversation in missing["details"]
        c.delete(f"{API}/assistants/{made}")


def test_the_web_ui_shows_a_stored_turns_thought_tree(world: Any) -> None:
    server, *_ = world
    conversation = str(uuid.uuid4())
    with server.client() as c:
        made = create(c, body("Shown helper"))
        asked = c.post(f"{API}/assistants/{made}/model", json={"text": SEARCH_THEN_FETCH, "conversation_id": conversation})
        assert asked.status_code == 200, asked.text
    with signed_in_client(server) as (web, _csrf):
        shown = web.get(f"/ui/assistants/{made}", params={"conversation": conversation})
        assert shown.status_code == 200
        steps = shown.text.split('<details class="steps">', 1)[1].split("</details>\n<div class=", 1)[0]
        assert "Steps (2)" in steps
        assert steps.index("semantic_search") < steps.index("fetch_artifacts")
        assert "circle area radius" in steps  # the tool's input, escaped as text


def test_a_turn_counts_against_the_callers_key_and_a_client_that_leaves_stops_it(world: Any) -> None:
    server, recorder, _, _, keys = world
    member_id = keys["member"].split("_")[1]

    def usage() -> dict[str, int]:
        with server.client() as admin:
            listed = admin.get("/api/admin/keys").json()
        return dict(next(k["usage"] for k in listed if k["id"] == member_id))

    with server.client() as admin:
        made = create(admin, body("Shared helper"))
    before = usage()
    with server.client(keys["member"]) as member:
        answer = member.post(f"{API}/assistants/{made}/model", json={"text": SEARCH_THEN_FETCH})
        assert answer.status_code == 200, answer.text
        after = usage()
        assert after["chatRequests"] == before["chatRequests"] + 1
        assert after["promptTokens"] > before["promptTokens"] and after["completionTokens"] > before["completionTokens"]
        # The model sampled with the assistant's settings.
        assert recorder.requests[-1]["temperature"] == 0
        aborted, conversation = recorder.slow_aborted, str(uuid.uuid4())
        stream = {"text": "Explain SLOWLY", "stream": True, "conversation_id": conversation}
        with member.stream("POST", f"{API}/assistants/{made}/model", json=stream) as streamed:
            lines = streamed.iter_lines()
            assert json.loads(next(lines))["generated_chunk"].startswith("wo")  # tokens are flowing
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and recorder.slow_aborted == aborted:
            time.sleep(0.05)
        assert recorder.slow_aborted == aborted + 1, "the model kept generating for a client that left"
        codemie_error(member.get(f"{API}/conversations/{conversation}"), 404)  # nothing stored
        assert usage()["completionTokens"] > after["completionTokens"]  # what the model spent still counts
    with server.client() as admin:
        admin.delete(f"{API}/assistants/{made}")


def test_headers_reach_the_mcp_server_minus_the_blocklist_only_when_asked(world: Any) -> None:
    server, _, mcp_url, seen, keys = world
    mcp = [{"name": "desk", "enabled": True, "description": None, "config": {"url": mcp_url, "type": "streamable-http"}}]
    with server.client() as c:
        made = create(c, body("Desk", toolkits=[], mcp_servers=mcp))
        text = 'Ticket?\nCALL lookup_ticket {"ticket": "ENG-1"}\n'
        headers = {
            "X-Tenant-Id": "acme-corp",
            "X-Correlation-Id": PROPAGATED_SECRET,
            "X-Api-Key": "ca_secret",
            "X-Auth-Token": "t",
            "Cookie": "a=b",
            "X-Request-Id": "propagating-call",
        }
        seen.headers.clear()
        answer = c.post(f"{API}/assistants/{made}/model", json={"text": text, "propagate_headers": True}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert "geometry team" in answer.json()["thoughts"][0]["message"]
        assert seen.headers and all(h.get("x-tenant-id") == "acme-corp" for h in seen.headers)
        assert all(h.get("x-correlation-id") == PROPAGATED_SECRET for h in seen.headers)
        for h in seen.headers:
            assert "x-api-key" not in h and "x-auth-token" not in h and "cookie" not in h
            assert h.get("authorization") is None  # the caller's repolens key never leaves
        seen.headers.clear()
        c.post(f"{API}/assistants/{made}/model", json={"text": text}, headers=headers)
        assert seen.headers and all("x-tenant-id" not in h for h in seen.headers)
        # Another key sees the MCP server's headers masked.
        with server.client(keys["member"]) as member:
            shown = member.get(f"{API}/assistants/id/{made}").json()["mcp_servers"][0]
            assert shown["config"]["url"] == mcp_url
        c.delete(f"{API}/assistants/{made}")
    # The values travelled to the MCP server but never into the server's log (its JSON log and the
    # access log), which did record the request that carried them.
    log = server.home.parent / "server.log"
    deadline = time.monotonic() + 10
    while '"propagating-call"' not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the access log line is written just after the response
    written = log.read_text()
    assert '"propagating-call"' in written, "the access log never named the request"
    assert PROPAGATED_SECRET not in written and "acme-corp" not in written


def test_a_turn_over_its_wall_time_budget_ends_with_codemies_agent_error(
    tmp_path: Path, module_backend: str, request: pytest.FixtureRequest
) -> None:
    """REPOLENS_AGENT_MAX_SECONDS: a model that answers slowly is cut off, and CodeMie's
    ``agentError`` says which budget ran out."""
    # A server of its own (the module's has the default budget) on a database of its own.
    database = request.getfixturevalue("pg_cluster").new_database() if module_backend else ""
    with standin_llm() as (llm_url, recorder):
        env = {
            "REPOLENS_DATABASE_URL": database,
            "REPOLENS_LLM_BASE_URL": llm_url,
            "REPOLENS_LLM_MODEL": "standin-1",
            "REPOLENS_AGENT_MAX_SECONDS": "1",
        }
        with running_server(tmp_path / "home", env=env) as server, server.client() as c:
            made = create(c, body("Hurried", context=[], toolkits=[]))
            started = time.monotonic()
            answer = c.post(f"{API}/assistants/{made}/model", json={"text": "Explain SLOWLY"})
            took = time.monotonic() - started
            assert answer.status_code == 200, answer.text
            result = answer.json()
            note = "[Stopped: the time budget of this turn (1 s) ran out before a final answer.]"
            assert result["success"] is False
            assert result["agentError"] == {"error_code": "agent_timeout", "message": note, "details": {"budget": "time"}}
            assert result["generated"].startswith("word0 ") and result["generated"].endswith(note)
            budget = result["thoughts"][-1]
            assert (budget["author_type"], budget["author_name"], budget["error"]) == ("System", "Budget", True)
            assert took < 1 + SLOW_ANSWER_S / 2, took  # cut at the budget, not after the whole answer
            deadline = time.monotonic() + 10
            while recorder.slow_aborted < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert recorder.slow_aborted == 1 and recorder.slow_finished == 0  # the model's stream was closed
            # The same turn in the background: the task ends FAILED (not COMPLETED), with the note.
            task_id = c.post(f"{API}/assistants/{made}/model", json={"text": "Explain SLOWLY", "background_task": True})
            task_id = task_id.json()["taskId"]
            deadline = time.monotonic() + 15
            task = c.get(f"{API}/tasks/{task_id}").json()
            while task["status"] == "STARTED" and time.monotonic() < deadline:
                time.sleep(0.1)
                task = c.get(f"{API}/tasks/{task_id}").json()
            assert task["status"] == "FAILED", task
            assert task["final_output"].endswith(note) and task["current_step"] == "stopped: time budget"
            # Streamed, the last chunk says it too; with include_tool_errors the summary line as well.
            stream = {"text": "Explain SLOWLY", "stream": True}
            with c.stream(
                "POST", f"{API}/assistants/{made}/model", params={"include_tool_errors": "true"}, json=stream
            ) as s:
                lines = [json.loads(line) for line in s.iter_lines() if line]
            last, summary = lines[-2], lines[-1]
            assert last["last"] is True and last["success"] is False and last["generated"].endswith(note)
            assert last["agent_error"]["error_code"] == "agent_timeout"
            assert summary["success"] is False and summary["agent_error"]["message"] == note
            assert summary["tool_errors"] == []


def test_virtual_assistant_is_never_stored(world: Any) -> None:
    server, *_ = world
    with server.client() as c:
        before = len(c.get(f"{API}/conversations").json())
        virtual = {
            "text": SEARCH_THEN_FETCH,
            "system_prompt": "Be brief.",
            "context": [{"context_type": "code", "name": "geo"}],
            "toolkits": [{"toolkit": "Code", "tools": [{"name": "semantic_search"}, {"name": "fetch_artifacts"}]}],
            "conversation_id": str(uuid.uuid4()),
        }
        answer = c.post(f"{API}/assistants/virtual/model", json=virtual)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["thoughts"]) == 2 and "Circle" in answer.json()["generated"]
        assert len(c.get(f"{API}/conversations").json()) == before


# -- what a turn may carry: files, an output schema, a history index, a model ---------------------

SHAPE = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
}


def replying(c: httpx.Client, name: str, reply: str) -> str:
    """An assistant without tools whose (stand-in) model answers ``reply``."""
    return create(c, body(name, system_prompt=f"REPLY_WITH: {reply}", toolkits=[]))


def test_output_schema_gives_an_object_and_a_mismatch_is_reported(world: Any) -> None:
    server, recorder, *_ = world
    with server.client() as c:
        # Short lines: the leak guard holds back any long line of the system prompt, and the
        # stand-in's reply is written in it.
        made = replying(c, "Shaper", '```json\n{"colour": "orange",\n "count": 2}\n```')
        url = f"{API}/assistants/{made}/model"
        shaped = c.post(url, json={"text": "Which colour?", "output_schema": SHAPE})
        assert shaped.status_code == 200, shaped.text
        assert shaped.json()["generated"] == {"colour": "orange", "count": 2} and shaped.json()["success"] is True
        system = recorder.requests[-1]["messages"][0]["content"]
        assert "valid against this JSON Schema" in system and '"colour"' in system
        with c.stream("POST", url, json={"text": "Which colour?", "output_schema": SHAPE, "stream": True}) as streamed:
            last = [json.loads(line) for line in streamed.iter_lines() if line][-1]
        assert last["last"] is True and last["generated"] == {"colour": "orange", "count": 2}
        wrong = {**SHAPE, "properties": {**SHAPE["properties"], "count": {"type": "string"}}}
        mismatch = c.post(url, json={"text": "Which colour?", "output_schema": wrong}).json()
        assert mismatch["success"] is False and mismatch["generated"].startswith("```json")
        assert mismatch["agentError"]["error_code"] == "validation_output"
        assert "count: 2 is not of type 'string'" in mismatch["agentError"]["message"]
        invalid = c.post(url, json={"text": "Which colour?", "output_schema": {"type": 5}})
        assert "not a valid JSON Schema" in codemie_error(invalid, 400)["details"]


def test_files_named_on_a_turn_reach_the_model_as_escaped_data(world: Any) -> None:
    server, recorder, _, _, keys = world
    with server.client() as c:
        made = replying(c, "Reader", "Read it.")
        note = c.post(f"{API}/files/", files={"file": ("notes.md", b"The launch code is <b>PAPAYA</b>.\n", "text/markdown")})
        assert note.status_code == 200, note.text
        file_url = note.json()["file_url"]
        asked = c.post(f"{API}/assistants/{made}/model", json={"text": "What is the code?", "file_names": [file_url]})
        assert asked.status_code == 200, asked.text
        sent = recorder.last_user_message()
        assert sent.startswith("What is the code?") and '<attachment name="notes.md">' in sent
        assert "&lt;b&gt;PAPAYA&lt;/b&gt;" in sent and "<b>" not in sent
        binary = c.post(f"{API}/files/", files={"file": ("logo.png", b"\x89PNG\r\n\x00\x00", "image/png")})
        refused = c.post(f"{API}/assistants/{made}/model", json={"text": "Look", "file_names": [binary.json()["file_url"]]})
        assert "'logo.png' is binary" in codemie_error(refused, 400)["details"]
        missing = c.post(f"{API}/assistants/{made}/model", json={"text": "Look", "file_names": ["no-such-file"]})
        codemie_error(missing, 404)
        too_many = c.post(f"{API}/assistants/{made}/model", json={"text": "Look", "file_names": ["x"] * 21})
        codemie_error(too_many, 422)
    with server.client(keys["member"]) as other:  # someone else's upload is as good as missing
        mine = create(other, body("Member reader", system_prompt="REPLY_WITH: ok", toolkits=[]))
        foreign = other.post(f"{API}/assistants/{mine}/model", json={"text": "Look", "file_names": [file_url]})
        codemie_error(foreign, 404)


def test_history_index_regenerates_from_a_turn(world: Any) -> None:
    server, recorder, *_ = world
    conversation = str(uuid.uuid4())
    with server.client() as c:
        made = replying(c, "Regenerator", "Noted.")
        url = f"{API}/assistants/{made}/model"
        for text in ("first question", "second question"):
            assert c.post(url, json={"text": text, "conversation_id": conversation}).status_code == 200
        again = c.post(url, json={"text": "second, rephrased", "conversation_id": conversation, "history_index": 1})
        assert again.status_code == 200, again.text
        sent = [m["content"] for m in recorder.requests[-1]["messages"][1:]]
        assert sent == ["first question", "Noted.", "second, rephrased"]
        history = c.get(f"{API}/conversations/{conversation}/history").json()
        assert [(h["role"], h["message"], h["historyIndex"]) for h in history] == [
            ("User", "first question", 0),
            ("Assistant", "Noted.", 0),
            ("User", "second, rephrased", 1),
            ("Assistant", "Noted.", 1),
        ]
        beyond = c.post(url, json={"text": "x", "conversation_id": conversation, "history_index": 3})
        assert "0 to 2" in codemie_error(beyond, 400)["details"]
        assert len(c.get(f"{API}/conversations/{conversation}/history").json()) == 4  # nothing half-written


def test_a_turn_or_an_assistant_picks_a_served_model_by_name(world: Any) -> None:
    server, recorder, *_ = world
    with server.client() as c:
        listed = c.get(f"{API}/llm_models").json()
        assert [(m["base_name"], m["default"]) for m in listed] == [("standin-1", True), (SECOND_MODEL, False)]
        made = replying(c, "Picker", "Picked.")
        url = f"{API}/assistants/{made}/model"
        assert c.post(url, json={"text": "hi"}).status_code == 200 and recorder.requests[-1]["model"] == "standin-1"
        assert c.post(url, json={"text": "hi", "llm_model": SECOND_MODEL}).status_code == 200
        assert recorder.requests[-1]["model"] == SECOND_MODEL
        unknown = c.post(url, json={"text": "hi", "llmModel": "gpt-imaginary"})
        assert "standin-1, standin-2" in codemie_error(unknown, 400)["details"]
        second = create(c, body("Second picker", llm_model_type=SECOND_MODEL, system_prompt="REPLY_WITH: ok", toolkits=[]))
        assert c.post(f"{API}/assistants/{second}/model", json={"text": "hi"}).status_code == 200
        assert recorder.requests[-1]["model"] == SECOND_MODEL
        before = count(server)
        refused = c.post(f"{API}/assistants", json=body("Nowhere", llm_model_type="gpt-imaginary"))
        assert "gpt-imaginary" in codemie_error(refused, 400)["details"] and count(server) == before


# -- CodeMie's SDK -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The interpreter of a venv with CodeMie's SDK and its assistants MCP server (tests/clients.py
    builds it once and caches it; failing to build it fails the test)."""
    return client_venv("codemie-mcp-assistants", [f"codemie-sdk-python=={SDK_VERSION}", MCP_ASSISTANTS]) / "python"


SDK_SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys, time, uuid
    from pydantic import BaseModel
    from codemie_sdk.models.assistant import (AssistantChatRequest, AssistantCreateRequest, AssistantUpdateRequest,
        Context, ToolDetails, ToolKitDetails)
    from codemie_sdk.services.assistant import AssistantService
    from codemie_sdk.services.conversation import ConversationService
    from codemie_sdk.services.task import TaskService

    domain, key, question = sys.argv[1], sys.argv[2], sys.argv[3]
    TOOLS = ("semantic_search", "fetch_artifacts")
    # CodeMieClient needs a login (local-auth or Keycloak) before it builds these services; the
    # services themselves are the SDK's own, given our API key as their token.
    assistants = AssistantService(domain, key)
    conversations = ConversationService(domain, key)
    tasks = TaskService(domain, key)
    out = {}
    request = AssistantCreateRequest(
        name="SDK helper", description="Made by the SDK", system_prompt="Be brief.", project="demo",
        llm_model_type="standin-1", context=[Context(context_type="code", name="geo")],
        toolkits=[ToolKitDetails(toolkit="Code", tools=[ToolDetails(name=n) for n in TOOLS])],
        shared=True,
    )
    created = assistants.create(request)
    out["create_message"] = created.message
    listed = assistants.list(per_page=200)
    made = next(a for a in listed if a.name == "SDK helper")
    out["listed_id_matches"] = made.id == created.assistant_id
    full = assistants.list(minimal_response=False, filters={"search": "SDK"})
    out["full_list"] = [a.system_prompt for a in full]
    got = assistants.get(made.id)
    out["got"] = [got.name, got.project, got.slug, got.created_by.user_id != ""]
    out["by_slug"] = assistants.get_by_slug(got.slug).id == made.id
    update = AssistantUpdateRequest(**{**request.model_dump(), "description": "Updated by the SDK"})
    out["update_message"] = assistants.update(made.id, update).message
    out["description"] = assistants.get(made.id).description
    out["tools"] = [t.name for kit in assistants.get_tools() for t in kit.tools]
    out["context"] = [c.name for c in assistants.get_context("demo")]
    conversation = str(uuid.uuid4())
    answer = assistants.chat(made.id, AssistantChatRequest(text=question, conversation_id=conversation))
    out["sync"] = [answer.generated, [t["author_name"] for t in answer.thoughts], answer.time_elapsed > 0]
    streamed = assistants.chat(made.id, AssistantChatRequest(text=question, stream=True))
    chunks = [json.loads(line) for line in streamed.iter_lines() if line]
    out["stream"] = [
        "".join(c.get("generated_chunk") or "" for c in chunks if not c["last"]),
        [c["thought"]["author_name"] for c in chunks if c.get("thought")],
        chunks[-1]["last"], chunks[-1]["generated"],
    ]
    background = assistants.chat(made.id, AssistantChatRequest(text=question, background_task=True))
    task = tasks.get(background.task_id)
    deadline = time.time() + 60
    while task.status.value == "STARTED" and time.time() < deadline:
        time.sleep(0.2)
        task = tasks.get(background.task_id)
    out["task"] = [task.status.value, task.final_output[:40]]
    class Shape(BaseModel):
        colour: str
        count: int

    shaper = AssistantCreateRequest(
        name="SDK shaper", description="Answers in shape", project="demo", llm_model_type="standin-2",
        system_prompt='REPLY_WITH: {"colour": "orange",\\n "count": 2}', context=[Context(context_type="code", name="geo")],
    )
    assistants.create(shaper)
    shaper_id = next(a for a in assistants.list(per_page=200) if a.name == "SDK shaper").id
    uploaded = assistants.upload_file_to_chat(pathlib.Path(sys.argv[4]))
    shaped = assistants.chat(
        shaper_id, AssistantChatRequest(text="Which colour?", output_schema=Shape, file_names=[uploaded["file_url"]])
    )
    out["shaped"] = [type(shaped.generated).__name__, shaped.generated.colour, shaped.generated.count]
    listed_conversations = conversations.list()
    out["conversation_listed"] = conversation in [c.id for c in listed_conversations]
    out["by_assistant"] = conversation in [c.id for c in conversations.list_by_assistant_id(made.id)]
    details = conversations.get_conversation(conversation)
    out["details"] = [
        details.initial_assistant_id == made.id, [h.role for h in details.history], len(details.history[1].thoughts)
    ]
    out["delete_conversation"] = conversations.delete(conversation)
    out["delete"] = assistants.delete(made.id)
    print(json.dumps(out))
    """
)


def test_codemies_sdk_runs_unchanged(world: Any, sdk_python: Path, tmp_path: Path) -> None:
    server, recorder, *_ = world
    script = tmp_path / "sdk_run.py"
    script.write_text(SDK_SCRIPT)
    note = tmp_path / "release-notes.md"
    note.write_text("Codename: KUMQUAT\n")
    run = subprocess.run(
        [str(sdk_python), str(script), f"{server.url}/code-assistant-api", server.admin_key, SEARCH_THEN_FETCH, str(note)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["create_message"] == "Specified assistant saved" and out["listed_id_matches"] is True
    assert out["full_list"] == ["Be brief."]
    assert out["got"] == ["SDK helper", "demo", "sdk-helper", True] and out["by_slug"] is True
    assert out["update_message"] == "Specified assistant updated" and out["description"] == "Updated by the SDK"
    assert "fetch_artifacts" in out["tools"] and "geo" in out["context"]
    generated, thought_names, timed = out["sync"]
    assert "Circle" in generated and thought_names == ["semantic_search", "fetch_artifacts"] and timed
    text, streamed_thoughts, last, final = out["stream"]
    assert text == final and "Circle" in final and last is True
    assert streamed_thoughts == ["semantic_search", "semantic_search", "fetch_artifacts", "fetch_artifacts"]
    assert out["task"][0] == "COMPLETED" and out["task"][1].startswith("Let me check.")
    # A pydantic output_schema comes back as that model; the uploaded file reached the chosen model.
    assert out["shaped"] == ["Shape", "orange", 2]
    shaped_request = next(r for r in reversed(recorder.requests) if "KUMQUAT" in str(r["messages"][-1]["content"]))
    assert shaped_request["model"] == "standin-2"
    assert out["conversation_listed"] and out["by_assistant"]
    assert out["details"] == [True, ["User", "Assistant"], 2]
    assert out["delete_conversation"] == {"message": "Specified conversation removed"}
    assert out["delete"] == {"message": "Specified assistant removed"}


LOCAL_USER, LOCAL_PASSWORD = "mcp-user@example.com", "correct horse battery staple"


def test_codemies_mcp_assistants_server_asks_an_assistant(world: Any, sdk_python: Path) -> None:
    server, *_ = world
    created = subprocess.run(
        [sys.executable, "-m", "repolens", "users", "create", LOCAL_USER, "--password-stdin"],
        input=LOCAL_PASSWORD + "\n",
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    with server.client() as c:
        made = create(c, body("MCP helper"))
    env = {
        "PATH": str(sdk_python.parent),
        "CODEMIE_API_DOMAIN": f"{server.url}/code-assistant-api",
        "CODEMIE_AUTH_SERVER_URL": "unused",
        "CODEMIE_AUTH_REALM_NAME": "unused",
        "CODEMIE_USERNAME": LOCAL_USER,
        "CODEMIE_PASSWORD": LOCAL_PASSWORD,
        "CODEMIE_ASSISTANT_ID": made,
    }

    async def ask() -> tuple[list[str], str]:
        params = StdioServerParameters(command=str(sdk_python.parent / "codemie-mcp-assistants"), env=env)
        async with Client(params) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("ask_mcp_helper", {"message": SEARCH_THEN_FETCH, "history": []})
            return names, "".join(getattr(b, "text", "") for b in result.content)

    names, text = anyio.run(ask)
    assert names == ["ask_mcp_helper"]
    assert text.startswith("Response: Let me check.") and "Circle" in text and "Conversation_Id: " in text
