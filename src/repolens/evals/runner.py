"""The eval job: for each (case, evaluator) of a run, the agent answers the case's input and a
judge model scores the answer.

``run_eval_job`` is what the job child process runs for a job of kind ``eval``. The agent's turn
runs the result's agent version (its stored definition, draft or published) through the agent
runtime (not recorded as a chat: an evaluation is not a conversation); its answer and tool calls
are kept with the result. The judge is one model call: the
evaluator's system prompt template with ``{input}``, ``{expected_output}``, ``{rubric}`` and
``{output}`` filled in, asked to answer JSON ``{"score": 0..1, "reason": "..."}``. A judge answer
that is not such JSON scores 0 with a reason saying so, so a run always ends with every score
set (the CLI polls until then).

Durability: a result is written once, while this job still owns it; a re-run of the job after
a crash runs what was left pending or running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from typing import Any

from repolens.access.keys import Principal
from repolens.agents import assistants as registry
from repolens.agents.runtime import TurnRequest, finished
from repolens.batches.answer import attachments_of, tool_calls_of
from repolens.batches.runner import principal_from
from repolens.chat.llm import ChatMessage, Completion, load_llm
from repolens.errors import NotFound, RepolensError
from repolens.services import Services
from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.eval_store import RESULT_DONE, RESULT_FAILED, ResultRecord

log = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 800  # a score and a few sentences of reason
JUDGE_INSTRUCTION = (
    "Judge the agent's answer against the rubric and the expected output. Reply with JSON only: "
    '{"score": <a number from 0 to 1>, "reason": "<why, in a few sentences>"}.'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)
_PLACEHOLDER = re.compile(r"\{(input|expected_output|rubric|output|actual_output)\}")


def render(template: str, values: dict[str, str]) -> str:
    """The judge's system prompt: known ``{name}`` placeholders filled, other braces kept."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def parse_verdict(text: str) -> tuple[float, str]:
    """(score clamped to 0..1, reason) from the judge's reply; 0 with a note when it is not JSON."""
    match = _JSON_OBJECT.search(text)
    try:
        doc = json.loads(match.group(0)) if match else None
        score = float(doc["score"]) if isinstance(doc, dict) else None
    except (ValueError, TypeError, KeyError):
        score = None
    if score is None or score != score:  # missing, or NaN
        return 0.0, f"the judge's reply was not a JSON verdict; scored 0. Reply: {text[:500]}"
    assert isinstance(doc, dict)
    return min(1.0, max(0.0, score)), str(doc.get("reason", ""))


def starter(db: Database, job_public_id: str) -> Principal:
    """Who started the run, as their key is now (``Forbidden`` once it is revoked)."""
    snapshot = db.eval_run_principal(job_public_id)
    if snapshot is None:
        raise NotFound("this run was started before runs recorded who started them: start it again")
    return principal_from(db, snapshot)


async def _judge(settings: Settings, model: str | None, system: str, answer_text: str) -> tuple[float, str, int, int]:
    chosen = dataclasses.replace(settings, llm_model=model) if model else settings
    llm = load_llm(chosen)
    if llm is None:
        raise RepolensError("no judge model is configured")
    done = Completion()
    messages = [ChatMessage("system", system), ChatMessage("user", f"{JUDGE_INSTRUCTION}\n\n{answer_text}")]
    reply = "".join([d async for d in llm.stream(messages, max_tokens=JUDGE_MAX_TOKENS, done=done)])
    score, reason = parse_verdict(reply)
    return score, reason, done.usage.prompt_tokens, done.usage.completion_tokens


async def _one(services: Services, job_id: str, result: ResultRecord, cache: dict[str, Any]) -> None:
    db = services.store
    if not await asyncio.to_thread(db.claim_result, result.id, job_id):
        return
    started = time.monotonic()
    case = cache["cases"][result.case_id]
    ev = cache["evaluators"][result.evaluator_id]
    rubric = next((r for e, r in cache["assigned"][result.case_id] if e == result.evaluator_id), "") or case.rubric
    try:
        # The agent runs as the key that started the run, so its tools see what that key sees.
        principal = await asyncio.to_thread(starter, db, job_id)
        viewer = registry.viewer_for(db, principal)
        # The version the run names, as that version stored it (a draft runs as well as the
        # published one): its prompt, model and tools answer the case.
        assistant = await asyncio.to_thread(registry.at_version, db, viewer, principal, case.agent_id, result.version_id)
        # The case's attached files go to the agent after its input, as a batch item's do (the
        # case's creator was checked as their owner when they were attached).
        files = await asyncio.to_thread(lambda: attachments_of(db, case.attachment_ids, owner=None))
        request = TurnRequest(text=case.input, remember=False, attachments=files)
        loader = registry.sub_loader(db, viewer, principal)
        turn = services.agents.run(principal, viewer.owner, assistant, request, load_assistant=loader)
        done = await finished(turn)
        calls = tool_calls_of(done.thoughts)
        values = {
            "input": case.input,
            "expected_output": case.expected_output,
            "rubric": rubric,
            "output": done.answer,
            "actual_output": done.answer,
        }
        system = render(ev.template, values)
        answer_text = (
            f"Input:\n{case.input}\n\nExpected output:\n{case.expected_output}\n\nRubric:\n{rubric}\n\n"
            f"Agent's answer:\n{done.answer}"
        )
        score, reason, judge_in, judge_out = await _judge(services.settings, ev.judge_model, system, answer_text)
        usage = {
            "agent_prompt_tokens": done.prompt_tokens,
            "agent_completion_tokens": done.completion_tokens,
            "judge_prompt_tokens": judge_in,
            "judge_completion_tokens": judge_out,
        }
        fields: dict[str, object] = {
            "state": RESULT_DONE,
            "score": score,
            "reason": reason,
            "output": done.answer,
            "tool_calls": calls,
            "usage": usage,
        }
    except RepolensError as exc:
        fields = {"state": RESULT_FAILED, "score": 0.0, "reason": f"the evaluation failed: {exc}"[:2000]}
    fields["elapsed_s"] = round(time.monotonic() - started, 3)
    await asyncio.to_thread(lambda: db.finish_result(result.id, job_id, **fields))


def run_eval_job(db: Database, settings: Settings, job_public_id: str, still_mine: Any = None) -> str:
    """Run every result of an eval job still to do; what it did, for the job row."""
    services = Services(settings)
    try:
        store = services.store
        todo = [r for r in store.results_of_job(job_public_id) if r.state in ("pending", "running")]
        case_ids = sorted({r.case_id for r in todo})
        cache: dict[str, Any] = {
            "cases": store.cases_by_row(case_ids),
            "evaluators": store.evaluators_by_row(sorted({r.evaluator_id for r in todo})),
            "assigned": store.case_evaluators(case_ids),
        }

        async def run_all() -> None:
            for r in todo:
                if callable(still_mine):
                    still_mine()
                if r.case_id in cache["cases"] and r.evaluator_id in cache["evaluators"]:
                    await _one(services, job_public_id, r, cache)

        asyncio.run(run_all())
    finally:
        services.close()
    return f"evaluated {len(todo)}"
