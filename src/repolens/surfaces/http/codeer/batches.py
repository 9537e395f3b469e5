"""Codeer's batch API (``/api/v1/batches``) over ``repolens.batches``.

Submit, list, get, results (paginated, one row per item in submission order), cancel, and the
webhook deliveries of a batch with every attempt (our addition: Codeer shows none).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from repolens import views
from repolens.batches import service
from repolens.storage.batch_store import ItemRecord
from repolens.surfaces.http.codeer.envelope import ok, page_bounds, paged
from repolens.surfaces.http.codeer.errors import code_of
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/batches", tags=["codeer"])
# Page bounds: ``page_bounds`` checks the ranges; an offset past a signed 64-bit integer would
# overflow the database driver, so it is refused here (400) before it reaches SQL.
Limit = Annotated[int | None, Query()]
Offset = Annotated[int | None, Query(le=2**63 - 1)]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    agent_id: Any = None
    requests: Any = None
    webhook: Any = None


def item_json(item: ItemRecord) -> dict[str, Any]:
    error = item.error
    return {
        "custom_id": item.custom_id,
        "status": item.state,
        "agent_id": item.agent_id,
        "external_user_id": item.external_user_id,
        "chat_id": item.chat_id,
        "history_id": item.chat_id,
        "message_id": item.message_id,
        "response": item.response,
        "usage": item.usage,
        "error": {"code": code_of(int(error.get("status", 500))), "message": error.get("message", "")} if error else None,
        "attempts": item.attempts,
        "started_at": views.iso(item.started_at),
        "finished_at": views.iso(item.finished_at),
    }


@router.post("", summary="Submit a batch of 1 to 1,000 messages to agents")
def create(body: BatchIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    made = service.submit(services, principal, service.Submission(body.agent_id, body.requests, body.webhook))
    return ok(service.view(made))


@router.get("", summary="The workspace's batches, newest first")
def list_batches(
    request: Request, services: ServicesDep, principal: PrincipalDep, limit: Limit = None, offset: Offset = None
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    rows, total = service.list_(services.store, principal, offset=start, limit=size)
    return paged(request, [service.view(b) for b in rows], total=total, limit=size, offset=start)


@router.get("/{batch_id}", summary="A batch with its counts")
def get(batch_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(service.view(service.get(services.store, principal, batch_id)))


@router.get("/{batch_id}/results", summary="A batch's items with their answers, in submission order")
def results(
    batch_id: str,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Limit = None,
    offset: Offset = None,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    batch, items = service.results(services.store, principal, batch_id, offset=start, limit=size)
    return paged(request, [item_json(i) for i in items], total=batch.total, limit=size, offset=start)


@router.post("/{batch_id}/cancel", summary="Cancel a batch: items not started are cancelled, running ones finish")
def cancel(batch_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(service.view(service.cancel(services, principal, batch_id)))


@router.get("/{batch_id}/webhook-deliveries", summary="A batch's webhook events and every delivery attempt")
def deliveries(batch_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = service.deliveries(services.store, principal, batch_id)
    return ok(
        [
            {
                "id": event.public_id,
                "event": event.event,
                "url": event.url,
                "status": event.state,
                "attempts": [
                    {
                        "attempt": a.attempt,
                        "at": views.iso(a.at),
                        "status_code": a.status_code,
                        "error": a.error or None,
                        "duration_ms": a.duration_ms,
                    }
                    for a in attempts
                ],
                "next_attempt_at": views.iso(event.next_attempt_at) if event.state == "pending" else None,
                "give_up_at": views.iso(event.give_up_at),
                "created_at": views.iso(event.created_at),
                "delivered_at": views.iso(event.delivered_at),
            }
            for event, attempts in rows
        ]
    )
