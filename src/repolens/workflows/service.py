"""What surfaces call: define workflows, start, resume, edit and abort executions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from repolens.errors import InvalidInput, NotFound
from repolens.storage.base import Database
from repolens.storage.workflow_store import ExecutionRecord, WorkflowRecord
from repolens.workflows.config import check_mode, parse
from repolens.workflows.engine import edit_output, initial_frontier, resume_frontier

MAX_USER_INPUT_CHARS = 100_000


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
) -> ExecutionRecord:
    """A new execution, queued as a job; ``headers`` (already filtered: ``X-*`` minus the
    blocklist) go to the MCP servers of its states while it runs."""
    check_mode(workflow.mode)
    if len(user_input) > MAX_USER_INPUT_CHARS:
        raise InvalidInput(f"user_input is longer than {MAX_USER_INPUT_CHARS} characters")
    config = parse(workflow.yaml_config)
    return db.create_execution(
        workflow_id=workflow.id,
        prompt=user_input,
        project=workflow.project,
        created_by=created_by,
        frontier=initial_frontier(config, workflow.yaml_config, user_input),
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
