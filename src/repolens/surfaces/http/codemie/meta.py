"""What CodeMie's SDK reads around assistants: the signed-in user, the feature config, the
model catalogs, and the projects (CodeMie's "applications") the caller belongs to.

An install has one organization, which is CodeMie's one project here; its name is the
organization's (``default`` unless renamed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from repolens.access.identity import admin_projects_of, projects_of, require_project
from repolens.access.keys import Principal
from repolens.services import Services
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso

router = APIRouter()

# CodeMie's provider names for ours (``LLMProvider`` in the SDK); an OpenAI-compatible server
# has no CodeMie name, and the field is optional.
PROVIDERS: dict[str, str] = {"anthropic": "anthropic"}
RETRIEVAL_ONLY = "retrieval-only"  # the "model" answering when none is configured (chat/engine.py)


def _user_json(services: Services, principal: Principal) -> dict[str, Any]:
    db = services.store
    person = principal.person
    if person is not None:
        user_id, name, username, email = person.subject, person.name, person.email or person.name, person.email
    else:  # an API key: the key is the user
        key = principal.key
        user_id, name, username, email = key.key_id, key.name, key.name, ""
    return {
        "userId": user_id,
        "name": name,
        "username": username,
        "email": email,
        "isAdmin": principal.is_admin,
        "applications": list(projects_of(db, principal)),
        "applicationsAdmin": list(admin_projects_of(db, principal)),
        "knowledgeBases": [],
    }


@router.get("/user", summary="The signed-in user (or the API key)")
def user(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return _user_json(services, principal)


@router.get("/user/data", summary="The user's stored preferences (none are kept)")
def user_data(principal: PrincipalDep) -> dict[str, Any]:
    return {"user_id": principal.person.subject if principal.person else principal.key.key_id}


@router.get("/config", summary="Feature switches the CodeMie UI and SDK read")
def config(services: ServicesDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    # CodeMie lists the enabled components only: a component's presence is the switch.
    switches = {
        "features:datasources": True,
        "features:assistants": True,
        "features:llm": bool(services.settings.llm_provider),
        "features:localAuth": True,
    }
    return [{"id": name, "settings": {"enabled": True}} for name, on in switches.items() if on]


def _features(*, tools: bool) -> dict[str, bool]:
    return {
        "streaming": True,
        "tools": tools,
        "temperature": tools,
        "parallel_tool_calls": False,
        "system_prompt": True,
        "max_tokens": tools,
    }


@router.get("/llm_models", summary="The chat models assistants can use")
def llm_models(services: ServicesDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    settings = services.settings
    if not settings.llm_provider:
        # No model configured: assistants answer in retrieval-only mode, which is what is listed.
        return [
            {
                "base_name": RETRIEVAL_ONLY,
                "deployment_name": RETRIEVAL_ONLY,
                "label": "Retrieval only (no language model configured)",
                "enabled": True,
                "default": True,
                "multimodal": False,
                "react_agent": False,
                "supports_tools": False,
                "features": _features(tools=False),
            }
        ]
    listed: list[dict[str, Any]] = []
    for i, model in enumerate(settings.llm_models):
        entry: dict[str, Any] = {
            "base_name": model,
            "deployment_name": model,
            "label": model,
            "enabled": True,
            "default": i == 0,  # REPOLENS_LLM_MODEL; the others are REPOLENS_LLM_MODELS
            "multimodal": False,
            "react_agent": True,
            "supports_tools": True,
            "max_output_tokens": settings.llm_answer_tokens,
            "features": _features(tools=True),
        }
        if settings.llm_provider in PROVIDERS:
            entry["provider"] = PROVIDERS[settings.llm_provider]
        listed.append(entry)
    return listed


@router.get("/embeddings_models", summary="The embedding model indexes are built with")
def embeddings_models(services: ServicesDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    name = services.settings.embedder
    return [{"base_name": name, "deployment_name": name, "label": name, "enabled": True, "default": True}]


def _project_json(name: str, *, created_at: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": name,
        "description": "This server's organization",
        "project_type": "shared",
        "created_by": None,
        "user_count": 0,
        "admin_count": 0,
        "created_at": iso(created_at),
    }


@router.get("/projects", summary="The projects the caller belongs to")
def projects(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    names = projects_of(services.store, principal)
    items = [_project_json(n, created_at=None) for n in names]
    return {"data": items, "pagination": {"total": len(items), "page": 0, "per_page": max(1, len(items))}}


@router.get("/projects/{project_name}", summary="One project")
def project(
    project_name: Annotated[str, Path(max_length=200)], services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    name = require_project(services.store, principal, project_name)
    return {**_project_json(name, created_at=None), "members": []}


@router.get("/admin/applications", summary="The applications (projects) the caller belongs to")
def applications(
    services: ServicesDep, principal: PrincipalDep, search: Annotated[str | None, Query(max_length=200)] = None
) -> dict[str, Any]:
    names = [n for n in projects_of(services.store, principal) if not search or search.lower() in n.lower()]
    return {"applications": [{"name": n, "display_name": n} for n in names]}
