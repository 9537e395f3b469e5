"""``repolens batch`` and ``repolens eval``: Codeer's batches and agent evaluations from the shell,
thin adapters over ``repolens.batches`` and ``repolens.evals`` on this machine's data dir.

Batch items and evaluation runs are jobs of the job queue: ``repolens serve`` (embedded) or
``repolens worker`` (PostgreSQL) answers them; ``--follow`` prints progress from the database
until the batch ends or every score is in. Commands run as the local user (an admin without a
key), whose chats are listed as the local user's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from repolens.surfaces.cli.base import cli, emit_json, handle_errors, open_services

if TYPE_CHECKING:
    from repolens.access.keys import Principal

FOLLOW_POLL_S = 0.5
LOCAL_OWNER = "local"  # the agents registry's owner id for the local CLI


def local_principal() -> Principal:
    """The local user as a principal: an admin that no plan limits."""
    from repolens.access.keys import Principal
    from repolens.domain import ApiKey

    return Principal(ApiKey(0, LOCAL_OWNER, "", "Local user", "admin", "custom", 10**9, 10**6, (), 0.0, None, None, None))


@cli.group()
def batch() -> None:
    """Submit batches of messages to agents (Codeer's batch API), follow and cancel them."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from repolens.errors import InvalidInput

    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name} line {n}: not JSON ({exc.msg})") from None
        if isinstance(row, str):
            row = {"message": row}
        if not isinstance(row, dict):
            raise InvalidInput(f"{path.name} line {n}: a JSON object (or a string message) is expected")
        row.setdefault("custom_id", f"line-{n}")
        rows.append(row)
    return rows


@batch.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--agent", required=True, help="The agent's id (a line's agent_id overrides it).")
@click.option("--webhook", help="An https URL told when the batch ends.")
@click.option("--secret", help="Sign the webhook body with this secret (HMAC-SHA256).")
@click.option("--follow", is_flag=True, help="Print progress until the batch ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the batch (and with --follow its results) as JSON.")
@handle_errors
def batch_submit(file: Path, agent: str, webhook: str | None, secret: str | None, follow: bool, as_json: bool) -> None:
    """Submit FILE.jsonl: one request per line ({"custom_id", "message", ...} or a plain string)."""
    from repolens.batches import service

    hook = {"url": webhook, "secret": secret} if webhook else None
    with open_services() as services:
        principal = local_principal()
        made = service.submit(services, principal, service.Submission(agent, _read_jsonl(file), hook))
        if not follow:
            emit_json(service.view(made)) if as_json else click.echo(
                f"submitted batch {made.public_id} ({made.total} requests)"
            )
            return
        if not as_json:
            click.echo(f"submitted batch {made.public_id} ({made.total} requests)", err=True)
        shown = ""
        while True:
            batch_now = service.get(services.store, principal, made.public_id)
            view = service.view(batch_now)
            line = (
                f"{view['status']}: {view['completed_requests']} answered, {view['failed_requests']} failed, "
                f"{view['cancelled_requests']} cancelled of {view['total_requests']}"
            )
            if line != shown and not as_json:
                click.echo(line, err=True)
                shown = line
            if view["status"] in ("completed", "failed", "cancelled") and not view["running_requests"]:
                break
            time.sleep(FOLLOW_POLL_S)
        _, items = service.results(services.store, principal, made.public_id, offset=0, limit=service.MAX_REQUESTS)
        if as_json:
            emit_json({**view, "results": [_item(i) for i in items]})
        else:
            for i in items:
                text = i.response if i.response is not None else str((i.error or {}).get("message", ""))
                click.echo(f"{i.custom_id}\t{i.state}\t{next(iter(text.splitlines()), '')}")
        if view["failed_requests"]:
            sys.exit(1)


def _item(i: Any) -> dict[str, Any]:
    return {
        "custom_id": i.custom_id,
        "status": i.state,
        "chat_id": i.chat_id,
        "message_id": i.message_id,
        "response": i.response,
        "usage": i.usage,
        "error": i.error,
    }


@batch.command("status")
@click.argument("batch_id")
@handle_errors
def batch_status(batch_id: str) -> None:
    """Print a batch and its counts as JSON."""
    from repolens.batches import service

    with open_services() as services:
        emit_json(service.view(service.get(services.store, local_principal(), batch_id)))


@batch.command("cancel")
@click.argument("batch_id")
@handle_errors
def batch_cancel(batch_id: str) -> None:
    """Cancel a batch: requests not started are cancelled, running ones finish."""
    from repolens.batches import service

    with open_services() as services:
        view = service.view(service.cancel(services, local_principal(), batch_id))
        click.echo(f"cancelled batch {view['id']}: {view['cancelled_requests']} requests will not run")


@cli.group("eval")
def eval_() -> None:
    """Evaluate agents: run an agent over its cases and score the answers with an LLM judge."""


@eval_.command("run")
@click.option("--agent", required=True, help="The agent whose cases run.")
@click.option("--evaluator", required=True, help="The evaluator (judge) id.")
@click.option("--version", help="The agent version id to run (default: its newest, draft or published).")
@click.option("--cases", help="Comma-separated case ids (default: every case of the agent).")
@click.option("--follow/--no-follow", default=True, help="Wait for the scores (default) or return at once.")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the scores.")
@handle_errors
def eval_run(agent: str, evaluator: str, version: str | None, cases: str | None, follow: bool, timeout: int) -> None:
    """Run an agent version over cases and print each case's score and the judge's reason as JSON."""
    from repolens.errors import RepolensError
    from repolens.evals import service

    with open_services() as services:
        principal = local_principal()
        case_ids = (
            [c.strip() for c in cases.split(",")]
            if cases
            else [c.public_id for c in service.cases(services, principal, agent)]
        )
        version_id = version or service.latest_version(services.store, principal, agent).id
        started = service.start_run(services, principal, case_ids, [evaluator], version_id)
        head = {"run_id": started.job_id, "version_id": started.version.id, "version_number": started.version.number}
        if not follow:
            emit_json({**head, "queued": len(started.queued), "skipped": started.skipped})
            return
        deadline = time.monotonic() + timeout
        queued = [c for c, _ in started.queued]
        while True:
            rows = service.results(services.store, principal, queued, evaluator, started.version.id)
            if all(r is not None and r.state in ("done", "failed") for _, r in rows):
                break
            if time.monotonic() > deadline:
                raise RepolensError(
                    f"the run {started.job_id} was not scored within {timeout} s; is `repolens serve` running?"
                )
            time.sleep(FOLLOW_POLL_S)
        out = [
            {
                "case_id": c.public_id,
                "input": c.input,
                "score": r.score,
                "status": r.state,
                "reason": r.reason,
                "output": r.output,
            }
            for c, r in rows
            if r is not None
        ]
        emit_json({**head, "results": out, "skipped": started.skipped})
        if any((r.score or 0.0) < 1 for _, r in rows if r is not None):
            sys.exit(1)
