"""``/api/admin/keys``: create, list and revoke API keys (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from repolens import views
from repolens.access.keys import create_key, plan_for
from repolens.errors import NotFound
from repolens.surfaces.http.deps import AdminDep, ServicesDep
from repolens.surfaces.http.schemas import KeyCreate, KeyCreated, KeyOut

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/keys", response_model=list[KeyOut], summary="Every API key (metadata only)")
def list_keys(services: ServicesDep, principal: AdminDep) -> list[dict[str, Any]]:
    out = []
    for key in services.store.list_keys():
        use = services.store.usage(key.key_id)
        out.append(
            views.key_json(key)
            | {
                "usage": {
                    "chatRequests": use.chat_requests,
                    "promptTokens": use.prompt_tokens,
                    "completionTokens": use.completion_tokens,
                }
            }
        )
    return out


@router.post("/keys", status_code=201, response_model=KeyCreated, summary="Create a key; the response shows it once")
def create(body: KeyCreate, services: ServicesDep, principal: AdminDep) -> JSONResponse:
    plan = plan_for(body.plan, requests_per_hour=body.requestsPerHour, concurrency=body.concurrency)
    minted = create_key(
        services.store,
        name=body.name,
        plan=plan,
        role="admin" if body.admin else "member",
        scopes=tuple(body.scopes),
        expires_at=body.expiresAt,
    )
    return JSONResponse(views.key_json(minted.row) | {"key": minted.token}, status_code=201)


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke a key")
def revoke(key_id: str, services: ServicesDep, principal: AdminDep) -> Response:
    if not services.store.revoke_key(key_id):
        raise NotFound(f"unknown key {key_id!r}")
    return Response(status_code=204)
