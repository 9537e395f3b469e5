"""What surfaces call: define workflows, start, resume, edit and abort executions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from repolens.access.identity import account_for, projects_of, user_record
from repolens.access.keys import Principal, principal_for_key
from repolens.domain import KeyRole
from repolens.errors import InvalidInput, NotFound
from repolens.storage.base import Database
from repolens.storage.workflow_store import ExecutionRecord, WorkflowRecord
from repolens.workflows.config import check_mode, parse
from repolens.workflows.engine import edit_output, initial_frontier, resume_frontier

MAX_USER_INPUT_CHARS = 100_000
# A state's output in a progress report is cut here: the full output is one call away
# (REST ``.../states/{id}/output``), and a report of a big fan-out must stay readable.
REPORT_OUTPUT_CHARS = 2_000
REPORT_MAX_STATES = 200


def runner_of(principal: Principal | None) -> dict[str, Any] | None:
    """What the job needs to run an execution as its caller (``principal_of`` reads it back):
    the key id, and for a person, whose account is no stored key, its name, role and scopes."""
    if principal is None:
        return None
    key = principal.key
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role,
        "scopes": list(key.scopes),
        "person": principal.person is not None,
    }


def principal_of(db: Database, runner: Mapping[str, Any] | None) -> Principal | None:
    """The principal an execution runs as. A key is looked up again, so a key revoked since the
    execution started stops it (``Unauthorized`` in the state that runs next); a person's
    account is rebuilt from what was recorded."""
    if not runner:
        return None
    if not runner.get("person"):
        return principal_for_key(db, str(runner["key_id"]))
    role: KeyRole = "admin" if runner.get("role") == "admin" else "member"
    account = account_for(
        str(runner["key_id"]),
        name=str(runner.get("name", "")),
        role=role,
        scopes=tuple(runner.get("scopes", ())),
        created_at=0.0,
    )
    return Principal(account)


def creator(principal: Principal | None) -> dict[str, Any]:
    """Who started an execution or wrote a workflow, as CodeMie's ``created_by``."""
    if principal is None:
        return {"id": "local", "user_id": "local", "username": "local", "name": "local user"}
    return dict(user_record(principal))


def visible_workflow(db: Database, principal: Principal | None, workflow_id: str) -> WorkflowRecord:
    """A workflow of one of the caller's projects, by id (or, failing that, by exact name);
    NotFound for anything else, so another project's workflows are not shown to exist.
    ``principal`` None is the local user (CLI, stdio MCP), who sees every project."""
    mine = None if principal is None else projects_of(db, principal)
    wf = db.get_workflow(workflow_id)
    if wf is None:
        named = db.list_workflows(projects=mine or (), name=workflow_id, offset=0, limit=100)
        wf = next((w for w in named if w.name == workflow_id), None)
    if wf is None or (mine is not None and wf.project not in mine):
        raise NotFound(f"workflow {workflow_id!r} not found")
    return wf


def visible_execution(
    db: Database, principal: Principal | None, execution_id: str
) -> tuple[WorkflowRecord, ExecutionRecord]:
    """An execution of a workflow the caller may see, with its workflow; NotFound otherwise."""
    ex = db.get_execution(execution_id.strip())
    wf = db.workflow_of(ex) if ex is not None else None
    if ex is None or wf is None:
        raise NotFound(f"workflow execution {execution_id!r} not found")
    visible_workflow(db, principal, wf.public_id)
    return wf, ex


def report(db: Database, wf: WorkflowRecord, ex: ExecutionRecord) -> dict[str, Any]:
    """Where an execution is: its status, each state's status (and error, and output cut to
    ``REPORT_OUTPUT_CHARS``), its output and token usage."""
    states = db.states(ex.id)
    return {
        "execution_id": ex.public_id,
        "workflow_id": wf.public_id,
        "workflow": wf.name,
        "overall_status": ex.status,
        "output": ex.output,
        "error": ex.error or None,
        "tokens_usage": {"input_tokens": ex.input_tokens, "output_tokens": ex.output_tokens},
        "states": [
            {
                "state_id": s.state_id,
                "iteration": s.iteration,
                "status": s.status,
                "error": s.error or None,
                "output": s.output
                if s.output is None or len(s.output) <= REPORT_OUTPUT_CHARS
                else s.output[:REPORT_OUTPUT_CHARS] + f" [... {len(s.output) - REPORT_OUTPUT_CHARS} more characters]",
            }
            for s in states[-REPORT_MAX_STATES:]
        ],
        "states_total": len(states),
    }


def create_workflow(
    db: Database,
    *,
    name: str,
    project: str,
    yaml_config: str,
    description: str = "",
    mode: str | None = None,
    shared: bool = False,
    icon_url: str | None = None,
    categories: tuple[str, ...] = (),
    created_by: dict[str, Any] | None = None,
) -> WorkflowRecord:
    """Validate and store a workflow definition."""
    if not name.strip():
        raise InvalidInput("a workflow needs a name")
    checked_mode = check_mode(mode)
    parse(yaml_config)
    return db.create_workflow(
        name=name,
        project=project,
        description=description,
        yaml_config=yaml_config,
        mode=checked_mode,
        shared=shared,
        icon_url=icon_url,
        categories=categories,
        created_by=created_by or {},
    )


def update_workflow(db: Database, workflow: WorkflowRecord, **fields: Any) -> WorkflowRecord:
    """Validate and apply changes to a definition (running executions keep the one they started with)."""
    if "mode" in fields:
        fields["mode"] = check_mode(fields["mode"])
    if "yaml_config" in fields:
        parse(fields["yaml_config"])
    db.update_workflow(workflow.id, **fields)
    fresh = db.get_workflow(workflow.public_id)
    assert fresh is not None
    return fresh


def start_execution(
    db: Database,
    workflow: WorkflowRecord,
    *,
    user_input: str,
    created_by: dict[str, Any],
    headers: Mapping[str, str] | None = None,
    runs_as: Principal | None = None,
) -> ExecutionRecord:
    """A new execution, queued as a job; ``headers`` (already filtered: ``X-*`` minus the
    blocklist) go to the MCP servers of its states while it runs. Its states run as ``runs_as``
    (the caller; None: the local user): its code tools see that key's data sources, its
    assistants are the ones that key may see, and its tokens count against it."""
    check_mode(workflow.mode)
    if len(user_input) > MAX_USER_INPUT_CHARS:
        raise InvalidInput(f"user_input is longer than {MAX_USER_INPUT_CHARS} characters")
    config = parse(workflow.yaml_config)
    return db.create_execution(
        workflow_id=workflow.id,
        prompt=user_input,
        project=workflow.project,
        created_by=created_by,
        frontier={**initial_frontier(config, workflow.yaml_config, user_input), "runs_as": runner_of(runs_as)},
        headers=headers,
    )


def get_execution(db: Database, workflow: WorkflowRecord, execution_id: str) -> ExecutionRecord:
    """An execution of ``workflow``, or NotFound."""
    ex = db.get_execution(execution_id)
    if ex is None or ex.workflow_id != workflow.id:
        raise NotFound(f"workflow execution {execution_id!r} not found")
    return ex


def resume(
    db: Database, ex: ExecutionRecord, *, user_input: str | None = None, headers: Mapping[str, str] | None = None
) -> None:
    """Continue an Interrupted execution (its paused state runs, with the user's input if given),
    forwarding ``headers`` to MCP servers from now on (a pause dropped the earlier ones)."""
    db.requeue_execution(ex.id, frontier=resume_frontier(ex, user_input=user_input), headers=headers)


def set_output(db: Database, ex: ExecutionRecord, *, state_id: str, output: str) -> None:
    """Replace what a finished state hands to the paused one (human in the loop)."""
    if ex.status != "Interrupted":
        raise InvalidInput(f"the execution is {ex.status}: outputs can be edited only while it is Interrupted")
    db.update_execution(ex.id, frontier=edit_output(ex.frontier, state_id, output))


def abort(db: Database, ex: ExecutionRecord) -> bool:
    """Abort an unfinished execution; False when it had already ended."""
    return db.abort_execution(ex.id)
