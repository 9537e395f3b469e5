"""Workflow executions as jobs of the job queue, and the runners the engine uses there.

``run_workflow_job`` is what the job child process runs for a job of kind ``workflow``
(``indexing/jobs.py`` looks the kind up by module name: the job layer sits below this one).

An assistant state is one full turn of the agent runtime (``agents/runtime.py``): the model may
call the assistant's code tools, the tools of its MCP servers and its sub-assistants, within the
runtime's budgets (steps, tokens, wall time); the turn's thoughts become the state's, nested
under one thought for the assistant, and its tokens are added to the execution's. A tool state
calls one of our code tools, or, with ``mcp_server``, one tool of that MCP server. Both forward
the execution's propagated headers to every MCP server they reach.

Abort: the engine sets ``cancel``; the turn (or the MCP call) runs as an asyncio task that is
cancelled within ``CANCEL_POLL_S``, which closes the model's HTTP stream and the MCP call in
flight; a code tool running in a worker thread is abandoned (it is read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from repolens.access.keys import Principal
from repolens.agents.model import Assistant, Definition, Viewer
from repolens.errors import ProviderError, RepolensError
from repolens.services import Services
from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.workflow_store import NewThought
from repolens.tools import call_tool
from repolens.workflows.config import WorkflowAssistant, WorkflowTool, mcp_server_of
from repolens.workflows.engine import AssistantCall, AssistantReply, Engine
from repolens.workflows.service import principal_of

log = logging.getLogger(__name__)

# The agent runtime and the MCP client (the ``mcp`` SDK: ~2 s of imports on a loaded two-core
# machine) are imported where an assistant state or an MCP tool state first needs them, so a
# job child running only code-tool states starts as fast as it did before.

# How often a running turn or MCP call looks at the engine's cancel flag.
CANCEL_POLL_S = 0.1
# The context store shown to an assistant is cut at this size: it is a summary of earlier
# states for the model, not their full outputs (those are in the state rows).
MAX_CONTEXT_CHARS = 20_000
AUTHOR_ASSISTANT = "Assistant"
T = TypeVar("T")


def run_cancellable(make: Callable[[], Awaitable[T]], cancel: threading.Event) -> T:
    """Run a coroutine in a fresh event loop of this thread; cancel it once ``cancel`` is set."""

    async def guarded() -> T:
        task = asyncio.ensure_future(make())
        while not task.done():
            if cancel.is_set():
                task.cancel()
                with contextlib.suppress(BaseException):  # the cancellation, or what it interrupted
                    await task
                raise RepolensError("aborted")
            await asyncio.wait({task}, timeout=CANCEL_POLL_S)
        return task.result()

    return asyncio.run(guarded())


def turn_text(call: AssistantCall) -> str:
    """The user message of an assistant state's turn: the task, the previous state's output,
    the user's input and the context store (an ``output_schema`` goes to the runtime, which
    tells the model the shape in its system message)."""
    parts = [f"Task: {call.task}"]
    if call.input:
        parts.append(f"Input:\n{call.input}")
    if call.user_input:
        parts.append(f"User input:\n{call.user_input}")
    if call.context:
        parts.append(f"Context:\n{json.dumps(call.context)[:MAX_CONTEXT_CHARS]}")
    text = "\n\n".join(parts)
    from repolens.agents.runtime import MAX_TURN_CHARS

    return text if len(text) <= MAX_TURN_CHARS else text[: MAX_TURN_CHARS - 40] + "\n[... input cut]"


def inline_assistant(spec: WorkflowAssistant, organization: str) -> Assistant:
    """An assistant defined inside the workflow's YAML."""
    from repolens.agents import assistants as registry

    definition = Definition(
        name=spec.name or spec.id,
        system_prompt=spec.system_prompt or "",
        model=spec.model or "",
        temperature=spec.temperature,
        tool_output_tokens=spec.limit_tool_output_tokens,
        context=tuple(spec.datasource_ids),
        tools=tuple(str(t["name"]) for t in spec.tools),
        mcp_servers=tuple(mcp_server_of(s) for s in spec.mcp_servers),
        shared=False,
    )
    return Assistant(
        id=f"workflow:{spec.id}",
        organization=organization,
        owner=registry.LOCAL_OWNER,
        owner_name="workflow",
        definition=definition,
        created_at=0.0,
        updated_at=0.0,
    )


def _thought(tree: Mapping[str, Any]) -> NewThought:
    """A thought of the runtime (``Thought.tree()``) as a stored workflow thought."""
    return NewThought(
        author_name=str(tree.get("author_name", "")),
        author_type=str(tree.get("author_type", "")),
        input_text=str(tree.get("input_text", "")),
        content=str(tree.get("message", "")),
        children=[_thought(c) for c in tree.get("children", ())],
    )


class AgentAssistantRunner:
    """An assistant state as one turn of the agent runtime (tools, MCP servers, sub-assistants,
    budgets), cancelled when the execution is aborted."""

    def __init__(self, services: Services, principal: Principal | None = None) -> None:
        self.services = services
        self.principal = principal

    def _viewer(self) -> Viewer:
        from repolens.agents import assistants as registry

        return registry.viewer_for(self.services.store, self.principal)

    def _load(self, assistant_id: str) -> Assistant:
        from repolens.agents import assistants as registry

        return registry.get(self.services.store, self._viewer(), self.principal, assistant_id)

    def assistant(self, spec: WorkflowAssistant) -> Assistant:
        """The stored assistant a state references, or the one the YAML defines inline."""
        if spec.assistant_id:
            return self._load(spec.assistant_id)
        return inline_assistant(spec, self._viewer().organization)

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply:
        from repolens.agents.runtime import TurnRequest, finished

        runtime = self.services.agents
        if runtime.llm is None:
            raise ProviderError("no LLM is configured (REPOLENS_LLM_PROVIDER): assistant states need one")
        assistant = self.assistant(call.assistant)
        request = TurnRequest(
            text=turn_text(call),
            remember=False,
            forwarded_headers=dict(call.headers),
            output_schema=call.output_schema,  # the engine parses and checks the answer
        )

        async def turn() -> Any:
            owner = self._viewer().owner
            events = runtime.run(self.principal, owner, assistant, request, load_assistant=self._load, admitted=True)
            return await finished(events)

        done = run_cancellable(turn, cancel)
        top = NewThought(
            author_name=assistant.name,
            author_type=AUTHOR_ASSISTANT,
            input_text=f"Task: {call.task}",
            content=done.answer,
            children=[_thought(t) for t in done.thoughts],
        )
        return AssistantReply(
            text=done.answer, thoughts=[top], input_tokens=done.prompt_tokens, output_tokens=done.completion_tokens
        )


class CodeToolRunner:
    """Tool states: one of our read-only code tools with the state's arguments, or (with
    ``mcp_server``) one tool of that MCP server, the execution's headers forwarded to it.
    ``input_key`` names the argument that receives the previous state's output."""

    def __init__(
        self, services: Services, headers: Mapping[str, str] | None = None, principal: Principal | None = None
    ) -> None:
        self.services = services
        self.headers = dict(headers or {})
        self.principal = principal

    def run(self, tool: WorkflowTool, args: dict[str, Any], input: str, cancel: threading.Event) -> str:
        merged = dict(args)
        if tool.input_key:
            merged[tool.input_key] = input
        if tool.mcp_server is not None:
            return self._mcp(tool, merged, cancel)
        result = call_tool(self.services, self.principal, tool.tool, merged)
        if "error" in result.obj:
            error = result.obj["error"]
            raise RepolensError(
                f"tool {tool.tool} failed: {error.get('message', error) if isinstance(error, dict) else error}"
            )
        return result.rendered

    def _mcp(self, tool: WorkflowTool, arguments: dict[str, Any], cancel: threading.Event) -> str:
        from repolens.agents import mcp

        assert tool.mcp_server is not None
        server = mcp_server_of(tool.mcp_server)
        stdio = self.services.settings.mcp_stdio_commands

        async def call() -> tuple[str, bool]:
            async with AsyncExitStack() as stack:
                found = await mcp.connect(stack, [server], forwarded=self.headers, stdio_commands=stdio)
                remote = next((t for t in found if t.name == tool.tool), None)
                if remote is None:
                    raise RepolensError(f"MCP server {server.name!r} has no tool {tool.tool!r}")
                return await mcp.call(remote, arguments)

        text, failed = run_cancellable(call, cancel)
        if failed:
            raise RepolensError(f"tool {tool.tool} on {server.name} failed: {text[:2000]}")
        return text


def run_workflow_job(db: Database, settings: Settings, job_public_id: str, still_mine: Any = None) -> str:
    """Run the execution of a workflow job; its status when the job ends."""
    ex = db.execution_for_job(job_public_id)
    if ex is None:
        raise RepolensError("the workflow execution was deleted")
    services = Services(settings)
    headers = db.execution_headers(ex.id)  # never logged
    principal = principal_of(db, ex.frontier.get("runs_as"))
    engine = Engine(
        db,
        AgentAssistantRunner(services, principal),
        CodeToolRunner(services, headers, principal),
        headers=headers,
        still_mine=still_mine,
    )
    try:
        return engine.run(ex.public_id)
    finally:
        services.close()
