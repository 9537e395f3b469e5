"""The workflows pages: the workflows of the principal's projects (the ones CodeMie's workflows
API lists), one workflow with its executions and a form to run it, and one execution with its
states, their outputs and thought trees, and the buttons that abort or resume it.

Executions run as jobs (``repolens.workflows``); these pages only start, read, abort and resume
them through ``workflows.service``. A running execution's page reloads itself every few seconds
with a ``<meta http-equiv="refresh">`` (no script: the CSP allows none inline, and the page
must work without any), and stops once the execution has ended or paused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from repolens.access.identity import projects_of, user_record
from repolens.access.sessions import Session
from repolens.storage.base import Database
from repolens.storage.workflow_store import ExecutionRecord, StateRecord, ThoughtRecord, WorkflowRecord
from repolens.surfaces.web import WEB_PREFIX
from repolens.surfaces.web.pages import page, see_other
from repolens.surfaces.web.session import FormDep, SessionDep, services_of
from repolens.workflows import service

router = APIRouter()
MAX_ID_CHARS = 100  # workflow and execution ids are uuids (36); nothing longer is one
IdPath = Annotated[str, Path(max_length=MAX_ID_CHARS)]
MAX_LISTED = 100  # workflows or executions on one page: the API pages through more
REFRESH_S = 2  # how often a running execution's page reloads itself
RUNNING = ("Not Started", "In Progress")  # statuses whose page keeps refreshing
ENDED = ("Succeeded", "Failed", "Aborted")


def _db(request: Request) -> Database:
    return services_of(request).store


def _visible(db: Database, session: Session, workflow_id: str) -> WorkflowRecord:
    """A workflow of the principal's projects; any other reads as missing."""
    return service.visible_workflow(db, session.principal, workflow_id)


def _execution(
    db: Database, session: Session, workflow_id: str, execution_id: str
) -> tuple[WorkflowRecord, ExecutionRecord]:
    wf = _visible(db, session, workflow_id)
    return wf, service.get_execution(db, wf, execution_id)


def _url(wf: WorkflowRecord, ex: ExecutionRecord | None = None) -> str:
    base = f"{WEB_PREFIX}/workflows/{quote(wf.public_id, safe='')}"
    return f"{base}/executions/{quote(ex.public_id, safe='')}" if ex else base


def thought_trees(thoughts: Sequence[ThoughtRecord]) -> dict[int, list[dict[str, Any]]]:
    """Each state's thoughts as trees (children nested under their parent), by state row id."""
    children: dict[str | None, list[ThoughtRecord]] = {}
    for t in thoughts:
        children.setdefault(t.parent_id, []).append(t)

    def tree(t: ThoughtRecord) -> dict[str, Any]:
        return {
            "author_name": t.author_name,
            "author_type": t.author_type,
            "input_text": t.input_text,
            "message": t.content,
            "error": False,
            "children": [tree(c) for c in children.get(t.public_id, [])],
        }

    known = {t.public_id for t in thoughts}
    by_state: dict[int, list[dict[str, Any]]] = {}
    for t in thoughts:
        if t.parent_id is None or t.parent_id not in known:
            by_state.setdefault(t.state_row_id, []).append(tree(t))
    return by_state


@router.get("/workflows", response_class=HTMLResponse)
def workflows_home(request: Request, session: SessionDep) -> HTMLResponse:
    db = _db(request)
    projects = projects_of(db, session.principal)
    found = db.list_workflows(projects=projects, name=None, offset=0, limit=MAX_LISTED) if projects else []
    return page(request, session, "workflows.html", workflows=found)


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
def workflow_page(workflow_id: IdPath, request: Request, session: SessionDep) -> HTMLResponse:
    db = _db(request)
    wf = _visible(db, session, workflow_id)
    executions = db.list_executions(wf.id, offset=0, limit=MAX_LISTED)
    return page(request, session, "workflow.html", workflow=wf, executions=executions, url=_url(wf))


@router.post("/workflows/{workflow_id}/run")
async def run(workflow_id: IdPath, request: Request, session: SessionDep, form: FormDep) -> RedirectResponse:
    db = _db(request)
    wf = await run_in_threadpool(_visible, db, session, workflow_id)
    creator = user_record(session.principal)
    ex = await run_in_threadpool(
        lambda: service.start_execution(db, wf, user_input=form.get("input"), created_by=creator, runs_as=session.principal)
    )
    return see_other(_url(wf, ex))


@router.get("/workflows/{workflow_id}/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(workflow_id: IdPath, execution_id: IdPath, request: Request, session: SessionDep) -> HTMLResponse:
    db = _db(request)
    wf, ex = _execution(db, session, workflow_id, execution_id)
    states: list[StateRecord] = db.states(ex.id)
    trees = thought_trees(db.thoughts([s.id for s in states]))
    return page(
        request,
        session,
        "execution.html",
        workflow=wf,
        execution=ex,
        states=[(s, trees.get(s.id, [])) for s in states],
        refresh=REFRESH_S if ex.status in RUNNING else 0,
        ended=ex.status in ENDED,
        url=_url(wf, ex),
        workflow_url=_url(wf),
    )


@router.post("/workflows/{workflow_id}/executions/{execution_id}/abort")
async def abort(
    workflow_id: IdPath, execution_id: IdPath, request: Request, session: SessionDep, form: FormDep
) -> RedirectResponse:
    db = _db(request)
    wf, ex = await run_in_threadpool(_execution, db, session, workflow_id, execution_id)
    await run_in_threadpool(service.abort, db, ex)
    return see_other(_url(wf, ex))


@router.post("/workflows/{workflow_id}/executions/{execution_id}/resume")
async def resume(
    workflow_id: IdPath, execution_id: IdPath, request: Request, session: SessionDep, form: FormDep
) -> RedirectResponse:
    db = _db(request)
    wf, ex = await run_in_threadpool(_execution, db, session, workflow_id, execution_id)
    given = form.get("input")
    await run_in_threadpool(lambda: service.resume(db, ex, user_input=given or None))
    return see_other(_url(wf, ex))
