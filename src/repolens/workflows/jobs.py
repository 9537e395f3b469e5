"""Workflow executions as jobs of the job queue, and the runners the engine uses there.

``run_workflow_job`` is what the job child process runs for a job of kind ``workflow``
(``indexing/jobs.py`` looks the kind up by module name: the job layer sits below this one).

The assistant runner here is a single model call (system prompt, task, input, context) over the
configured LLM (``chat/llm.py``): the multi-step agent runtime (tool-calling turns, MCP tools)
plugs in through the same ``AssistantRunner`` protocol once it is on main. Tool states call our
own code tools (``repolens.tools``), read-only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from repolens.chat.llm import ChatMessage, Completion, load_llm
from repolens.errors import ProviderError, RepolensError
from repolens.services import Services
from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.workflow_store import NewThought
from repolens.tools import call_tool
from repolens.workflows.config import WorkflowTool
from repolens.workflows.engine import AssistantCall, AssistantReply, Engine

log = logging.getLogger(__name__)

# An assistant state's answer is bounded like a chat answer.
MAX_ANSWER_TOKENS = 4096


class LlmAssistantRunner:
    """One model call per assistant state, cancelled when the execution is aborted."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply:
        llm = load_llm(self.settings)
        if llm is None:
            raise ProviderError("no LLM is configured (REPOLENS_LLM_PROVIDER): assistant states need one")
        system = call.assistant.system_prompt or "You are a helpful assistant in a workflow."
        parts = [f"Task: {call.task}"]
        if call.input:
            parts.append(f"Input:\n{call.input}")
        if call.user_input:
            parts.append(f"User input:\n{call.user_input}")
        if call.context:
            parts.append(f"Context:\n{json.dumps(call.context)[:20000]}")
        if call.output_schema:
            parts.append(f"Answer with JSON only, shaped like: {call.output_schema}")
        messages = [ChatMessage("system", system), ChatMessage("user", "\n\n".join(parts))]
        done = Completion()

        async def collect() -> str:
            return "".join([delta async for delta in llm.stream(messages, max_tokens=MAX_ANSWER_TOKENS, done=done)])

        async def with_cancel() -> str:
            task = asyncio.ensure_future(collect())
            while not task.done():
                if cancel.is_set():
                    task.cancel()
                    raise RepolensError("aborted")
                await asyncio.wait({task}, timeout=0.1)
            return task.result()

        text = asyncio.run(with_cancel())
        thought = NewThought(
            author_name=call.assistant.name or call.assistant.id, author_type="Assistant", input_text=parts[0], content=text
        )
        return AssistantReply(
            text=text, thoughts=[thought], input_tokens=done.usage.prompt_tokens, output_tokens=done.usage.completion_tokens
        )


class CodeToolRunner:
    """Tool states run our read-only code tools with the state's arguments (``input_key`` names the
    argument that receives the previous state's output)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def run(self, tool: WorkflowTool, args: dict[str, Any], input: str, cancel: threading.Event) -> str:
        merged = dict(args)
        if tool.input_key:
            merged[tool.input_key] = input
        result = call_tool(self.services, None, tool.tool, merged)
        if "error" in result.obj:
            error = result.obj["error"]
            raise RepolensError(
                f"tool {tool.tool} failed: {error.get('message', error) if isinstance(error, dict) else error}"
            )
        return result.rendered


def run_workflow_job(db: Database, settings: Settings, job_public_id: str, still_mine: Any = None) -> str:
    """Run the execution of a workflow job; its status when the job ends."""
    ex = db.execution_for_job(job_public_id)
    if ex is None:
        raise RepolensError("the workflow execution was deleted")
    services = Services(settings)
    engine = Engine(db, LlmAssistantRunner(settings), CodeToolRunner(services), still_mine=still_mine)
    return engine.run(ex.public_id)
