"""The agent runtime (``repolens.agents``) on a real index, the stand-in model and a real MCP server.

The stand-in model (tests/llmserver.py) follows the script in the message (``CALL tool {...}``
lines), on both the OpenAI and the Anthropic API, so each test drives a whole tool-calling turn:
search then fetch and answer with citations, a failing tool, a runaway loop, a client that goes
away, and MCP tools with the caller's headers forwarded minus the blocklist.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import GEO_CODE, commit_tree
from llmserver import SLOW_CHUNKS, SLOW_DELAY_S, Recorder, standin_llm
from mcpserver import mcp_server
from repolens.agents import mcp
from repolens.agents.model import Assistant, Definition, McpServer, PromptVariable, validate
from repolens.agents.runtime import ThoughtChanged, Token, TurnEvent, TurnFinished, TurnRequest, TurnStarted
from repolens.chat.engine import RETRIEVAL_ONLY_HEADER
from repolens.errors import BodyTooLarge, Forbidden, InvalidInput, ProviderError
from repolens.indexing.pipeline import index_source
from repolens.services import Services, build_services
from repolens.settings import DEFAULT_FORWARDED_HEADERS_BLOCKLIST, Settings
from server import free_port

pytestmark = pytest.mark.backends

SEARCH_THEN_FETCH = (
    "How is the area of a circle computed?\n"
    'CALL semantic_search {"question": "circle area radius"}\n'
    'CALL fetch_artifacts {"identifiers": ["$IDENT"]}\n'
)


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[str, Recorder]]:
    with standin_llm() as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, backend: str, llm: tuple[str, Recorder]) -> Iterator[tuple[Services, Recorder]]:
    url, recorder = llm
    settings = Settings(
        home=tmp_path / "home",
        embedder="hash",
        database_url=backend,
        llm_provider="openai",
        llm_base_url=url,
        llm_model="standin-1",
        agent_max_steps=4,
    )
    services = build_services(settings)
    index_source(services.store, settings, str(commit_tree(tmp_path / "geo", GEO_CODE)), name="geo")
    try:
        yield services, recorder
    finally:
        services.close()


@contextlib.contextmanager
def reconfigured(services: Services, **changes: Any) -> Iterator[Services]:
    """Services over the same data with other settings (closed after)."""
    other = build_services(replace(services.settings, **changes))
    try:
        yield other
    finally:
        other.close()


def assistant(**changes: Any) -> Assistant:
    definition = validate(
        Definition(
            name="Geo helper",
            description="Answers about geo",
            system_prompt="Prefer short answers.",
            context=("geo",),
            tools=("semantic_search", "fetch_artifacts", "read_file"),
        )
    )
    return Assistant(
        id="a-1",
        organization="org",
        owner="local",
        owner_name="Local",
        definition=replace(definition, **changes),
        created_at=0.0,
        updated_at=0.0,
    )


async def collect(events: AsyncGenerator[TurnEvent, None]) -> list[TurnEvent]:
    async with contextlib.aclosing(events) as stream:
        return [event async for event in stream]


def run_turn(services: Services, who: Assistant, text: str, **request: Any) -> list[TurnEvent]:
    return anyio.run(collect, services.agents.run(None, "local", who, TurnRequest(text=text, **request)))


def finished_of(events: list[TurnEvent]) -> TurnFinished:
    last = events[-1]
    assert isinstance(last, TurnFinished), events
    return last


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_turn_searches_fetches_and_answers_with_citations(world: tuple[Services, Recorder], provider: str) -> None:
    services, recorder = world
    before = len(recorder.requests)
    if provider == "anthropic":
        url = services.settings.llm_base_url.removesuffix("/v1")  # Anthropic's paths start with /v1
        with reconfigured(services, llm_provider="anthropic", llm_base_url=url, llm_api_key="k") as anthropic:
            events = run_turn(anthropic, assistant(), SEARCH_THEN_FETCH)
    else:
        events = run_turn(services, assistant(), SEARCH_THEN_FETCH)
    assert isinstance(events[0], TurnStarted) and events[0].mode == "agent"
    done = finished_of(events)
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    assert tokens == done.answer and done.answer.startswith("Let me check.")
    # Two tool thoughts, each announced in progress and then completed with its output.
    assert [t["author_name"] for t in done.thoughts] == ["semantic_search", "fetch_artifacts"]
    assert all(t["author_type"] == "Tool" and not t["error"] and not t["in_progress"] for t in done.thoughts)
    assert json.loads(done.thoughts[0]["input_text"]) == {"question": "circle area radius"}
    assert "Circle" in done.thoughts[1]["message"] and "radius" in done.thoughts[1]["message"]
    updates = [e.thought for e in events if isinstance(e, ThoughtChanged)]
    assert [u["in_progress"] for u in updates] == [True, False, True, False]
    fetched = json.loads(done.thoughts[1]["input_text"])["identifiers"][0]
    assert fetched in done.answer and [c["identifier"] for c in done.citations] == [fetched]
    assert done.citations[0]["path"] == "geo/shapes.py" and done.citations[0]["startLine"]
    # Three model steps; tool results reached the model as delimited data.
    steps = recorder.requests[before:]
    assert len(steps) == 3
    last = json.dumps(steps[-1]["messages"])
    assert '<tool_result tool=\\"fetch_artifacts\\"' in last
    # Repository text inside a result is escaped: no tag in it can close the result element.
    tool_messages = [m["content"] for m in steps[-1]["messages"] if m["role"] == "tool"]
    if provider == "anthropic":
        tool_messages = [
            b["content"]
            for m in steps[-1]["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
    assert len(tool_messages) == 2
    assert all(m.count("</tool_result>") == 1 for m in tool_messages) and "&lt;artifact identifier=" in tool_messages[1]
    assert "Prefer short answers." in json.dumps(steps[0].get("system") or steps[0]["messages"][0])
    # The assistant's context was searched even though the model named no data source.
    assert recorder.tool_calls[-2:][0][0] == "semantic_search"
    # The turn is stored: the conversation, its two messages and the thoughts.
    conversation = services.store.get_conversation(done.conversation_id)
    assert conversation is not None
    assert [m.role for m in services.store.messages(conversation.id)] == ["user", "assistant"]
    turns = services.store.agent_turns(conversation.id)
    assert len(turns) == 1 and json.loads(turns[0].thoughts)[1]["author_name"] == "fetch_artifacts"
    assert services.store.conversation_assistants([conversation.id]) == {conversation.id: "a-1"}


def test_a_tool_error_is_a_thought_with_error_and_the_model_sees_it(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    text = 'Read it\nCALL read_file {"path": "../../etc/passwd", "data_source": "geo"}\n'
    done = finished_of(run_turn(services, assistant(), text))
    (thought,) = done.thoughts
    assert thought["author_name"] == "read_file" and thought["error"] is True and thought["message"]
    assert "passwd" not in thought["message"] or "outside" in thought["message"] or "invalid" in thought["message"]
    assert done.tool_failures and done.tool_failures[0].tool == "read_file"
    assert done.answer.endswith("The tool failed.")


def test_an_unknown_tool_name_from_the_model_is_an_error_result_not_a_crash(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    done = finished_of(run_turn(services, assistant(), 'Go\nCALL delete_repository {"name": "geo"}\n'))
    assert done.thoughts[0]["error"] is True and "no tool named" in done.thoughts[0]["message"]


def test_a_runaway_loop_is_stopped_by_the_step_budget(world: tuple[Services, Recorder]) -> None:
    services, recorder = world
    before = len(recorder.requests)
    done = finished_of(run_turn(services, assistant(), 'Loop\nLOOP_FOREVER\nCALL semantic_search {"question": "x"}\n'))
    assert len(recorder.requests) - before == services.settings.agent_max_steps == 4
    assert done.stopped == "steps"
    assert done.answer.endswith("[Stopped: the steps budget of this turn (4 model calls) ran out before a final answer.]")
    assert done.thoughts[-1]["author_type"] == "System" and done.thoughts[-1]["error"] is True
    assert sum(t["author_name"] == "semantic_search" for t in done.thoughts) == 4


def test_the_token_budget_stops_a_turn(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    with reconfigured(services, agent_max_tokens=50) as tight:
        done = finished_of(run_turn(tight, assistant(), SEARCH_THEN_FETCH))
    assert done.stopped == "tokens" and "50 tokens" in done.answer


def test_the_wall_time_budget_cuts_a_slow_model_off(world: tuple[Services, Recorder]) -> None:
    services, recorder = world
    aborted = recorder.slow_aborted
    with reconfigured(services, agent_max_seconds=1) as hurried:
        started = time.monotonic()
        done = finished_of(run_turn(hurried, assistant(), "Explain SLOWLY"))
        took = time.monotonic() - started
    note = "[Stopped: the time budget of this turn (1 s) ran out before a final answer.]"
    assert done.stopped == "time" and done.stop_note == note and done.answer.endswith(note)
    assert done.answer.startswith("word0 ")  # what the model said before the budget ran out is kept
    assert took < 1 + SLOW_CHUNKS * SLOW_DELAY_S / 2, took  # the whole slow answer takes 10 s
    assert done.thoughts[-1]["author_name"] == "Budget" and done.thoughts[-1]["error"] is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and recorder.slow_aborted == aborted:
        time.sleep(0.05)
    assert recorder.slow_aborted == aborted + 1, "the model kept generating after the budget ran out"
    # The turn is still recorded, with the note: the conversation shows why it ended there.
    conversation = services.store.get_conversation(done.conversation_id)
    assert conversation is not None and services.store.messages(conversation.id)[-1].content.endswith(note)


def test_a_client_that_goes_away_stops_the_model_and_stores_nothing(world: tuple[Services, Recorder]) -> None:
    services, recorder = world
    before = recorder.slow_aborted

    async def leave_early() -> str:
        events = services.agents.run(None, "local", assistant(), TurnRequest(text="Explain SLOWLY"))
        async with contextlib.aclosing(events) as stream:
            started = await anext(stream)
            assert isinstance(started, TurnStarted)
            got = 0
            async for event in stream:
                got += isinstance(event, Token)
                if got == 3:
                    break  # the client went away
            return started.conversation_id

    conversation_id = anyio.run(leave_early)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and recorder.slow_aborted == before:
        time.sleep(0.05)
    assert recorder.slow_aborted == before + 1, "the model kept generating for a client that left"
    assert services.store.get_conversation(conversation_id) is None


def test_no_model_answers_retrieval_only_labelled(tmp_path: Path, backend: str) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash", database_url=backend)
    services = build_services(settings)
    try:
        index_source(services.store, settings, str(commit_tree(tmp_path / "geo", GEO_CODE)), name="geo")
        events = run_turn(services, assistant(), "How is the area of a circle computed?")
        done = finished_of(events)
        assert done.mode == "retrieval-only" and done.answer.startswith(RETRIEVAL_ONLY_HEADER)
        assert "Circle" in done.answer and done.citations
        conversation = services.store.get_conversation(done.conversation_id)
        assert conversation is not None and len(services.store.messages(conversation.id)) == 2
    finally:
        services.close()


def test_bad_turns_are_refused_before_anything_is_written(world: tuple[Services, Recorder]) -> None:
    services, recorder = world
    before = len(recorder.requests)
    with pytest.raises(BodyTooLarge):
        run_turn(services, assistant(), "x" * 100_001)
    with pytest.raises(InvalidInput):
        run_turn(services, assistant(), "   ")
    with pytest.raises(InvalidInput):
        validate(Definition(name="x", tools=("delete_everything",)))
    assert len(recorder.requests) == before


def test_mcp_tools_get_the_callers_x_headers_minus_the_blocklist(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    with mcp_server() as (url, seen):
        who = assistant(tools=(), mcp_servers=(McpServer(name="desk", url=url, headers={"X-Static": "1"}),))
        caller = [
            ("X-Tenant-Id", "acme-corp"),
            ("X-Correlation-Id", "trace-123"),
            ("X-Api-Key", "ca_secret"),
            ("Authorization", "Bearer ca_secret"),
            ("Cookie", "session=1"),
            ("Accept", "application/json"),
        ]
        forwarded = mcp.forwardable_headers(caller, DEFAULT_FORWARDED_HEADERS_BLOCKLIST)
        text = 'Ticket?\nCALL lookup_ticket {"ticket": "ENG-1"}\n'
        done = finished_of(run_turn(services, who, text, forwarded_headers=forwarded))
    assert done.thoughts[0]["author_name"] == "lookup_ticket" and "geometry team" in done.thoughts[0]["message"]
    assert seen.calls == ["lookup_ticket"]
    assert seen.headers, "the MCP server saw no request"
    for headers in seen.headers:
        assert headers["x-tenant-id"] == "acme-corp" and headers["x-correlation-id"] == "trace-123"
        assert headers["x-static"] == "1"
        assert "x-api-key" not in headers and "authorization" not in headers and "cookie" not in headers


def test_forwarded_header_values_are_never_logged(
    world: tuple[Services, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG (ours, the MCP SDK's, its HTTP client's) over a turn whose MCP calls
    carry the caller's headers, one whose tool fails and one whose MCP server is not there."""
    services, _ = world
    caller = [("X-Tenant-Id", "tenant-9c2f-never-logged"), ("X-Correlation-Id", "corr-71ab-never-logged")]
    forwarded = mcp.forwardable_headers(caller, DEFAULT_FORWARDED_HEADERS_BLOCKLIST)
    caplog.set_level(logging.DEBUG)
    with mcp_server() as (url, seen):
        who = assistant(tools=(), mcp_servers=(McpServer(name="desk", url=url),))
        ok = finished_of(
            run_turn(services, who, 'Ticket?\nCALL lookup_ticket {"ticket": "ENG-1"}\n', forwarded_headers=forwarded)
        )
        failed = finished_of(run_turn(services, who, 'Go\nCALL fail_always {"reason": "x"}\n', forwarded_headers=forwarded))
    assert not ok.thoughts[0]["error"] and failed.thoughts[0]["error"]
    assert seen.headers and all(h["x-tenant-id"] == "tenant-9c2f-never-logged" for h in seen.headers)  # they travelled
    gone = assistant(tools=(), mcp_servers=(McpServer(name="gone", url=f"http://127.0.0.1:{free_port()}/mcp"),))
    with pytest.raises(ProviderError, match="could not be reached"):
        run_turn(services, gone, "Go", forwarded_headers=forwarded)
    records = caplog.records
    assert any(r.name.startswith("httpx") or r.name.startswith("mcp") for r in records), "the capture saw no client log"
    assert any("could not be reached" in r.getMessage() for r in records)
    everything = caplog.text + "".join(f"{r.args!r}{r.__dict__}" for r in records)
    for _, value in caller:
        assert value not in everything


def test_an_mcp_tool_error_and_a_stdio_command_off_the_allow_list(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    with mcp_server() as (url, _seen):
        who = assistant(tools=(), mcp_servers=(McpServer(name="desk", url=url),))
        done = finished_of(run_turn(services, who, 'Go\nCALL fail_always {"reason": "today"}\n'))
    assert done.thoughts[0]["error"] is True and "closed today" in done.thoughts[0]["message"]
    stdio = assistant(tools=(), mcp_servers=(McpServer(name="shell", command="bash", args=("-c", "echo")),))
    with pytest.raises(Forbidden, match="allow-list"):
        run_turn(services, stdio, "Go")


def test_a_client_that_goes_away_cancels_the_mcp_tool_in_flight(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    with mcp_server() as (url, seen):
        who = assistant(tools=(), mcp_servers=(McpServer(name="desk", url=url),))

        async def leave_during_the_tool() -> None:
            request = TurnRequest(text='Count\nCALL slow_count {"to": 200}\n')
            async with contextlib.aclosing(services.agents.run(None, "local", who, request)) as stream:
                async for event in stream:
                    if isinstance(event, ThoughtChanged) and event.thought["in_progress"]:
                        await anyio.sleep(0.3)  # the tool is running on the MCP server
                        break

        anyio.run(leave_during_the_tool)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen.slow_cancelled:
            time.sleep(0.05)
        assert seen.slow_cancelled == 1 and seen.slow_finished == 0


def test_prompt_variables_fill_the_system_prompt(world: tuple[Services, Recorder]) -> None:
    services, recorder = world
    who = assistant(
        system_prompt="Answer for the {{team}} team in {{ language }}; {{unknown}} stays.",
        prompt_variables=(
            PromptVariable("team", default_value="payments"),
            PromptVariable("language", default_value="English"),
        ),
    )
    run_turn(services, who, "Hi", prompt_values={"language": "French"})
    system = recorder.requests[-1]["messages"][0]["content"]
    assert "Answer for the payments team in French; {{unknown}} stays." in system


def test_sub_assistants_nest_their_thoughts(world: tuple[Services, Recorder]) -> None:
    services, _ = world
    helper = replace(assistant(), id="a-2", definition=replace(assistant().definition, name="Searcher"))
    lead = assistant(tools=(), sub_assistants=("a-2",))

    def load(assistant_id: str) -> Assistant:
        assert assistant_id == "a-2"
        return helper

    text = 'Delegate\nCALL ask_searcher {"question": "CALL semantic_search {\\"question\\": \\"circle\\"}"}\n'
    events = anyio.run(collect, services.agents.run(None, "local", lead, TurnRequest(text=text), load_assistant=load))
    done = finished_of(events)
    (agent,) = done.thoughts
    assert agent["author_type"] == "Agent" and agent["author_name"] == "Searcher"
    assert [c["author_name"] for c in agent["children"]] == ["semantic_search"]
    assert agent["children"][0]["parent_id"] == agent["id"]
