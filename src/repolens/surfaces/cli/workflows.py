"""``repolens workflow``: define CodeMie-style workflows from YAML files, run and follow them.

Executions are jobs of the job queue: ``repolens serve`` (embedded) or ``repolens worker``
(PostgreSQL) runs them; ``run --follow`` prints each state as it starts and ends, from the
database, until the execution succeeds, fails, is aborted or pauses for a human.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from repolens.surfaces.cli.base import cli, emit_json, handle_errors, open_services

if TYPE_CHECKING:
    from repolens.services import Services
    from repolens.storage.workflow_store import WorkflowRecord

FOLLOW_POLL_S = 0.3
ENDED = ("Succeeded", "Failed", "Aborted", "Interrupted")


@cli.group()
def workflow() -> None:
    """Define, run, follow, resume and abort workflows (CodeMie's YAML)."""


def _project(services: Services, project: str | None) -> str:
    return project or services.store.organization("default")[1]


def _find(services: Services, name_or_id: str) -> WorkflowRecord:
    from repolens.errors import NotFound

    db = services.store
    found = db.get_workflow(name_or_id)
    if found is not None:
        return found
    named = [w for w in db.list_workflows(projects=(), name=name_or_id, offset=0, limit=100) if w.name == name_or_id]
    if not named:
        raise NotFound(f"no workflow named {name_or_id!r}; see `repolens workflow list`")
    return named[0]


@workflow.command("create")
@click.argument("name")
@click.option(
    "--file", "yaml_file", required=True, type=click.Path(exists=True, dir_okay=False), help="The YAML definition."
)
@click.option("--project", help="The project it belongs to (default: the organization's).")
@click.option("--description", default="")
@handle_errors
def workflow_create(name: str, yaml_file: str, project: str | None, description: str) -> None:
    """Create workflow NAME from a YAML file (validated: errors name the line and key)."""
    from repolens.workflows import service

    with open_services() as services:
        wf = service.create_workflow(
            services.store,
            name=name,
            project=_project(services, project),
            description=description,
            yaml_config=Path(yaml_file).read_text(encoding="utf-8"),
            created_by={"id": "cli", "username": "cli", "name": "cli"},
        )
        click.echo(f"created workflow {wf.name} ({wf.public_id})")


@workflow.command("list")
@handle_errors
def workflow_list() -> None:
    """List workflows."""
    with open_services() as services:
        for wf in services.store.list_workflows(projects=(), name=None, offset=0, limit=1000):
            click.echo(f"{wf.public_id}  {wf.name}  ({wf.project})")


def _follow(services: Services, execution_id: str, timeout: float, *, seen: dict[str, str] | None = None) -> str:
    """Print each state whose status changes, then the execution's end; its final status.
    ``seen``: the states' statuses already shown (a resume does not repeat the earlier states)."""
    db = services.store
    seen = dict(seen or {})
    deadline = time.monotonic() + timeout
    while True:
        ex = db.get_execution(execution_id)
        if ex is None:
            return "Deleted"
        for state in db.states(ex.id):
            if seen.get(state.public_id) != state.status:
                seen[state.public_id] = state.status
                label = state.state_id + (f"[{state.iteration}]" if state.iteration else "")
                click.echo(f"{label}: {state.status}" + (f" - {state.error}" if state.error else ""))
        if ex.status in ENDED:
            click.echo(f"execution {ex.public_id}: {ex.status}")
            if ex.output and ex.status == "Succeeded":
                click.echo(ex.output)
            if ex.error:
                click.echo(ex.error, err=True)
            return ex.status
        if time.monotonic() > deadline:
            click.echo(f"execution {ex.public_id}: still {ex.status} after {timeout:.0f} s", err=True)
            return ex.status
        time.sleep(FOLLOW_POLL_S)


@workflow.command("run")
@click.argument("name")
@click.option("--input", "user_input", default="", help="The user input the first state receives.")
@click.option("--follow", is_flag=True, help="Print each state as it runs, until the execution ends or pauses.")
@click.option("--timeout", default=3600.0, show_default=True, help="Stop following after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the execution as JSON.")
@handle_errors
def workflow_run(name: str, user_input: str, follow: bool, timeout: float, as_json: bool) -> None:
    """Start workflow NAME (a server or worker runs it); with --follow, watch it to the end."""
    from repolens.workflows import service

    with open_services() as services:
        wf = _find(services, name)
        ex = service.start_execution(services.store, wf, user_input=user_input, created_by={"id": "cli", "name": "cli"})
        if as_json:
            emit_json({"execution_id": ex.public_id, "workflow_id": wf.public_id, "overall_status": ex.status})
        else:
            click.echo(f"execution {ex.public_id} of {wf.name} started")
        if follow:
            status = _follow(services, ex.public_id, timeout)
            if status == "Failed":
                sys.exit(1)


@workflow.command("resume")
@click.argument("execution_id")
@click.option("--input", "user_input", default=None, help="Input for the paused state.")
@click.option("--follow", is_flag=True)
@click.option("--timeout", default=3600.0, show_default=True)
@handle_errors
def workflow_resume(execution_id: str, user_input: str | None, follow: bool, timeout: float) -> None:
    """Resume an execution paused at interrupt_before."""
    from repolens.errors import NotFound
    from repolens.workflows import service

    with open_services() as services:
        ex = services.store.get_execution(execution_id)
        if ex is None:
            raise NotFound(f"no execution {execution_id!r}")
        shown = {state.public_id: state.status for state in services.store.states(ex.id)}
        service.resume(services.store, ex, user_input=user_input)
        click.echo(f"execution {ex.public_id} resumed")
        if follow and _follow(services, ex.public_id, timeout, seen=shown) == "Failed":
            sys.exit(1)


@workflow.command("abort")
@click.argument("execution_id")
@handle_errors
def workflow_abort(execution_id: str) -> None:
    """Abort an execution (its running model or tool call is cancelled)."""
    from repolens.errors import InvalidInput, NotFound
    from repolens.workflows import service

    with open_services() as services:
        ex = services.store.get_execution(execution_id)
        if ex is None:
            raise NotFound(f"no execution {execution_id!r}")
        if not service.abort(services.store, ex):
            raise InvalidInput(f"the execution is already {ex.status}")
        click.echo(f"execution {ex.public_id} aborted")
