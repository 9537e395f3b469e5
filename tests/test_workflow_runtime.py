"""Workflow states on the real agent runtime and the real job runner.

An assistant state is a whole agent turn on the stand-in model (tests/llmserver.py follows the
``CALL tool {...}`` lines of its task): it reads a file of an indexed repository with a code
tool and asks a real MCP server (tests/mcpserver.py) for a ticket; a tool state calls the same
MCP server directly. The execution was started with propagated headers: the MCP server sees the
caller's ``X-*`` headers and none of the blocklisted ones, and the execution forgets them once it
ends. Abort cancels the MCP call in flight. The job runner gives workflows a slot of their own:
a long indexing job does not hold an execution back, nor a slow execution the indexing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GEO_CODE, commit_tree, write_tree
from llmserver import Recorder, standin_llm
from mcpserver import McpRecorder, mcp_server
from repolens import catalog
from repolens.access.keys import create_key, plan_for, principal_for_key
from repolens.agents.mcp import forwardable_headers
from repolens.indexing.jobs import JobRunner
from repolens.indexing.pipeline import index_source
from repolens.services import Services, build_services
from repolens.settings import DEFAULT_FORWARDED_HEADERS_BLOCKLIST, Settings
from repolens.storage.workflow_store import ABORTED, FAILED, SUCCEEDED
from repolens.workflows import service
from repolens.workflows.jobs import run_workflow_job

CALLER = [
    ("X-Tenant-Id", "acme-corp"),
    ("X-Correlation-Id", "trace-123"),
    ("X-Api-Key", "ca_secret"),
    ("X-Auth-Token", "tok_secret"),
    ("Authorization", "Bearer ca_secret"),
    ("Cookie", "session=1"),
    ("Accept", "application/json"),
]
AGENT_FLOW = """\
assistants:
  - id: helper
    name: Geo helper
    system_prompt: Prefer short answers.
    datasource_ids: [geo]
    tools: [{name: read_file}]
    mcp_servers:
      - name: desk
        config: {url: "URL", headers: {X-Static: "1"}}
tools:
  - id: ticket
    tool: lookup_ticket
    tool_args: {ticket: ENG-1}
    mcp_server: {name: desk, config: {url: "URL"}}
states:
  - id: investigate
    assistant_id: helper
    task: |
      Look at the shapes and at the ticket.
      CALL read_file {"path": "geo/shapes.py", "data_source": "geo", "start_line": 1, "end_line": 6}
      CALL lookup_ticket {"ticket": "ENG-1"}
    next: {state_id: ticket}
  - id: ticket
    tool_id: ticket
    next: {state_id: end}
"""
SLOW_MCP_FLOW = """\
assistants:
  - id: counter
    mcp_servers: [{name: desk, config: {url: "URL"}}]
states:
  - id: count
    assistant_id: counter
    task: |
      Count.
      CALL slow_count {"to": 400}
    next: {state_id: end}
"""
# A tool state that waits on the MCP server ~8 s: long enough to index a small repository meanwhile.
SLOW_TOOL_FLOW = """\
tools:
  - id: count
    tool: slow_count
    tool_args: {to: 160}
    mcp_server: {name: desk, config: {url: "URL"}}
states:
  - id: count
    tool_id: count
    next: {state_id: end}
"""
QUICK_FLOW = """\
tools:
  - id: sources
    tool: get_data_sources
states:
  - id: list
    tool_id: sources
    next: {state_id: end}
"""
N_BIG_FILES = 5000  # an indexing job of a few seconds (~0.5 ms a file, parsed in one process): several claim polls long


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[str, Recorder]]:
    with standin_llm() as running:
        yield running


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[str, McpRecorder]]:
    with mcp_server() as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, backend: str, llm: tuple[str, Recorder]) -> Iterator[Services]:
    url, _ = llm
    settings = Settings(
        home=tmp_path / "home",
        embedder="hash",
        database_url=backend,
        llm_provider="openai",
        llm_base_url=url,
        llm_model="standin-1",
        agent_max_steps=6,
        job_lease_s=4,
    )
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


def _workflow(services: Services, name: str, yaml_config: str, url: str) -> Any:
    return service.create_workflow(services.store, name=name, project="default", yaml_config=yaml_config.replace("URL", url))


@pytest.mark.backends
def test_an_assistant_state_calls_a_code_tool_and_an_mcp_tool_with_the_callers_headers(
    world: Services, desk: tuple[str, McpRecorder], tmp_path: Path
) -> None:
    url, seen = desk
    db = world.store
    index_source(db, world.settings, str(commit_tree(tmp_path / "geo", GEO_CODE)), name="geo")
    wf = _workflow(world, "agentic", AGENT_FLOW, url)
    headers = forwardable_headers(CALLER, DEFAULT_FORWARDED_HEADERS_BLOCKLIST)
    ex = service.start_execution(db, wf, user_input="go", created_by={}, headers=headers)
    assert db.execution_headers(ex.id) == {"x-tenant-id": "acme-corp", "x-correlation-id": "trace-123"}
    seen.headers.clear()
    seen.calls.clear()

    assert run_workflow_job(db, world.settings, ex.job_id) == SUCCEEDED

    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == SUCCEEDED, done
    assert done.input_tokens > 0 and done.output_tokens > 0
    states = {s.state_id: s for s in db.states(ex.id)}
    turn = states["investigate"]
    assert turn.status == SUCCEEDED and "geometry team" in (turn.output or "")
    assert "geometry team" in (done.output or "")  # the tool state's answer ends the execution
    thoughts = db.thoughts([turn.id])
    top = [t for t in thoughts if t.parent_id is None]
    assert [(t.author_name, t.author_type) for t in top] == [("Geo helper", "Assistant")]
    children = [(t.author_name, t.author_type) for t in thoughts if t.parent_id == top[0].public_id]
    assert children == [("read_file", "Tool"), ("lookup_ticket", "Tool")]
    read = next(t for t in thoughts if t.author_name == "read_file")
    assert "class Shape" in read.content  # the code tool read the indexed repository
    # The assistant's MCP call and the tool state's both reached the server, with the headers.
    assert seen.calls == ["lookup_ticket", "lookup_ticket"]
    assert seen.headers
    for got in seen.headers:
        assert got["x-tenant-id"] == "acme-corp" and got["x-correlation-id"] == "trace-123"
        assert "x-api-key" not in got and "x-auth-token" not in got
        assert "authorization" not in got and "cookie" not in got
    assert sum(1 for got in seen.headers if got.get("x-static") == "1") >= 1  # the server's own header too
    assert db.execution_headers(ex.id) == {}  # forgotten once the execution ended


@pytest.mark.backends
def test_abort_cancels_the_mcp_call_of_a_running_assistant_state(world: Services, desk: tuple[str, McpRecorder]) -> None:
    url, seen = desk
    db = world.store
    wf = _workflow(world, "slow", SLOW_MCP_FLOW, url)
    ex = service.start_execution(db, wf, user_input="go", created_by={}, headers={"x-tenant-id": "t"})
    cancelled_before, calls_before = seen.slow_cancelled, seen.calls.count("slow_count")
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(run_workflow_job(db, world.settings, ex.job_id)))
    thread.start()
    deadline = time.monotonic() + 30
    while seen.calls.count("slow_count") == calls_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.calls.count("slow_count") > calls_before, "the assistant never called the slow tool"
    started = time.monotonic()
    paused = db.get_execution(ex.public_id)
    assert paused is not None and service.abort(db, paused)
    thread.join(10)
    assert result == [ABORTED] and time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while seen.slow_cancelled == cancelled_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.slow_cancelled == cancelled_before + 1  # the MCP call in flight was cancelled, not finished
    assert db.get_execution(ex.public_id).status == ABORTED  # type: ignore[union-attr]
    assert db.execution_headers(ex.id) == {}


def _job(db: Any, job_id: str) -> Any:
    job = db.get_job(job_id)
    assert job is not None
    return job


def _wait(what: str, check: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


# One backend: the lanes are the same SQL on both (tests/test_store_contracts.py), and this test
# spends its time indexing.
def test_indexing_and_workflows_do_not_starve_each_other(
    world: Services, desk: tuple[str, McpRecorder], tmp_path: Path
) -> None:
    url, _ = desk
    db = world.store
    big = tmp_path / "big"
    write_tree(
        big,
        {
            f"m{i // 100:02d}/f{i:05d}.py": f"def compute_{i}(x: int) -> int:\n    return x * {i}\n"
            for i in range(N_BIG_FILES)
        },
    )
    commit_tree(big, {}, message="big")
    small = commit_tree(tmp_path / "small", {"a.py": "def alpha() -> int:\n    return 1\n"})
    runner = JobRunner(db, world.settings)
    runner.start()
    try:
        # A long indexing job first; an execution queued behind it starts while it runs.
        _, index_job = catalog.queue_location(db, world.settings, str(big), name="big")
        _wait("the indexing job to start", lambda: _job(db, index_job.public_id).state == "Processing")
        quick = service.start_execution(db, _workflow(world, "quick", QUICK_FLOW, url), user_input="", created_by={})
        _wait("the quick execution", lambda: db.get_execution(quick.public_id).status == SUCCEEDED)  # type: ignore[union-attr]
        _wait("the big indexing job", lambda: _job(db, index_job.public_id).state == "Ready", timeout=180)
        # Claimed while the indexing ran (one shared slot would have claimed it after). On SQLite its
        # states may still wait for the indexing's write transactions: one writer at a time there.
        indexed, ran = _job(db, index_job.public_id), _job(db, quick.job_id)
        assert ran.started_at < indexed.finished_at, "the execution waited for the indexing job"
        assert _job(db, quick.job_id).phase == SUCCEEDED  # the job row records the execution's outcome
        # A slow execution first; an indexing job queued behind it runs while the execution waits.
        slow = service.start_execution(db, _workflow(world, "slow-tool", SLOW_TOOL_FLOW, url), user_input="", created_by={})
        _wait("the slow execution to start", lambda: bool(db.states(slow.id)))
        _, small_job = catalog.queue_location(db, world.settings, str(small), name="small")
        _wait("the small indexing job", lambda: _job(db, small_job.public_id).state == "Ready")
        _wait("the slow execution", lambda: db.get_execution(slow.public_id).status == SUCCEEDED)  # type: ignore[union-attr]
        counted = db.states(slow.id)[0]
        assert counted.completed_at is not None and "counted to 160" in (counted.output or "")
        assert _job(db, small_job.public_id).finished_at < counted.completed_at, "the indexing waited for the execution"
    finally:
        runner.stop()


READ_GEO_FLOW = """\
tools:
  - id: read
    tool: read_file
    tool_args: {data_source: geo, path: geo/shapes.py}
states:
  - id: read
    tool_id: read
    next: {state_id: end}
"""


@pytest.mark.backends
def test_an_execution_runs_as_the_key_that_started_it(
    world: Services, desk: tuple[str, McpRecorder], tmp_path: Path
) -> None:
    url, _ = desk
    db = world.store
    index_source(db, world.settings, str(commit_tree(tmp_path / "geo", GEO_CODE)), name="geo")
    index_source(
        db,
        world.settings,
        str(commit_tree(tmp_path / "small", {"a.py": "def alpha() -> int:\n    return 1\n"})),
        name="small",
    )
    minted = create_key(db, name="small only", plan=plan_for("pro"), scopes=("small",))
    scoped = principal_for_key(db, minted.row.key_id)
    listed = service.start_execution(
        db, _workflow(world, "sources", QUICK_FLOW, url), user_input="", created_by={}, runs_as=scoped
    )
    assert run_workflow_job(db, world.settings, listed.job_id) == SUCCEEDED
    output = db.get_execution(listed.public_id).output or ""  # type: ignore[union-attr]
    assert 'name="small"' in output and 'name="geo"' not in output
    read = service.start_execution(
        db, _workflow(world, "read", READ_GEO_FLOW, url), user_input="", created_by={}, runs_as=scoped
    )
    assert run_workflow_job(db, world.settings, read.job_id) == FAILED
    failed = db.get_state(read.id, "read")
    assert failed is not None and failed.status == FAILED and "geo" in failed.error, failed
    # The same workflow started by the local user (no key) reads it.
    local = service.start_execution(db, _workflow(world, "read-local", READ_GEO_FLOW, url), user_input="", created_by={})
    assert run_workflow_job(db, world.settings, local.job_id) == SUCCEEDED


# The scenario on the real runtime: every assistant state is a turn of the agent runtime
# on the stand-in model (scripted with ``REPLY_WITH:``), the tool state a call to the real MCP server.
COLORS_FLOW = """\
assistants:
  - id: lister
    system_prompt: 'REPLY_WITH: {"colors": ["red", "green", "blue"]}'
  - id: writer
    system_prompt: 'REPLY_WITH: text about {input}'
  - id: merger
    system_prompt: 'REPLY_WITH: MERGED'
tools:
  - id: ticket
    tool: TOOL
    tool_args: {ticket: ENG-1}
    mcp_server: {name: desk, config: {url: "URL"}}
states:
  - id: list_colors
    assistant_id: lister
    task: List three colors
    output_schema: '{"colors": ["orange"]}'
    next: {state_id: describe, iter_key: colors}
  - id: describe
    assistant_id: writer
    task: Describe a color
    next: {state_id: merge}
  - id: merge
    assistant_id: merger
    task: Merge the texts
    retry_policy: {max_attempts: 2, initial_interval: 0.01}
    output_schema: '{"type": "object", "properties": {"missing": {"type": "string"}}, "required": ["missing"]}'
    next:
      condition: {expression: "missing == 'blue'", then: ticket, otherwise: end}
  - id: ticket
    tool_id: ticket
    retry_policy: {max_attempts: 3, initial_interval: 0.01, backoff_factor: 1}
    next: {state_id: end}
"""


def _colors(merged: str, tool: str = "lookup_ticket") -> str:
    return COLORS_FLOW.replace("MERGED", merged).replace("TOOL", tool)


def _merge_requests(recorder: Recorder) -> int:
    return sum(1 for r in recorder.requests if "Task: Merge the texts" in str(r["messages"][-1]["content"]))


def test_fan_out_condition_and_tool_state_on_the_real_runtime(
    world: Services, llm: tuple[str, Recorder], desk: tuple[str, McpRecorder]
) -> None:
    _, recorder = llm
    url, seen = desk
    db = world.store
    wf = _workflow(world, "colors", _colors('{"missing": "blue"}'), url)
    ex = service.start_execution(db, wf, user_input="paint", created_by={})
    calls_before = seen.calls.count("lookup_ticket")
    assert run_workflow_job(db, world.settings, ex.job_id) == SUCCEEDED
    states = db.states(ex.id)
    assert [(s.state_id, s.iteration, s.status) for s in states] == [
        ("list_colors", 0, SUCCEEDED),
        ("describe", 1, SUCCEEDED),
        ("describe", 2, SUCCEEDED),
        ("describe", 3, SUCCEEDED),
        ("merge", 0, SUCCEEDED),
        ("ticket", 0, SUCCEEDED),
    ]
    assert [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)] == [
        ("list_colors", "describe"),
        ("describe", "merge"),
        ("merge", "ticket"),
        ("ticket", "end"),
    ]
    assert [s.output for s in states[1:4]] == ["text about red", "text about green", "text about blue"]
    assert states[4].output == '{"missing": "blue"}'  # parsed, validated, handed to the condition
    assert seen.calls.count("lookup_ticket") == calls_before + 1
    done = db.get_execution(ex.public_id)
    assert done is not None and "geometry team" in (done.output or "") and done.input_tokens > 0
    # The schema went to the model as instructions (the runtime's system message), not only as a hint.
    merge_request = next(r for r in recorder.requests if "Task: Merge the texts" in str(r["messages"][-1]["content"]))
    assert '"required": ["missing"]' in str(merge_request["messages"][0]["content"])
    # The other branch of the condition ends the execution at merge.
    other = service.start_execution(
        db, _workflow(world, "colors-ok", _colors('{"missing": "none"}'), url), user_input="", created_by={}
    )
    assert run_workflow_job(db, world.settings, other.job_id) == SUCCEEDED
    assert [t.to_state_id for t in db.transitions(other.id)][-2:] == ["merge", "end"]


def test_an_answer_that_misses_its_output_schema_is_retried_then_fails_the_state(
    world: Services, llm: tuple[str, Recorder], desk: tuple[str, McpRecorder]
) -> None:
    _, recorder = llm
    url, _ = desk
    db = world.store
    ex = service.start_execution(
        db, _workflow(world, "prose", _colors("All colors are fine."), url), user_input="", created_by={}
    )
    before = _merge_requests(recorder)
    assert run_workflow_job(db, world.settings, ex.job_id) == FAILED
    assert _merge_requests(recorder) == before + 2  # max_attempts: 2
    merge = db.get_state(ex.id, "merge")
    assert merge is not None and merge.status == FAILED
    assert "the answer is not JSON" in merge.error and "All colors are fine." in merge.error
    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == FAILED and done.error.startswith("state merge:")
    assert db.get_state(ex.id, "ticket") is None  # nothing ran after the failed state


def test_a_failing_tool_is_retried_then_fails_with_the_error_in_its_state_on_the_real_runtime(
    world: Services, desk: tuple[str, McpRecorder]
) -> None:
    url, seen = desk
    db = world.store
    wf = _workflow(world, "closed", _colors('{"missing": "blue"}', tool="fail_always"), url)
    ex = service.start_execution(db, wf, user_input="", created_by={})
    before = seen.calls.count("fail_always")
    assert run_workflow_job(db, world.settings, ex.job_id) == FAILED
    assert seen.calls.count("fail_always") == before + 3  # max_attempts: 3
    ticket = db.get_state(ex.id, "ticket")
    assert ticket is not None and ticket.status == FAILED and ticket.runs == 1
    assert "fail_always" in ticket.error and "the ticket desk is closed" in ticket.error
    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == FAILED and "the ticket desk is closed" in done.error
    assert [s.status for s in db.states(ex.id)][:-1] == [SUCCEEDED] * 5  # the states before it stand
