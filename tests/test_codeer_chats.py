"""Codeer's agents, chats, histories and feedback against a real server with the scripted
stand-in model, on both backends: versions and publishing, SSE streams parsed event by event,
a failing model, whitelist mode, attachments, history-parts paging, feedback, hostile input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeer_api import BAD_REQUEST, CLIENT_NOT_ALLOWED, KB, NOT_FOUND, data, new_kb, refused, upload, wait_ready
from llmserver import Recorder, standin_llm
from server import Server, running_server, start_server

pytestmark = pytest.mark.backends

AGENTS = "/api/v1/external/agents"
HISTORIES = "/api/v1/external/histories"
V2 = "/api/v2/chats"
V1 = "/api/v1/chats"
MODEL = "scripted-model"
POLICY = "# Leave policy\n\n## Vacation\n\nEveryone gets twenty-eight vacation days per year.\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[tuple[Server, Recorder]]:
    with standin_llm() as (llm_url, recorder):
        env = {"REPOLENS_LLM_PROVIDER": "openai", "REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": MODEL}
        with running_server(tmp_path_factory.mktemp("codeer-chats") / "home", env=env) as server:
            yield server, recorder


@pytest.fixture
def client(setup: tuple[Server, Recorder]) -> Iterator[httpx.Client]:
    with setup[0].client() as c:
        yield c


@pytest.fixture(scope="module")
def kb_agent(setup: tuple[Server, Recorder]) -> dict[str, Any]:
    """A published agent over a knowledge base holding the leave policy."""
    with setup[0].client() as client:
        kb = new_kb(client, f"Policies {time.monotonic_ns()}")
        nodes = data(upload(client, kb, {"leave.md": POLICY.encode()}))["nodes"]
        assert [r["status"] for r in wait_ready(client, [n["node_id"] for n in nodes])] == ["READY"]
        body = {
            "name": "HR helper",
            "system_prompt": "Answer from the handbook.",
            "unified_tools": [{"id": "kb1", "type": "knowledge_base", "knowledge_node_ids": [kb]}],
            "suggested_questions": ["How many vacation days?"],
            "llm_model": MODEL,
        }
        agent = data(client.post(AGENTS, json=body))
        versions = data(client.get(f"{AGENTS}/{agent['id']}/versions"))
        data(client.post(f"{AGENTS}/{agent['id']}/versions/{versions[0]['id']}:publish", json={}))
        return {"id": agent["id"], "kb": kb}


def sse(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of every SSE frame, in order."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    out: list[tuple[str | None, Any]] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        event, payload = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload.append(line[5:].lstrip())
        raw = "\n".join(payload)
        out.append((event, raw if raw == "[DONE]" else json.loads(raw)))
    return out


def open_chat(client: httpx.Client, agent_id: str, name: str = "Support", **extra: Any) -> int:
    chat = data(client.post(V2, json={"agent_id": agent_id, "name": name, **extra}))
    assert isinstance(chat["id"], int) and chat["meta"]["conversation_agent_id"] == agent_id
    return int(chat["id"])


def ask(client: httpx.Client, chat_id: int, agent_id: str, message: str, **extra: Any) -> list[tuple[str | None, Any]]:
    body = {"message": message, "agent_id": agent_id, "stream": True, **extra}
    return sse(client.post(f"{V2}/{chat_id}/messages", json=body))


# -- agents -------------------------------------------------------------------------------------


def test_agent_versions_drafts_and_publishing(client: httpx.Client) -> None:
    body = {"name": "Versioned", "system_prompt": "v1 prompt", "unified_tools": [], "use_search": True}
    agent = data(client.post(AGENTS, json=body))
    assert agent["version"] == 1 and agent["published_version_number"] is None and agent["use_search"] is True
    assert agent["workspace_id"] and agent["llm_model"] is None
    # a draft is listed with every agent, not with the published ones
    assert agent["id"] in [a["id"] for a in data(client.get(f"{AGENTS}/all"))]
    assert agent["id"] not in [a["id"] for a in data(client.get(AGENTS))]
    # a full replacement makes a draft version 2
    data(client.patch(f"{AGENTS}/{agent['id']}", json={**body, "system_prompt": "v2 prompt", "version_note": "sharper"}))
    versions = data(client.get(f"{AGENTS}/{agent['id']}/versions"))
    assert [(v["version_number"], v["status"], v["was_published"]) for v in versions] == [
        (2, "draft", False),
        (1, "draft", False),
    ]
    assert versions[0]["version_note"] == "sharper"
    snapshot = data(client.get(f"{AGENTS}/{agent['id']}/versions/{versions[1]['id']}"))
    assert (
        snapshot["system_prompt"] == "v1 prompt" and snapshot["version_number"] == 1 and snapshot["agent_id"] == agent["id"]
    )
    # publish v1, then v2: v1 becomes archived
    data(client.post(f"{AGENTS}/{agent['id']}/versions/{versions[1]['id']}:publish", json={}))
    got = data(client.get(f"{AGENTS}/{agent['id']}"))
    assert got["published_version_number"] == 1 and got["publish_history_id"] == versions[1]["id"]
    assert got["system_prompt"] == "v2 prompt" and got["latest_version_number"] == 2  # the editable agent is the latest
    assert agent["id"] in [a["id"] for a in data(client.get(AGENTS))]
    data(client.post(f"{AGENTS}/{agent['id']}/versions/{versions[0]['id']}:publish", json={}))
    statuses = {v["version_number"]: v["status"] for v in data(client.get(f"{AGENTS}/{agent['id']}/versions"))}
    assert statuses == {2: "published", 1: "archived"}
    # impact: who calls it
    caller = data(
        client.post(
            AGENTS,
            json={
                "name": "Caller",
                "system_prompt": "x",
                "unified_tools": [{"id": "c", "type": "call_agent", "agent_id": agent["id"]}],
            },
        )
    )
    impact = data(client.get(f"{AGENTS}/{agent['id']}/impact"))
    assert impact["downstream_agents"] == [{"id": caller["id"], "name": "Caller"}]


def test_agent_refusals_use_codeer_codes(client: httpx.Client) -> None:
    refused(client.post(AGENTS, json={"name": "M", "system_prompt": "x", "llm_model": "gpt-imaginary"}), 400, BAD_REQUEST)
    tool = {"id": "w", "type": "web_search"}
    assert "not served here" in refused(client.post(AGENTS, json={"name": "W", "unified_tools": [tool]}), 400, BAD_REQUEST)
    kb_tool = {"id": "k", "type": "knowledge_base", "knowledge_node_ids": ["no-such-node"]}
    refused(client.post(AGENTS, json={"name": "K", "unified_tools": [kb_tool]}), 404, NOT_FOUND)
    refused(client.post(AGENTS, json={"name": ""}), 400, BAD_REQUEST)
    refused(client.post(AGENTS, json={"name": "Q", "suggested_questions": ["a", "b", "c", "d"]}), 400, BAD_REQUEST)
    refused(client.get(f"{AGENTS}/no-such-agent"), 404, NOT_FOUND)
    refused(client.get(f"{AGENTS}/no-such-agent/versions"), 404, NOT_FOUND)
    agent = data(client.post(AGENTS, json={"name": "Fine", "system_prompt": "x"}))
    refused(client.post(f"{AGENTS}/{agent['id']}/versions/nope:publish", json={}), 404, NOT_FOUND)
    # a draft-only agent has a chat but no answer: Codeer's "Agent version not found"
    chat = open_chat(client, agent["id"])
    message = refused(client.post(f"{V2}/{chat}/messages", json={"message": "hi", "agent_id": agent["id"]}), 404, NOT_FOUND)
    assert "Agent version not found" in message


# -- chats --------------------------------------------------------------------------------------


def test_streamed_chat_cites_the_knowledge_base_and_ends_completed(
    client: httpx.Client, kb_agent: dict[str, Any], setup: tuple[Server, Recorder]
) -> None:
    chat = data(client.post(V2, json={"agent_id": kb_agent["id"], "name": ""}))["id"]
    question = 'How many vacation days?\nCALL semantic_search {"query": "vacation days per year"}'
    events = ask(client, chat, kb_agent["id"], question)
    kinds = [e for e, _ in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert "response.failed" not in kinds
    for _, payload in events:
        assert payload["chat_id"] == chat and payload["response_id"] == events[0][1]["response_id"]
    created_parts = [p["part"]["part_kind"] for e, p in events if e == "response.part.created"]
    assert created_parts[:1] == ["user-prompt"] and "tool-call" in created_parts and "tool-return" in created_parts
    deltas = "".join(p["delta"] for e, p in events if e == "response.part.delta")
    text = [p for e, p in events if e == "response.part.completed" and p["part"]["part_kind"] == "text"]
    assert len(text) == 1 and text[0]["part"]["content"]["content"] == deltas
    assert "leave.md" in deltas, deltas  # the answer names the knowledge-base file the search found
    title = [p["name"] for e, p in events if e == "response.chat.title.updated"]
    assert title == ['How many vacation days? CALL semantic_search {"query": "vacation days per year"}'[:80]]
    done = events[-1][1]
    assert done["usage"]["total_tokens"] > 0 and isinstance(done["message_id"], int)
    # the search ran over the agent's knowledge base only
    name, arguments = setup[1].tool_calls[-1]
    assert name == "semantic_search" and arguments == {"query": "vacation days per year"}
    listed = data(client.get(f"{V2}/{chat}/messages", params={"limit": 500, "offset": 0}))
    assert [m["part_kind"] for m in listed["messages"]] == ["user-prompt", "text"]
    assert listed["messages"][1]["content"]["content"] == deltas and listed["messages"][1]["id"] == done["message_id"]
    assert data(client.get(f"{HISTORIES}/{chat}"))["name"] == title[0]


def test_a_failing_model_gives_failed_then_completed(client: httpx.Client, kb_agent: dict[str, Any]) -> None:
    chat = open_chat(client, kb_agent["id"])
    events = ask(client, chat, kb_agent["id"], "MODEL_FAILS please")
    kinds = [e for e, _ in events]
    assert kinds[-2:] == ["response.failed", "response.completed"], kinds
    failed = events[-2][1]
    assert failed["code"] == 10005 and "scripted model refuses" in failed["message"]
    # nothing half-stored: the failed turn left no message
    assert data(client.get(f"{V2}/{chat}/messages"))["messages"] == []


def test_non_streamed_answer_and_the_v1_routes(client: httpx.Client, kb_agent: dict[str, Any]) -> None:
    chat = data(client.post(V1, json={"agent_id": kb_agent["id"], "name": "Legacy"}))["id"]
    plain = client.post(
        f"{V1}/{chat}/messages", json={"message": "Hello there", "agent_id": kb_agent["id"], "stream": False}
    )
    answer = data(plain)
    assert isinstance(answer, str) and answer
    events = sse(client.post(f"{V1}/{chat}/messages", json={"message": "And again", "agent_id": kb_agent["id"]}))
    kinds = [e for e, _ in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-2] == "response.output_text.completed" and events[-1] == (None, "[DONE]")
    page = client.get(f"{V1}/{chat}/messages", params={"limit": 3, "offset": 0}).json()
    assert page["pagination"]["total_records"] == 4 and page["pagination"]["total_pages"] == 2
    assert [m["role"] for m in page["data"]] == ["user", "assistant", "user"]
    assert page["data"][0]["group_id"] == page["data"][1]["group_id"] != page["data"][2]["group_id"]
    rest = data(client.get(f"{V1}/{chat}/messages", params={"limit": 3, "offset": 3}))
    assert [m["role"] for m in rest] == ["assistant"]
    assert kb_agent["id"] in [a["id"] for a in data(client.get(f"{V1}/published-agents"))]
    assert chat in [c["id"] for c in data(client.get(V1, params={"agent_id": kb_agent["id"]}))]
    renamed = data(client.put(f"{V1}/{chat}", json={"name": "Renamed"}))
    assert renamed["name"] == "Renamed"
    refused(client.post(V1, json={"agent_id": kb_agent["id"]}), 400, BAD_REQUEST)  # v1 needs a name


def test_attachments_by_uploaded_file_id(
    client: httpx.Client, kb_agent: dict[str, Any], setup: tuple[Server, Recorder]
) -> None:
    note = b"Meeting notes: the quarterly offsite moves to Lisbon."
    uploaded = data(
        client.post(
            "/api/v1/external/files", files={"file": ("notes.txt", note, "text/plain")}, data={"scope": "persistent"}
        )
    )
    assert uploaded["uuid"] and uploaded["size"] == len(note)
    chat = open_chat(client, kb_agent["id"])
    events = ask(client, chat, kb_agent["id"], "Summarise the attached notes", attached_file_uuids=[uploaded["uuid"]])
    assert events[-1][0] == "response.completed"
    prompt = json.dumps(setup[1].requests[-1]["messages"])
    assert "quarterly offsite moves to Lisbon" in prompt  # the file reached the model as data
    question = data(client.get(f"{V2}/{chat}/messages"))["messages"][0]
    assert question["content"]["content"] == "Summarise the attached notes"
    assert [f["name"] for f in question["attached_files"]] == ["notes.txt"]
    # another key's file, a binary file and a file without a content type are refused
    binary = data(client.post("/api/v1/external/files", files={"file": ("blob.txt", b"\xff\xfe\x00", "text/plain")}))
    body = {"message": "x", "agent_id": kb_agent["id"], "attached_file_uuids": [binary["uuid"]]}
    refused(client.post(f"{V2}/{chat}/messages", json=body), 400, BAD_REQUEST)
    body["attached_file_uuids"] = ["nope"]
    refused(client.post(f"{V2}/{chat}/messages", json=body), 404, NOT_FOUND)
    octet = client.post("/api/v1/external/files", files={"file": ("a.txt", b"x", "application/octet-stream")})
    refused(octet, 400, BAD_REQUEST)
    legacy = data(
        client.post(
            f"{V1}/upload-file", files={"file": ("b.md", b"# b", "text/markdown")}, data={"data": '{"scope": "ephemeral"}'}
        )
    )
    assert legacy["scope"] == "ephemeral" and legacy["original_name"] == "b.md"


def test_whitelist_mode_refuses_and_stores_nothing(client: httpx.Client, kb_agent: dict[str, Any]) -> None:
    workspace = data(client.get("/api/v1/external/me"))["profile"]["default_workspace_id"]
    path = f"/api/v1/external/workspaces/{workspace}/client-whitelist"
    before = client.get(HISTORIES, params={"limit": 1000}).json()["pagination"]["total_records"]
    open_before = open_chat(client, kb_agent["id"], external_user_id="alice")
    data(client.put(path, json={"enabled": True, "external_user_ids": ["alice"]}))
    try:
        refused(client.post(V2, json={"agent_id": kb_agent["id"], "name": "x"}), 403, CLIENT_NOT_ALLOWED)
        refused(
            client.post(V2, json={"agent_id": kb_agent["id"], "name": "x", "external_user_id": "mallory"}),
            403,
            CLIENT_NOT_ALLOWED,
        )
        message = {"message": "hi", "agent_id": kb_agent["id"]}
        refused(client.post(f"{V2}/{open_before}/messages", json=message), 403, CLIENT_NOT_ALLOWED)
        refused(client.get(f"{V2}/{open_before}/messages"), 403, CLIENT_NOT_ALLOWED)
        refused(client.get(V1), 403, CLIENT_NOT_ALLOWED)
        # nothing was stored by the refusals: one history more than before (the one opened first), no messages
        after = client.get(HISTORIES, params={"limit": 1000}).json()["pagination"]["total_records"]
        assert after == before + 1
        # the whitelisted user passes
        events = ask(client, open_before, kb_agent["id"], "hello", external_user_id="alice")
        assert events[-1][0] == "response.completed"
        assert len(data(client.get(f"{V2}/{open_before}/messages", params={"external_user_id": "alice"}))["messages"]) == 2
        # a chat opened for alice is nobody else's, whitelisted or not
        data(client.put(path, json={"enabled": True, "external_user_ids": ["alice", "bob"]}))
        refused(client.get(f"{V2}/{open_before}/messages", params={"external_user_id": "bob"}), 404, NOT_FOUND)
    finally:
        data(client.put(path, json={"enabled": False, "external_user_ids": []}))


# -- histories and feedback -----------------------------------------------------------------------


def test_history_parts_paging_is_stable_and_feedback_round_trips(client: httpx.Client, kb_agent: dict[str, Any]) -> None:
    chat = open_chat(client, kb_agent["id"], external_user_id="carol")
    for i in range(3):
        ask(
            client,
            chat,
            kb_agent["id"],
            f'Question {i}\nCALL grep_search {{"pattern": "vacation"}}',
            external_user_id="carol",
        )
    full = data(client.get(f"{HISTORIES}/{chat}/messages", params={"limit": 1000, "offset": 0}))
    assert full["export_contract"] == "history-parts-v1"
    kinds = [p["part_kind"] for p in full["messages"]]
    assert kinds == ["user-prompt", "tool-call", "tool-return", "text"] * 3
    total = full["page"]["total_records"]
    assert total == 12
    pages, offset = [], 0
    while offset < total:
        page = data(client.get(f"{HISTORIES}/{chat}/messages", params={"limit": 5, "offset": offset}))
        assert page["page"] == {"limit": 5, "offset": offset, "total_records": total}
        assert page["part_revision"] == full["part_revision"]
        pages.extend(page["messages"])
        offset += len(page["messages"])
    assert pages == full["messages"]
    groups = [p["conversation_group_id"] for p in full["messages"]]
    assert len(set(groups)) == 3 and groups[:4] == [groups[0]] * 4
    # feedback on the second answer: visible in the parts, the revision changes, filters find it
    answer = full["messages"][7]
    assert answer["part_kind"] == "text"
    given = data(
        client.post(
            f"{V2}/{chat}/messages/{answer['id']}/feedbacks",
            json={"type": "sys_improve", "content": "cite the section", "external_user_id": "carol"},
        )
    )
    assert given["type"] == "sys_improve" and given["content"] == "cite the section"
    again = data(client.get(f"{HISTORIES}/{chat}/messages", params={"limit": 1000}))
    assert again["part_revision"] != full["part_revision"]
    assert again["messages"][7]["feedbacks"] == [given]
    negative = [h["id"] for h in data(client.get(HISTORIES, params={"feedback_filter": "negative"}))]
    positive = [h["id"] for h in data(client.get(HISTORIES, params={"feedback_filter": "positive"}))]
    assert chat in negative and chat not in positive
    listed = data(client.get(HISTORIES, params={"agent_id": kb_agent["id"], "external_user_id": "carol"}))
    assert [h["id"] for h in listed] == [chat] and listed[0]["feedback_counts"]["sys_improve"] == 1
    # feedback on a question, a missing message or with an unknown type is refused
    question = full["messages"][0]["id"]
    refused(client.post(f"{V2}/{chat}/messages/{question}/feedbacks", json={"type": "sys_helpful"}), 400, BAD_REQUEST)
    refused(client.post(f"{V2}/{chat}/messages/999999/feedbacks", json={"type": "sys_helpful"}), 404, NOT_FOUND)
    refused(client.post(f"{V2}/{chat}/messages/{answer['id']}/feedbacks", json={"type": "meh"}), 400, BAD_REQUEST)
    refused(client.get(HISTORIES, params={"feedback_filter": "sideways"}), 400, BAD_REQUEST)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", f"{V2}/not-a-number/messages", {"message": "x", "agent_id": "a"}),
        ("post", f"{V2}/{2**64}/messages", {"message": "x", "agent_id": "a"}),
        ("post", f"{V2}/999999/messages", {"message": "x", "agent_id": "a"}),
        ("post", V2, {"agent_id": 5, "name": "x"}),
        ("post", V2, {"agent_id": "a" * 5000, "name": "x"}),
        ("post", V2, {"agent_id": "nope", "name": "x" * 300}),
        ("post", V2, {"agent_id": "nope", "name": "x", "external_user_id": ["a"]}),
        ("post", V2, [1, 2]),
        ("get", f"{V2}/1/messages?limit=0", None),
        ("get", f"{V2}/1/messages?limit=x", None),
        ("get", f"{HISTORIES}/-1/messages", None),
        ("get", f"{HISTORIES}?order_by=sideways", None),
        ("post", f"{AGENTS}", {"name": "x", "unified_tools": "all"}),
        ("post", f"{AGENTS}", {"name": "x", "unified_tools": [{"type": "knowledge_base", "knowledge_node_ids": "x"}]}),
        ("post", f"{AGENTS}", {"name": ["x"]}),
        ("post", f"{AGENTS}", {"name": "x", "primary_object_ids": ["a"]}),
        ("patch", f"{AGENTS}/nope", {"name": "x"}),
        ("put", f"{V1}/999999", {"name": "x"}),
    ],
)
def test_hostile_inputs_get_the_envelope(client: httpx.Client, method: str, path: str, body: Any) -> None:
    response = client.request(method, path, json=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    envelope = response.json()
    assert envelope["data"] is None and envelope["error_code"] in (BAD_REQUEST, NOT_FOUND), envelope


def test_hostile_messages(client: httpx.Client, kb_agent: dict[str, Any]) -> None:
    chat = open_chat(client, kb_agent["id"])
    for body in (
        {"message": "", "agent_id": kb_agent["id"]},
        {"message": 5, "agent_id": kb_agent["id"]},
        {"message": "x", "agent_id": kb_agent["id"], "stream": "yes"},
        {"message": "x", "agent_id": kb_agent["id"], "attached_file_uuids": "abc"},
        {"message": "x" * 150_000, "agent_id": kb_agent["id"]},
        {"message": "x"},
    ):
        response = client.post(f"{V2}/{chat}/messages", json=body)
        assert response.status_code in (400, 413), response.text
        assert response.json()["error_code"] == BAD_REQUEST
    refused(client.post(f"{V2}/{chat}/messages", json={"message": "x", "agent_id": "nope"}), 404, NOT_FOUND)
    assert data(client.get(f"{V2}/{chat}/messages"))["messages"] == []  # nothing stored


def test_another_keys_chat_is_missing(
    setup: tuple[Server, Recorder], client: httpx.Client, kb_agent: dict[str, Any], tmp_path: Path
) -> None:
    chat = open_chat(client, kb_agent["id"])
    minted = client.post("/api/admin/keys", json={"name": f"member-{time.monotonic_ns()}"})
    assert minted.status_code == 201, minted.text
    with setup[0].client(minted.json()["key"]) as other:
        refused(other.get(f"{V2}/{chat}/messages"), 404, NOT_FOUND)
        refused(other.post(f"{V2}/{chat}/messages", json={"message": "x", "agent_id": kb_agent["id"]}), 404, NOT_FOUND)
        refused(other.get(f"{HISTORIES}/{chat}"), 404, NOT_FOUND)
        assert chat not in [h["id"] for h in data(other.get(HISTORIES))]


def test_a_client_that_goes_away_cancels_the_turn(
    client: httpx.Client, kb_agent: dict[str, Any], setup: tuple[Server, Recorder]
) -> None:
    recorder = setup[1]
    aborted_before = recorder.slow_aborted
    chat = open_chat(client, kb_agent["id"])
    body = {"message": "Tell me SLOWLY", "agent_id": kb_agent["id"], "stream": True}
    with client.stream("POST", f"{V2}/{chat}/messages", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if "response.part.delta" in line:
                break  # the answer has begun: go away
    deadline = time.monotonic() + 10
    while recorder.slow_aborted == aborted_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recorder.slow_aborted == aborted_before + 1  # the model's stream was cut, not run to its end
    assert data(client.get(f"{V2}/{chat}/messages"))["messages"] == []  # an abandoned turn is not stored


def test_agents_bases_chats_and_feedback_survive_a_restart(
    setup: tuple[Server, Recorder], module_backend: str, tmp_path: Path
) -> None:
    """What a Codeer client made is stored, not held in a process: a server started again on the same
    data answers the same agent, versions, base, chat, messages and feedback, and the chat goes on."""
    llm_env = {k: v for k, v in setup[0].env.items() if k.startswith("REPOLENS_LLM_")}
    home = tmp_path / "home"
    # On PostgreSQL the module's database is shared (it printed its admin key to the module's server).
    first = start_server(home, env=llm_env, admin_key=setup[0].admin_key if module_backend else "")
    try:
        with first.client() as client:
            kb = new_kb(client, f"Durable {time.monotonic_ns()}")
            nodes = data(upload(client, kb, {"leave.md": POLICY.encode()}))["nodes"]
            assert [r["status"] for r in wait_ready(client, [n["node_id"] for n in nodes])] == ["READY"]
            body = {
                "name": "Durable helper",
                "system_prompt": "Answer from the handbook.",
                "unified_tools": [{"id": "kb1", "type": "knowledge_base", "knowledge_node_ids": [kb]}],
                "llm_model": MODEL,
            }
            agent = data(client.post(AGENTS, json=body))["id"]
            version = data(client.get(f"{AGENTS}/{agent}/versions"))[0]["id"]
            data(client.post(f"{AGENTS}/{agent}/versions/{version}:publish", json={}))
            chat = open_chat(client, agent, "Durable chat")
            events = ask(client, chat, agent, "How many vacation days?")
            assert events[-1][0] == "response.completed"
            message_id = events[-1][1]["message_id"]
            data(
                client.post(f"{V2}/{chat}/messages/{message_id}/feedbacks", json={"type": "sys_helpful", "content": "clear"})
            )

            def state(c: httpx.Client) -> dict[str, Any]:
                return {
                    "agent": data(c.get(f"{AGENTS}/{agent}")),
                    "versions": data(c.get(f"{AGENTS}/{agent}/versions")),
                    "kb": data(c.get(f"{KB}/nodes", params={"parent_id": kb})),
                    "history": data(c.get(f"{HISTORIES}/{chat}")),
                    "messages": data(c.get(f"{V2}/{chat}/messages", params={"limit": 500, "offset": 0})),
                    "parts": data(c.get(f"{HISTORIES}/{chat}/messages", params={"limit": 1000})),
                }

            before = state(client)
    finally:
        first.stop()
    second = start_server(home, env=llm_env, admin_key=first.admin_key)
    try:
        with second.client() as client:
            after = state(client)
            assert after == before
            assert [m["part_kind"] for m in after["messages"]["messages"]] == ["user-prompt", "text"]
            again = ask(client, chat, agent, "And sick days?")
            assert again[-1][0] == "response.completed"
            listed = data(client.get(f"{V2}/{chat}/messages", params={"limit": 500, "offset": 0}))["messages"]
            assert len(listed) == 4
    finally:
        second.stop()
