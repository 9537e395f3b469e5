"""A workspace's client whitelist (Codeer's whitelist mode), managed by admin keys.

When the mode is on, every chat, message and batch request must name a whitelisted
``external_user_id`` (else 403 with error code 14103); the check is
``repolens.knowledge.check_client``, which the chat routes call.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from repolens import knowledge
from repolens.domain import Workspace
from repolens.surfaces.http.codeer.envelope import ok
from repolens.surfaces.http.deps import AdminDep, ServicesDep

router = APIRouter(prefix="/api/v1/external/workspaces", tags=["codeer"])


class WhitelistIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: Any = None
    external_user_ids: Any = None


def _json(ws: Workspace, enabled: bool, ids: tuple[str, ...]) -> dict[str, Any]:
    return {"workspace_id": ws.public_id, "whitelist_mode": enabled, "external_user_ids": list(ids)}


@router.get("/{workspace_id}/client-whitelist", summary="A workspace's whitelist mode and allowed external users")
def get_whitelist(workspace_id: str, services: ServicesDep, principal: AdminDep) -> dict[str, Any]:
    return ok(_json(*knowledge.get_whitelist(services.store, principal, workspace_id)))


@router.put("/{workspace_id}/client-whitelist", summary="Replace a workspace's whitelist mode and list")
def put_whitelist(workspace_id: str, body: WhitelistIn, services: ServicesDep, principal: AdminDep) -> dict[str, Any]:
    result = knowledge.set_whitelist(
        services.store, principal, workspace_id, enabled=body.enabled, external_user_ids=body.external_user_ids
    )
    return ok(_json(*result))
