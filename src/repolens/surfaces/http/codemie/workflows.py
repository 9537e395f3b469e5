"""CodeMie's workflows and workflow executions (``/v1/workflows...``) over ``repolens.workflows``.

Shapes follow what ``codemie-sdk-python`` 0.1.703 and ``codemie-mcp-workflows`` parse
(specs/clients.md §3.3, §4.3): lists answer ``{"data": [...], "pagination": {...}}`` (the SDK
unwraps ``data``), an execution is ``{id, execution_id, workflow_id, overall_status, date,
prompt, update_date, created_by{...}, tokens_usage{...}}``, statuses are CodeMie's strings.
A workflow belongs to a project; callers see the workflows of their projects only, and another
project's workflow is a 404 (its existence is not shown).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from repolens.access.identity import projects_of, require_project
from repolens.access.keys import Principal
from repolens.agents.mcp import forwardable_headers
from repolens.errors import InvalidInput, NotFound
from repolens.storage.base import Database
from repolens.storage.workflow_store import (
    ABORTED,
    FINISHED,
    INTERRUPTED,
    ExecutionRecord,
    StateRecord,
    ThoughtRecord,
    TransitionRecord,
    WorkflowRecord,
)
from repolens.surfaces.http.codemie.errors import codemie_error_body
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso
from repolens.workflows import service
from repolens.workflows.config import ConfigError

router = APIRouter()

MAX_PER_PAGE = 1_000
MAX_ID_CHARS = 200
MAX_FILTERS_CHARS = 2_000
# ``filter_by_user`` filters in Python (the author is in a JSON column): over this many of the
# caller's projects' workflows, the oldest are not looked at.
MAX_FILTERED = 10_000
MAX_THOUGHT_IDS = 1_000
# How often a streamed execution looks for new states (the engine runs in the job process).
STREAM_POLL_S = 0.3
STREAM_MAX_S = 3_600  # a stream longer than an hour is cut; the execution goes on
IdPath = Annotated[str, Path(max_length=MAX_ID_CHARS)]
Page = Annotated[int, Query(ge=0, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]
MAX_YAML_FIELD = 6_000_000  # larger bodies are cut by pydantic; the parser's own limit (1 MB) speaks first


class WorkflowIn(BaseModel):
    """``CreateWorkflowRequest`` / ``WorkflowUpdateRequest`` (nulls accepted where the SDK sends them)."""

    model_config = ConfigDict(extra="ignore")

    project: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    yaml_config: str = Field(max_length=MAX_YAML_FIELD)
    mode: str | None = Field(None, max_length=50)
    shared: bool | None = None
    icon_url: str | None = Field(None, max_length=2_000)
    categories: list[str] | None = Field(None, max_length=50)


class ExecutionIn(BaseModel):
    """``CreateWorkflowExecutionRequest``: the SDK always sends every key, nulls included."""

    model_config = ConfigDict(extra="ignore")

    user_input: Any = ""
    file_name: str | None = None
    file_names: list[str] | None = Field(None, max_length=20)
    conversation_id: str | None = None
    session_id: str | None = None
    propagate_headers: bool = False
    stream: bool = False
    tags: list[str] | None = None
    disable_cache: bool = False
    delete_on_completion: bool = False


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_input: str | None = Field(None, max_length=100_000)
    file_names: list[str] | None = None


class OutputIn(BaseModel):
    output: str = Field(max_length=1_000_000)
    state_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)


def _workflow_json(wf: WorkflowRecord, *, minimal: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": wf.public_id,
        "name": wf.name,
        "display_name": wf.name,
        "description": wf.description,
        "project": wf.project,
        "mode": wf.mode,
        "shared": wf.shared,
        "icon_url": wf.icon_url,
        "categories": list(wf.categories),
        "date": iso(wf.created_at),
        "update_date": iso(wf.updated_at),
        "created_by": wf.created_by or None,
        "required_variables": [],
    }
    if not minimal:
        out["yaml_config"] = wf.yaml_config
    return out


def _tokens(ex: ExecutionRecord) -> dict[str, Any]:
    return {
        "input_tokens": ex.input_tokens,
        "output_tokens": ex.output_tokens,
        "cached_tokens": 0,
        "money_spent": 0.0,  # this server does not price models
        "cached_tokens_money_spent": 0.0,
        "cached_tokens_creation_money_spent": 0.0,
    }


def _execution_json(ex: ExecutionRecord, wf: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": ex.public_id,
        "execution_id": ex.public_id,
        "workflow_id": wf.public_id,
        "overall_status": ex.status,
        "output": ex.output,
        "error": ex.error or None,
        "name": wf.name,
        "prompt": ex.prompt,
        "file_names": [],
        "created_by": ex.created_by or {"id": "", "user_id": "", "username": "", "name": ""},
        "tokens_usage": _tokens(ex),
        "project": ex.project,
        "date": iso(ex.created_at),
        "update_date": iso(ex.updated_at),
        "history": [],
        "conversation_id": None,
    }


def _thought_short(t: ThoughtRecord, state: StateRecord) -> dict[str, Any]:
    return {
        "id": t.public_id,
        "execution_state_id": state.public_id,
        "parent_id": t.parent_id,
        "author_name": t.author_name,
        "author_type": t.author_type,
        "date": iso(t.created_at),
    }


def _state_json(state: StateRecord, thoughts: list[dict[str, Any]], ex: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": state.public_id,
        "execution_id": ex.public_id,
        "name": state.state_id,
        "state_id": state.state_id,
        "task": state.task,
        "status": state.status,
        "started_at": iso(state.started_at),
        "completed_at": iso(state.completed_at),
        "preceding_state_ids": list(state.preceding),
        "iteration_number": state.iteration,
        "output": state.output,
        "error": state.error or None,
        "thoughts": thoughts,
    }


def _transition_json(t: TransitionRecord, ex: ExecutionRecord) -> dict[str, Any]:
    ctx = t.context
    return {
        "id": t.public_id,
        "execution_id": ex.public_id,
        "from_state_id": t.from_state_id,
        "to_state_id": t.to_state_id,
        "workflow_context": {
            "context_store": ctx.get("context_store", {}),
            "next": [t.to_state_id],
            "messages": [],
            "user_input": ctx.get("user_input", ""),
            "final_summary": [],
        },
        "date": iso(t.created_at),
    }


def _page(items: list[dict[str, Any]], page: int, per_page: int, total: int | None = None) -> dict[str, Any]:
    total = len(items) if total is None else total
    return {
        "data": items,
        "pagination": {"page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page)},
    }


def _forwarded(request: Request, blocklist: tuple[str, ...]) -> dict[str, str]:
    """The caller's ``X-*`` headers an execution forwards to MCP servers (``propagate_headers``)."""
    return forwardable_headers(request.headers.items(), blocklist)


def _visible(db: Database, principal: Principal, workflow_id: str) -> WorkflowRecord:
    return service.visible_workflow(db, principal, workflow_id)


def _config_error(exc: ConfigError, error_format: str | None) -> JSONResponse:
    details: str | list[dict[str, Any]] = exc.details if error_format == "json" and exc.details else str(exc)
    return JSONResponse(codemie_error_body(400, details, message="Invalid workflow configuration"), status_code=400)


def _autonomous() -> JSONResponse:
    body = codemie_error_body(410, "Autonomous workflows are no longer supported; use mode Sequential", message="Gone")
    return JSONResponse(body, status_code=410)


# -- workflows -----------------------------------------------------------------------------


@router.get("/workflows", summary="Workflows of the caller's projects")
def list_workflows(
    services: ServicesDep,
    principal: PrincipalDep,
    page: Page = 0,
    per_page: PerPage = 10,
    project: Annotated[list[str] | None, Query(max_length=50)] = None,
    filters: Annotated[str | None, Query(max_length=MAX_FILTERS_CHARS)] = None,
    minimal_response: bool = False,
    filter_by_user: bool = False,
) -> dict[str, Any]:
    db = services.store
    mine = projects_of(db, principal)
    wanted = [p for p in (project or []) if p in mine] if project else list(mine)
    name: str | None = None
    if filters:
        try:
            parsed = json.loads(filters)
        except ValueError:
            raise InvalidInput('filters must be a JSON object, e.g. {"project": ["demo"]}') from None
        if not isinstance(parsed, dict):
            raise InvalidInput("filters must be a JSON object")
        if "project" in parsed:
            chosen = parsed["project"] if isinstance(parsed["project"], list) else [parsed["project"]]
            wanted = [p for p in wanted if p in chosen]
        raw = parsed.get("name") or parsed.get("search")
        name = str(raw) if raw else None
    if not wanted:
        return _page([], page, per_page, 0)
    if filter_by_user:
        # The author is inside a JSON column: filter the caller's projects' workflows here.
        me = service.creator(principal)["id"]
        every = db.list_workflows(projects=wanted, name=name, offset=0, limit=MAX_FILTERED)
        mine_only = [w for w in every if w.created_by.get("id") == me]
        rows, total = mine_only[page * per_page : (page + 1) * per_page], len(mine_only)
    else:
        rows = db.list_workflows(projects=wanted, name=name, offset=page * per_page, limit=per_page)
        total = db.count_workflows(projects=wanted, name=name)
    return _page([_workflow_json(w, minimal=minimal_response) for w in rows], page, per_page, total)


@router.get("/workflows/prebuilt", summary="Prebuilt workflows (none on this server)")
def prebuilt(principal: PrincipalDep) -> list[dict[str, Any]]:
    return []


@router.get("/workflows/id/{workflow_id}", summary="One workflow")
def get_workflow(workflow_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return _workflow_json(_visible(services.store, principal, workflow_id))


@router.post("/workflows", summary="Create a workflow from CodeMie YAML", response_model=None)
def create_workflow(
    body: WorkflowIn, services: ServicesDep, principal: PrincipalDep, error_format: str | None = None
) -> dict[str, Any] | JSONResponse:
    db = services.store
    require_project(db, principal, body.project)
    if body.mode == "Autonomous":
        return _autonomous()
    try:
        wf = service.create_workflow(
            db,
            name=body.name,
            project=body.project,
            yaml_config=body.yaml_config,
            description=body.description or "",
            mode=body.mode,
            shared=bool(body.shared),
            icon_url=body.icon_url,
            categories=tuple(body.categories or ()),
            created_by=service.creator(principal),
        )
    except ConfigError as exc:
        return _config_error(exc, error_format)
    return {"message": "Workflow created successfully", "data": _workflow_json(wf)}


@router.put("/workflows/{workflow_id}", summary="Update a workflow", response_model=None)
def update_workflow(
    workflow_id: IdPath, body: WorkflowIn, services: ServicesDep, principal: PrincipalDep, error_format: str | None = None
) -> dict[str, Any] | JSONResponse:
    db = services.store
    wf = _visible(db, principal, workflow_id)
    require_project(db, principal, body.project)
    if body.mode == "Autonomous":
        return _autonomous()
    fields: dict[str, Any] = {"project": body.project, "name": body.name, "yaml_config": body.yaml_config}
    if body.description is not None:
        fields["description"] = body.description
    for key in ("mode", "shared", "icon_url"):
        if getattr(body, key) is not None:
            fields[key] = getattr(body, key)
    if body.categories is not None:
        fields["categories"] = tuple(body.categories)
    try:
        fresh = service.update_workflow(db, wf, **fields)
    except ConfigError as exc:
        return _config_error(exc, error_format)
    return {"message": "Workflow updated successfully", "data": _workflow_json(fresh)}


@router.delete("/workflows/{workflow_id}", summary="Delete a workflow and its executions")
def delete_workflow(workflow_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    wf = _visible(db, principal, workflow_id)
    db.delete_workflow(wf.id)
    return {"message": "Workflow deleted successfully"}


# -- executions ----------------------------------------------------------------------------


def _execution(
    db: Database, principal: Principal, workflow_id: str, execution_id: str
) -> tuple[WorkflowRecord, ExecutionRecord]:
    wf = _visible(db, principal, workflow_id)
    return wf, service.get_execution(db, wf, execution_id)


def _state_event(state: StateRecord, event_type: str) -> dict[str, Any]:
    return {
        "id": state.public_id,
        "name": state.state_id,
        "task": state.task,
        "status": state.status,
        "event_type": event_type,
        "started_at": iso(state.started_at),
        "completed_at": iso(state.completed_at),
    }


async def _stream(db: Database, wf: WorkflowRecord, execution_id: str, request: Request) -> AsyncIterator[bytes]:
    """NDJSON chunks (``StreamedGenerationResult``) with ``workflow_state`` events, polled from the
    database: the engine runs in the job process, so this works with any number of workers."""
    seen: dict[str, str] = {}
    started = time.monotonic()
    started_ids: set[str] = set()
    while time.monotonic() - started < STREAM_MAX_S:
        if await request.is_disconnected():
            return
        ex = await asyncio.to_thread(db.get_execution, execution_id)
        if ex is None:
            return
        for state in await asyncio.to_thread(db.states, ex.id):
            if seen.get(state.public_id) == state.status:
                continue
            seen[state.public_id] = state.status
            events = []
            if state.public_id not in started_ids:
                started_ids.add(state.public_id)
                events.append("state_start" if state.status != INTERRUPTED else "state_interrupted")
            if state.status in FINISHED:
                events.append("state_finish")
            for event in events:
                chunk = {
                    "generated_chunk": None,
                    "generated": None,
                    "thought": None,
                    "last": False,
                    "time_elapsed": None,
                    "workflow_execution_id": ex.public_id,
                    "workflow_state": _state_event(state, event),
                }
                yield (json.dumps(chunk) + "\n").encode()
        if ex.status in (*FINISHED, INTERRUPTED):
            last = {
                "generated_chunk": None,
                "generated": ex.output or ex.error or ex.status,
                "thought": None,
                "last": True,
                "time_elapsed": round(time.monotonic() - started, 3),
                "workflow_execution_id": ex.public_id,
                "overall_status": ex.status,
            }
            yield (json.dumps(last) + "\n").encode()
            return
        await asyncio.sleep(STREAM_POLL_S)


def _streaming(db: Database, wf: WorkflowRecord, ex: ExecutionRecord, request: Request) -> StreamingResponse:
    return StreamingResponse(
        _stream(db, wf, ex.public_id, request),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/workflows/{workflow_id}/executions", summary="Start an execution", response_model=None)
def create_execution(
    workflow_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    request: Request,
    body: Annotated[ExecutionIn | None, Body()] = None,
) -> dict[str, Any] | Response:
    db = services.store
    wf = _visible(db, principal, workflow_id)
    body = body or ExecutionIn.model_validate({})
    if wf.mode == "Autonomous":
        return JSONResponse(codemie_error_body(403, "Autonomous workflows cannot be executed"), status_code=403)
    user_input = body.user_input if isinstance(body.user_input, str) else json.dumps(body.user_input)
    headers = _forwarded(request, services.settings.forwarded_headers_blocklist) if body.propagate_headers else None
    ex = service.start_execution(
        db, wf, user_input=user_input or "", created_by=service.creator(principal), headers=headers, runs_as=principal
    )
    if body.stream:
        return _streaming(db, wf, ex, request)
    return _execution_json(ex, wf)


@router.get("/workflows/{workflow_id}/executions", summary="A workflow's executions, newest first")
def list_executions(
    workflow_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    page: Page = 0,
    per_page: PerPage = 10,
    filter_by_project: bool = True,
) -> dict[str, Any]:
    db = services.store
    wf = _visible(db, principal, workflow_id)
    rows = db.list_executions(wf.id, offset=page * per_page, limit=per_page)
    return _page([_execution_json(e, wf) for e in rows], page, per_page, db.count_executions(wf.id))


@router.get("/workflows/{workflow_id}/executions/{execution_id}", summary="One execution")
def get_execution(
    workflow_id: IdPath, execution_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    wf, ex = _execution(services.store, principal, workflow_id, execution_id)
    return _execution_json(ex, wf)


@router.delete("/workflows/{workflow_id}/executions", summary="Delete all of a workflow's executions")
def delete_executions(workflow_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    wf = _visible(db, principal, workflow_id)
    while rows := db.list_executions(wf.id, offset=0, limit=MAX_PER_PAGE):
        for ex in rows:
            db.delete_execution(ex.id)
    return {"message": "Executions removed"}


@router.delete("/workflows/{workflow_id}/executions/{execution_id}", summary="Delete one execution")
def delete_execution(
    workflow_id: IdPath, execution_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    db.delete_execution(ex.id)
    return {"message": "Execution removed"}


@router.put("/workflows/{workflow_id}/executions/{execution_id}/abort", summary="Abort an execution")
def abort_execution(
    workflow_id: IdPath, execution_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    if not service.abort(db, ex):
        raise InvalidInput(f"the execution is already {ex.status}; only an unfinished execution can be aborted")
    return {"message": "Workflow execution has been aborted"}


@router.put(
    "/workflows/{workflow_id}/executions/{execution_id}/resume",
    summary="Resume an interrupted execution",
    response_model=None,
)
def resume_execution(
    workflow_id: IdPath,
    execution_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    request: Request,
    body: Annotated[ResumeIn | None, Body()] = None,
    propagate_headers: bool = False,
    stream: bool = False,
    disable_cache: bool = True,
) -> dict[str, Any] | Response:
    db = services.store
    wf, ex = _execution(db, principal, workflow_id, execution_id)
    if ex.status == ABORTED:
        raise InvalidInput("the execution was aborted; start a new one")
    headers = _forwarded(request, services.settings.forwarded_headers_blocklist) if propagate_headers else None
    service.resume(db, ex, user_input=(body.user_input if body else None), headers=headers)
    if stream:
        return _streaming(db, wf, ex, request)
    return {"message": "Workflow execution has been resumed"}


@router.put("/workflows/{workflow_id}/executions/{execution_id}/output", summary="Edit what a state hands on")
def edit_output(
    workflow_id: IdPath, execution_id: IdPath, body: OutputIn, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    state = db.get_state(ex.id, body.state_id)
    if state is None:
        raise NotFound(f"state {body.state_id!r} not found in this execution")
    service.set_output(db, ex, state_id=state.state_id, output=body.output)
    return {"message": "Workflow execution output has been updated"}


@router.get("/workflows/{workflow_id}/executions/{execution_id}/states", summary="An execution's states")
def list_states(
    workflow_id: IdPath,
    execution_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    page: Page = 0,
    per_page: PerPage = 10,
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    states = db.states(ex.id)
    chosen = states[page * per_page : (page + 1) * per_page]
    by_row: dict[int, list[dict[str, Any]]] = {}
    rows = {s.id: s for s in chosen}
    for t in db.thoughts(list(rows)):
        by_row.setdefault(t.state_row_id, []).append(_thought_short(t, rows[t.state_row_id]))
    return _page([_state_json(s, by_row.get(s.id, []), ex) for s in chosen], page, per_page, len(states))


@router.get("/workflows/{workflow_id}/executions/{execution_id}/states/{state_id}/output", summary="A state's output")
def state_output(
    workflow_id: IdPath, execution_id: IdPath, state_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    state = db.get_state(ex.id, state_id)
    if state is None:
        raise NotFound(f"state {state_id!r} not found in this execution")
    return {"output": state.output}


@router.post("/workflows/{workflow_id}/executions/{execution_id}/thoughts", summary="Thought trees by id")
def thoughts(
    workflow_id: IdPath,
    execution_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    ids: Annotated[list[str], Body(max_length=MAX_THOUGHT_IDS)],
) -> list[dict[str, Any]]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    states = {s.id: s for s in db.states(ex.id)}
    every = db.thoughts(list(states))
    children: dict[str | None, list[ThoughtRecord]] = {}
    for t in every:
        children.setdefault(t.parent_id, []).append(t)

    def tree(t: ThoughtRecord) -> dict[str, Any]:
        return {
            **_thought_short(t, states[t.state_row_id]),
            "input_text": t.input_text,
            "content": t.content,
            "children": [tree(c) for c in children.get(t.public_id, [])],
        }

    wanted = set(ids)
    return [tree(t) for t in every if t.public_id in wanted]


@router.get("/workflows/{workflow_id}/executions/{execution_id}/transitions", summary="An execution's transitions")
def transitions(workflow_id: IdPath, execution_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    items = [_transition_json(t, ex) for t in db.transitions(ex.id)]
    return _page(items, 0, max(1, len(items)))


@router.get(
    "/workflows/{workflow_id}/executions/{execution_id}/transitions/from/{state_id}", summary="Transitions from a state"
)
def transitions_from(
    workflow_id: IdPath, execution_id: IdPath, state_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    found = [t for t in db.transitions(ex.id) if t.from_state_id == state_id]
    if not found:
        raise NotFound(f"no transition from state {state_id!r}")
    return _transition_json(found[-1], ex)


@router.get(
    "/workflows/{workflow_id}/executions/{execution_id}/transitions/to/{state_id}", summary="Transition into a state"
)
def transitions_to(
    workflow_id: IdPath, execution_id: IdPath, state_id: IdPath, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    db = services.store
    _, ex = _execution(db, principal, workflow_id, execution_id)
    found = [t for t in db.transitions(ex.id) if t.to_state_id == state_id]
    if not found:
        raise NotFound(f"no transition to state {state_id!r}")
    return _transition_json(found[-1], ex)


def markdown(wf: WorkflowRecord, ex: ExecutionRecord, states: list[StateRecord]) -> str:
    """An execution as a Markdown report: one section per state, its output verbatim."""
    lines = [
        f"# {wf.name}: execution {ex.public_id}",
        "",
        f"- Status: {ex.status}",
        f"- Started: {iso(ex.created_at)}",
        f"- Input: {ex.prompt}",
        "",
    ]
    for s in states:
        title = s.state_id + (f" (iteration {s.iteration})" if s.iteration else "")
        lines += [f"## {title}", "", f"Status: {s.status}", ""]
        if s.error:
            lines += [f"Error: {s.error}", ""]
        if s.output is not None:
            lines += [s.output, ""]
    return "\n".join(lines)


@router.get("/workflows/{workflow_id}/executions/{execution_id}/export", summary="Export as Markdown (zip)")
def export(
    workflow_id: IdPath,
    execution_id: IdPath,
    services: ServicesDep,
    principal: PrincipalDep,
    output_format: Annotated[str, Query(pattern="^(md|markdown)$")] = "md",
    combined: bool = False,
) -> Response:
    db = services.store
    wf, ex = _execution(db, principal, workflow_id, execution_id)
    states = db.states(ex.id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if combined:
            zf.writestr("execution.md", markdown(wf, ex, states))
        else:
            for i, s in enumerate(states, 1):
                zf.writestr(f"{i:03d}_{s.state_id}.md", markdown(wf, ex, [s]))
    name = f"workflow_execution_{ex.public_id}.zip"
    return Response(
        buf.getvalue(), media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
