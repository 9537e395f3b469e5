"""CodeMie workflows over HTTP on a real server: ``codemie-sdk-python`` 0.1.703 (its own venv)
creates, lists, updates and deletes a workflow, runs one to Succeeded, reads states, outputs,
thoughts and transitions, resumes one paused at ``interrupt_before``; ``codemie-mcp-workflows``
runs as a stdio MCP server and starts an execution; abort over plain HTTP (the SDK's is broken).
Assistant states run on the stand-in LLM (tests/llmserver.py, scripted with ``REPLY_WITH:``); the
engine runs in the job queue's child process, so a kill -9 of the server mid-execution is real.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from clients import client_venv, run_python
from llmserver import Recorder, standin_llm
from mcpserver import mcp_server
from server import Server, start_server

SDK = ["codemie-sdk-python==0.1.703"]
MCP_WORKFLOWS = ["codemie-mcp-workflows==0.2.0", *SDK]
PROJECT = "default"
EMAIL, PASSWORD = "wf@example.com", "workflow password 1"
RUN_TIMEOUT_S = 90

FLOW = """\
assistants:
  - id: lister
    system_prompt: 'REPLY_WITH: {"colors": ["red", "green", "blue"]}'
  - id: writer
    system_prompt: 'REPLY_WITH: text about {input}'
  - id: merger
    system_prompt: 'REPLY_WITH: {"merged": "all colors"}'
states:
  - id: list_colors
    assistant_id: lister
    task: List three colors
    next: {state_id: describe, iter_key: colors}
  - id: describe
    assistant_id: writer
    task: Describe a color
    next: {state_id: merge}
  - id: merge
    assistant_id: merger
    task: Merge the texts
    next:
      condition: {expression: "'merged' in keys", then: end, otherwise: list_colors}
"""
PAUSING = FLOW.replace("    task: Merge the texts", "    interrupt_before: true\n    task: Merge the texts")
# One slow item (the stand-in streams ~10 s): long enough to abort or kill it mid-call.
SLOW = FLOW.replace("REPLY_WITH: text about {input}", "REPLY_WITH: SLOWLY {input}").replace(
    '["red", "green", "blue"]', '["red"]'
)


class World:
    def __init__(self, server: Server, recorder: Recorder) -> None:
        self.server = server
        self.recorder = recorder
        self.api = f"{server.url}/code-assistant-api"
        with httpx.Client(base_url=f"{self.api}/v1", timeout=60) as c:
            self.token = c.post("/local-auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["access_token"]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api}/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def create(self, name: str, yaml_config: str) -> str:
        with self.http() as c:
            r = c.post(
                "/workflows",
                json={
                    "project": PROJECT,
                    "name": name,
                    "description": None,
                    "yaml_config": yaml_config,
                    "mode": "Sequential",
                    "shared": False,
                    "icon_url": None,
                    "categories": [],
                },
            )
            assert r.status_code == 200, r.text
            return str(r.json()["data"]["id"])

    def wait(self, wf: str, ex: str, statuses: tuple[str, ...]) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with self.http() as c:
            while True:
                got = c.get(f"/workflows/{wf}/executions/{ex}").json()
                if got["overall_status"] in statuses or time.monotonic() > deadline:
                    return dict(got)
                time.sleep(0.2)


def _add_user(server: Server) -> None:
    exe = Path(sys.executable).with_name("repolens")
    made = subprocess.run(
        [str(exe), "users", "create", EMAIL, "--password-stdin", "--admin"],
        env=server.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr


def _start(home: Path, llm_url: str, admin_key: str = "") -> Server:
    env = {"REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": "standin-1"}
    return start_server(home, env=env, admin_key=admin_key)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("workflows") / "home"
    with standin_llm() as (llm_url, recorder):
        server = _start(home, llm_url)
        try:
            _add_user(server)
            yield World(server, recorder)
        finally:
            server.stop()


def _wait_for_state(world: World, wf: str, ex: str, name: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with world.http() as c:
        while time.monotonic() < deadline:
            states = c.get(f"/workflows/{wf}/executions/{ex}/states", params={"per_page": 50}).json()["data"]
            if any(s["name"] == name for s in states):
                return
            time.sleep(0.1)
    pytest.fail(f"state {name} never started")


def sdk_script(world: World, body: str) -> Any:
    prelude = f"""
import json, sys, time
from codemie_sdk import CodeMieClient
client = CodeMieClient(auth_server_url="http://unused.invalid", auth_realm_name="unused",
                       codemie_api_domain={world.api!r}, username={EMAIL!r}, password={PASSWORD!r})
"""
    out = run_python(client_venv("codemie-sdk", SDK), prelude + body, timeout=RUN_TIMEOUT_S + 60)
    return json.loads(out.strip().splitlines()[-1])


def test_sdk_manages_workflows_and_runs_one_to_succeeded(world: World) -> None:
    got = sdk_script(
        world,
        f"""
from codemie_sdk.models.workflow import WorkflowCreateRequest, WorkflowUpdateRequest
created = client.workflows.create_workflow(WorkflowCreateRequest(project={PROJECT!r}, name="colors", yaml_config={FLOW!r}))
listed = client.workflows.list(per_page=50)
wf = [w for w in listed if w.name == "colors"][0]
updated = client.workflows.update(wf.id, WorkflowUpdateRequest(project={PROJECT!r}, name="colors", description="v2",
                                                                yaml_config={FLOW!r}))
got = client.workflows.get(wf.id)
ex = client.workflows.run(wf.id, user_input="paint")
eid = ex["execution_id"]
deadline = time.monotonic() + {RUN_TIMEOUT_S}
status = None
while time.monotonic() < deadline:
    e = client.workflows.executions(wf.id).get(eid)
    status = e.status.value if hasattr(e.status, "value") else str(e.status)
    if status in ("Succeeded", "Failed", "Aborted"):
        break
    time.sleep(0.3)
states = client.workflows.executions(wf.id).states(eid).list(per_page=50)
outputs = {{s.name: client.workflows.executions(wf.id).states(eid).get_output(s.id).output for s in states}}
thought_ids = [t.id for s in states for t in (s.thoughts or [])]
thoughts = client.workflows.executions(wf.id).get_thoughts(eid, thought_ids)
transition = client.workflows.executions(wf.id).get_transition_to(eid, "merge")
executions = client.workflows.executions(wf.id).list()
print(json.dumps({{"created": created.get("name"), "listed": [w.name for w in listed], "description": got.description,
    "status": status, "states": [(s.name, s.status.value if hasattr(s.status, "value") else str(s.status)) for s in states],
    "outputs": outputs, "thoughts": [(t.author_name, t.content) for t in thoughts],
    "transition": [transition.from_state_id, transition.to_state_id],
    "executions": [x.execution_id for x in executions], "eid": eid, "wf": wf.id,
    "tokens": executions[0].tokens_usage.input_tokens if executions[0].tokens_usage else None}}))
""",
    )
    assert got["created"] == "colors" and "colors" in got["listed"] and got["description"] == "v2"
    assert got["status"] == "Succeeded"
    assert [s for s, _ in got["states"]] == ["list_colors", "describe", "describe", "describe", "merge"]
    assert {st for _, st in got["states"]} == {"Succeeded"}
    assert got["outputs"]["merge"] == '{"merged": "all colors"}'
    assert len(got["thoughts"]) == 5 and ["writer", "text about red"] in got["thoughts"]
    assert got["transition"] == ["describe", "merge"]
    assert got["executions"] == [got["eid"]] and got["tokens"] > 0
    with world.http() as c:
        export = c.get(f"/workflows/{got['wf']}/executions/{got['eid']}/export", params={"combined": "True"})
        assert export.status_code == 200
        report = zipfile.ZipFile(io.BytesIO(export.content)).read("execution.md").decode()
        assert "## merge" in report and "text about green" in report
    deleted = sdk_script(world, f"print(json.dumps(client.workflows.delete({got['wf']!r})))")
    assert deleted == {"message": "Workflow deleted successfully"}


def test_sdk_resumes_an_execution_paused_at_interrupt_before(world: World) -> None:
    wf = world.create("pausing", PAUSING)
    with world.http() as c:
        ex = c.post(f"/workflows/{wf}/executions", json={"user_input": "go"}).json()["execution_id"]
    assert world.wait(wf, ex, ("Interrupted", "Failed"))["overall_status"] == "Interrupted"
    with world.http() as c:
        r = c.put(f"/workflows/{wf}/executions/{ex}/output", json={"state_id": "describe", "output": "edited"})
        assert r.status_code == 200, r.text
    got = sdk_script(world, f"print(json.dumps(client.workflows.executions({wf!r}).resume({ex!r})))")
    assert got == {"message": "Workflow execution has been resumed"}
    assert world.wait(wf, ex, ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
    with world.http() as c:
        states = c.get(f"/workflows/{wf}/executions/{ex}/states", params={"per_page": 50}).json()["data"]
    assert [(s["name"], s["status"]) for s in states][-1] == ("merge", "Succeeded")


def test_mcp_workflows_server_starts_an_execution_and_abort_over_http_sticks(world: World) -> None:
    wf = world.create("slow", SLOW)
    bin_dir = client_venv("codemie-mcp-workflows", MCP_WORKFLOWS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        {
            "CODEMIE_API_DOMAIN": world.api,
            "CODEMIE_AUTH_SERVER_URL": "http://unused.invalid",
            "CODEMIE_AUTH_REALM_NAME": "unused",
            "CODEMIE_USERNAME": EMAIL,
            "CODEMIE_PASSWORD": PASSWORD,
        }
    )
    command = bin_dir / "codemie-mcp-workflows"

    async def call() -> Any:
        params = StdioServerParameters(command=str(command), args=[], env=env)
        async with Client(params) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("execute_workflow", {"workflow_id": wf, "user_input": "slowly"})
            return tools, result

    tools, result = anyio.run(call)
    assert "execute_workflow" in tools
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert wf in text and ("In Progress" in text or "Not Started" in text), text
    with world.http() as c:
        ex = c.get(f"/workflows/{wf}/executions").json()["data"][0]["execution_id"]
        _wait_for_state(world, wf, ex, "describe")
        r = c.put(f"/workflows/{wf}/executions/{ex}/abort")
        assert r.json() == {"message": "Workflow execution has been aborted"}
        time.sleep(1.5)
        assert c.get(f"/workflows/{wf}/executions/{ex}").json()["overall_status"] == "Aborted"
        states = c.get(f"/workflows/{wf}/executions/{ex}/states").json()["data"]
        assert states[-1]["status"] == "Aborted"
        assert c.put(f"/workflows/{wf}/executions/{ex}/abort").status_code == 400
    # The model call in flight was cut, not left to finish (the stand-in notices at its next write).
    deadline = time.monotonic() + 15
    while world.recorder.slow_aborted + world.recorder.slow_finished == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (world.recorder.slow_aborted, world.recorder.slow_finished) == (1, 0)


def test_bad_workflows_get_clear_codemie_errors(world: World) -> None:
    with world.http() as c:
        base = {"project": PROJECT, "name": "bad", "mode": "Sequential"}
        r = c.post(
            "/workflows",
            json={**base, "yaml_config": FLOW.replace("    task: Merge", "    tsk: x\n    task: Merge")},
            params={"error_format": "json"},
        )
        assert r.status_code == 400
        details = r.json()["error"]["details"]
        assert details[0]["key"] == "states[2].tsk" and details[0]["line"] == 19
        r = c.post("/workflows", json={**base, "yaml_config": FLOW.replace("'merged' in keys", "__import__('os')")})
        assert r.status_code == 400 and "only these functions" in r.json()["error"]["details"]
        bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
        )
        r = c.post("/workflows", json={**base, "yaml_config": bomb})
        assert r.status_code == 400 and "expands to more than" in r.json()["error"]["details"]
        r = c.post("/workflows", json={**base, "yaml_config": "states: []\n" + "#" * 5_000_000})
        assert r.status_code in (400, 413, 422)
        r = c.post("/workflows", json={**base, "mode": "Autonomous", "yaml_config": FLOW})
        assert r.status_code == 410
        assert c.get("/workflows/id/nope").status_code == 404
        assert c.get("/workflows/id/nope").json()["error"]["message"] == "Not found"


def test_kill_9_mid_execution_then_restart_runs_every_state_once(world: World, tmp_path: Path) -> None:
    with standin_llm() as (llm_url, recorder):
        server = _start(tmp_path / "home", llm_url)
        _add_user(server)
        w = World(server, recorder)
        wf = w.create("durable", SLOW)
        with w.http() as c:
            ex = c.post(f"/workflows/{wf}/executions", json={"user_input": "go"}).json()["execution_id"]
        _wait_for_state(w, wf, ex, "describe")  # the first state is committed, describe runs: kill now
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        server._close_pipe()
        server = _start(tmp_path / "home", llm_url, admin_key=server.admin_key)  # printed on first start only
        try:
            w.server = server
            w.api = f"{server.url}/code-assistant-api"
            assert w.wait(wf, ex, ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
            with w.http() as c:
                states = c.get(f"/workflows/{wf}/executions/{ex}/states", params={"per_page": 50}).json()["data"]
                transitions = c.get(f"/workflows/{wf}/executions/{ex}/transitions").json()["data"]
            assert [s["name"] for s in states] == ["list_colors", "describe", "merge"]
            assert [(t["from_state_id"], t["to_state_id"]) for t in transitions] == [
                ("list_colors", "describe"),
                ("describe", "merge"),
                ("merge", "end"),
            ]
            lister_calls = [r for r in recorder.requests if "List three colors" in json.dumps(r["messages"])]
            assert len(lister_calls) == 1  # the committed first state never ran again
        finally:
            server.stop()


def test_a_streamed_execution_sends_workflow_state_events_as_ndjson(world: World) -> None:
    wf = world.create("streamed", FLOW)
    with world.http() as c, c.stream("POST", f"/workflows/{wf}/executions", json={"user_input": "x", "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        assert r.headers["x-accel-buffering"] == "no"
        chunks = [json.loads(line) for line in r.iter_lines() if line.strip()]
    events = [(c["workflow_state"]["name"], c["workflow_state"]["event_type"]) for c in chunks if c.get("workflow_state")]
    assert events[0] == ("list_colors", "state_start") and ("merge", "state_finish") in events
    assert sum(1 for e in events if e == ("describe", "state_finish")) == 3
    assert chunks[-1]["last"] is True and chunks[-1]["overall_status"] == "Succeeded"
    assert chunks[-1]["generated"] == '{"merged": "all colors"}'


# -- listing, paging, deleting ---------------------------------------------------------------

QUICK = """\
tools:
  - id: sources
    tool: get_data_sources
states:
  - id: list
    tool_id: sources
    next: {state_id: end}
"""


def test_workflow_list_filters_pages_and_minimal_response(world: World) -> None:
    made = [world.create(name, QUICK) for name in ("paging-alpha-1", "paging-alpha-2", "paging-alpha-3", "paging-beta")]
    with world.http() as c:
        alpha = c.get("/workflows", params={"filters": json.dumps({"name": "paging-alpha"}), "per_page": 50}).json()
        assert sorted(w["name"] for w in alpha["data"]) == ["paging-alpha-1", "paging-alpha-2", "paging-alpha-3"]
        assert alpha["pagination"]["total"] == 3
        pages = [
            c.get("/workflows", params={"filters": json.dumps({"name": "paging-"}), "per_page": 2, "page": page}).json()
            for page in (0, 1, 2)
        ]
        assert [len(p["data"]) for p in pages] == [2, 2, 0]
        assert {p["pagination"]["total"] for p in pages} == {4} and pages[0]["pagination"]["pages"] == 2
        seen = [w["id"] for p in pages for w in p["data"]]
        assert sorted(seen) == sorted(made)  # every workflow once, newest first
        assert seen[0] == made[-1]
        full = c.get("/workflows", params={"filters": json.dumps({"name": "paging-beta"})}).json()["data"]
        assert full[0]["yaml_config"] == QUICK
        minimal = c.get(
            "/workflows", params={"filters": json.dumps({"name": "paging-beta"}), "minimal_response": "true"}
        ).json()["data"]
        assert [w["name"] for w in minimal] == ["paging-beta"] and "yaml_config" not in minimal[0]
        other = c.get("/workflows", params={"filters": json.dumps({"project": ["not-mine"], "name": "paging"})}).json()
        assert other["data"] == [] and other["pagination"]["total"] == 0
        bad = c.get("/workflows", params={"filters": "{not json"})
        assert bad.status_code == 400 and "filters must be a JSON object" in json.dumps(bad.json())
        assert c.get("/workflows", params={"per_page": 0}).status_code in (400, 422)


def test_deleting_one_execution_and_then_all_of_them(world: World) -> None:
    wf = world.create("deleting", QUICK)
    keep_wf = world.create("kept", QUICK)
    with world.http() as c:
        ids = [c.post(f"/workflows/{wf}/executions", json={"user_input": str(i)}).json()["execution_id"] for i in range(3)]
        kept = c.post(f"/workflows/{keep_wf}/executions", json={}).json()["execution_id"]
        for ex in ids:
            assert world.wait(wf, ex, ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
        listed = c.get(f"/workflows/{wf}/executions", params={"per_page": 2}).json()
        assert len(listed["data"]) == 2 and listed["pagination"]["total"] == 3
        r = c.delete(f"/workflows/{wf}/executions/{ids[0]}")
        assert r.status_code == 200 and r.json() == {"message": "Execution removed"}
        assert c.get(f"/workflows/{wf}/executions/{ids[0]}").status_code == 404
        assert c.get(f"/workflows/{wf}/executions/{ids[0]}/states").status_code == 404
        assert c.delete(f"/workflows/{wf}/executions/{ids[0]}").status_code == 404
        assert sorted(e["execution_id"] for e in c.get(f"/workflows/{wf}/executions").json()["data"]) == sorted(ids[1:])
        # An execution of another workflow is not reachable through this one.
        assert c.delete(f"/workflows/{wf}/executions/{kept}").status_code == 404
        r = c.delete(f"/workflows/{wf}/executions")
        assert r.status_code == 200 and r.json() == {"message": "Executions removed"}
        assert c.get(f"/workflows/{wf}/executions").json() == {
            "data": [],
            "pagination": {"page": 0, "per_page": 10, "total": 0, "pages": 0},
        }
        assert c.get(f"/workflows/{keep_wf}/executions/{kept}").status_code == 200  # the other workflow's stays


# -- propagate_headers over REST -------------------------------------------------------------

TICKET = """\
tools:
  - id: ticket
    tool: lookup_ticket
    tool_args: {ticket: ENG-1}
    mcp_server: {name: desk, config: {url: "URL"}}
states:
  - id: ticket
    tool_id: ticket
    INTERRUPT
    next: {state_id: end}
"""


def test_propagate_headers_forwards_the_callers_x_headers_to_an_mcp_server(world: World) -> None:
    with mcp_server() as (url, seen):
        wf = world.create("headers", TICKET.replace("URL", url).replace("    INTERRUPT\n", ""))
        caller = {"X-Tenant-Id": "acme-corp", "X-Api-Key": "ca_secret", "X-Auth-Token": "tok", "Cookie": "a=b"}
        with world.http() as c:
            ex = c.post(f"/workflows/{wf}/executions", json={"propagate_headers": True}, headers=caller).json()
        assert world.wait(wf, ex["execution_id"], ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
        assert seen.calls == ["lookup_ticket"] and seen.headers
        for got in seen.headers:
            assert got.get("x-tenant-id") == "acme-corp"
            assert "x-api-key" not in got and "x-auth-token" not in got and "cookie" not in got
            assert "authorization" not in got  # the caller's bearer token never leaves
        # Without the flag nothing of the caller's is forwarded.
        seen.headers.clear()
        with world.http() as c:
            plain = c.post(f"/workflows/{wf}/executions", json={"propagate_headers": False}, headers=caller).json()
        assert world.wait(wf, plain["execution_id"], ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
        assert seen.headers and all("x-tenant-id" not in got for got in seen.headers)
        # A resume forwards the headers of the resume call (a pause dropped the earlier ones).
        paused_wf = world.create("headers-paused", TICKET.replace("URL", url).replace("INTERRUPT", "interrupt_before: true"))
        seen.headers.clear()
        with world.http() as c:
            paused = c.post(f"/workflows/{paused_wf}/executions", json={"propagate_headers": True}, headers=caller).json()
            eid = paused["execution_id"]
            assert world.wait(paused_wf, eid, ("Interrupted", "Failed"))["overall_status"] == "Interrupted"
            r = c.put(
                f"/workflows/{paused_wf}/executions/{eid}/resume",
                params={"propagate_headers": "true"},
                json={},
                headers={"X-Tenant-Id": "resumed-tenant"},
            )
            assert r.status_code == 200, r.text
        assert world.wait(paused_wf, eid, ("Succeeded", "Failed"))["overall_status"] == "Succeeded"
        assert seen.headers and {got.get("x-tenant-id") for got in seen.headers} == {"resumed-tenant"}


# -- the CLI follows an execution the server runs --------------------------------------------

TALKER = """\
assistants:
  - id: talker
    system_prompt: 'REPLY_WITH: just some prose'
states:
  - id: talk
    assistant_id: talker
    task: Talk
    output_schema: '{"answer": "x"}'
    next: {state_id: end}
"""


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("repolens")
    return subprocess.run(
        [str(exe), *args], env=world.server.env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 60
    )


def test_cli_run_and_resume_follow_the_states_to_the_end(world: World, tmp_path: Path) -> None:
    (tmp_path / "pausing.yaml").write_text(PAUSING)
    (tmp_path / "talker.yaml").write_text(TALKER)
    assert _cli(world, "workflow", "create", "cli-pausing", "--file", str(tmp_path / "pausing.yaml")).returncode == 0
    assert _cli(world, "workflow", "create", "cli-talker", "--file", str(tmp_path / "talker.yaml")).returncode == 0
    run = _cli(world, "workflow", "run", "cli-pausing", "--input", "paint", "--follow", "--timeout", str(RUN_TIMEOUT_S))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    execution = lines[0].split()[1]
    assert lines[0] == f"execution {execution} of cli-pausing started"
    finished = [line for line in lines if line.endswith(": Succeeded") or line.endswith(": Interrupted")]
    assert finished == [
        "list_colors: Succeeded",
        "describe[1]: Succeeded",
        "describe[2]: Succeeded",
        "describe[3]: Succeeded",
        "merge: Interrupted",
        f"execution {execution}: Interrupted",
    ]
    assert lines[-1] == f"execution {execution}: Interrupted"
    resumed = _cli(
        world, "workflow", "resume", execution, "--input", "be brief", "--follow", "--timeout", str(RUN_TIMEOUT_S)
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert lines[0] == f"execution {execution} resumed"
    assert [line for line in lines if line.endswith("Succeeded")] == [
        "merge: Succeeded",
        f"execution {execution}: Succeeded",
    ]
    assert lines[-1] == '{"merged": "all colors"}'  # the execution's output
    # A failed execution: the state's error is printed, and the exit code says so.
    failed = _cli(world, "workflow", "run", "cli-talker", "--follow", "--timeout", str(RUN_TIMEOUT_S))
    assert failed.returncode == 1, failed.stdout
    assert "talk: Failed - the answer is not JSON" in failed.stdout
    assert failed.stdout.splitlines()[-1].endswith(": Failed")
    assert "state talk: the answer is not JSON" in failed.stderr and "just some prose" in failed.stderr
    # Following an unknown execution is a clear error, not a hang.
    missing = _cli(world, "workflow", "resume", "nope", "--follow")
    assert missing.returncode != 0 and "no execution 'nope'" in missing.stderr
