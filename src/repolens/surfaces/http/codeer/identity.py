"""``GET /api/v1/external/me`` (who the key is and its workspace scope) and
``GET /api/v1/llm/models`` (the chat models agents may use)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from repolens import knowledge
from repolens.surfaces.http.codeer.envelope import ok
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1", tags=["codeer"])

ORGANIZATION_NAME = "default"  # the install's one organization, as the other dialects name it


@router.get("/external/me", summary="The key's identity and its workspace and organization scope")
def me(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    org_id, org_name, _ = db.organization(ORGANIZATION_NAME)
    home = knowledge.home_workspace(db, principal)
    spaces = knowledge.workspaces_of(db, principal)
    key = principal.key
    return ok(
        {
            "id": key.key_id,
            # Not a mailbox: Codeer's API-key users are virtual too, and the CLI only shows it.
            "email": f"api-key-{key.key_id}@repolens.invalid",
            "name": key.name,
            "is_api_key_user": True,
            "role": key.role,
            "profile": {
                "default_workspace_id": home.public_id,
                "default_organization_id": org_id,
                "workspaces": [{"id": w.public_id, "name": w.name, "organization_id": org_id} for w in spaces],
                "organizations": [{"id": org_id, "name": org_name}],
                "default_scopes": {"default": {"workspace_id": home.public_id, "organization_id": org_id}},
                "workspace_organization_map": {w.public_id: org_id for w in spaces},
            },
        }
    )


@router.get("/llm/models", summary="The chat models configured on this server")
def models(
    services: ServicesDep, principal: PrincipalDep, model_type: Literal["text", "image"] | None = None
) -> dict[str, Any]:
    settings = services.settings
    served = settings.llm_models if model_type != "image" else ()  # no image models are served
    rows = [
        {
            "display_name": model,
            "model_id": model,
            "provider": settings.llm_provider or "openai",
            "model_type": "text",
            "input_modalities": ["text"],
            "input_credits_per_million_tokens": 0,
            "output_credits_per_million_tokens": 0,
            "created_at": None,
        }
        for model in served
    ]
    return ok(rows)
