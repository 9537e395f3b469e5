"""Codeer's agents (``/api/v1/external/agents...``) over the core's assistants.

A Codeer agent is a core assistant (``agents/assistants.py``): the same one CodeMie's API lists
and calls. Codeer's fields map onto it:

* ``unified_tools`` of type ``knowledge_base`` (``knowledge_node_ids``) and ``tabular_data``
  (``knowledge_node_id``) put those knowledge bases' data sources in the assistant's context and
  give it the search tools over them; ``call_agent`` (``agent_id``) makes that agent a
  sub-assistant. Other tool types need services this server does not run (web search, image
  generation, payments, ...) and are refused with a clear error rather than stored unused.
* ``use_search: true`` gives it our read-only code tools over its context, or over every data
  source the caller's key sees when it has no knowledge-base tool.
* ``llm_model`` must be a model ``GET /api/v1/llm/models`` lists (error 10006 otherwise; the
  runtime's ``pick_model`` decides, as for CodeMie's assistants).
* ``suggested_questions`` are its conversation starters; everything else Codeer sends
  (``primary_object_ids``, ``attachment_ids``, ``human_handoff``, ``llm_model_settings``,
  the tools as written) is kept for the round trip.

Writes make versions: POST is version 1, a draft; PATCH replaces every field and adds a draft;
``versions/{id}:publish`` makes one the version chats run.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from repolens import knowledge
from repolens.access.keys import Principal
from repolens.agents import assistants as registry
from repolens.agents.assistants import Version
from repolens.agents.model import CODE_TOOLS, Assistant, Definition, Viewer
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.storage.base import Database
from repolens.surfaces.http.codeer.envelope import iso, ok
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/external/agents", tags=["codeer"])

MAX_TOOLS = 10  # Codeer's limit on an agent's unified tools
MAX_SUGGESTED_QUESTIONS = 3
MAX_SUGGESTED_QUESTION_CHARS = 200
SUPPORTED_TOOLS = ("knowledge_base", "tabular_data", "call_agent")
# What a knowledge-base tool lets the model do: find passages and read them.
KB_TOOLS = ("semantic_search", "grep_search", "fetch_artifacts", "read_file")
# Fields kept as Codeer sent them (the runtime never reads them).
KEPT = ("unified_tools", "primary_object_ids", "attachment_ids", "human_handoff", "llm_model_settings", "use_search")
AGENT_TYPE = "basic"
PRIVATE = "private"


class AgentIn(BaseModel):
    """Create and full-replacement update bodies (``version_note`` only on update)."""

    model_config = ConfigDict(extra="ignore", str_max_length=200_000)
    name: Any = None
    system_prompt: Any = ""
    description: Any = ""
    unified_tools: Any = None
    use_search: Any = False
    llm_model: Any = None
    llm_model_settings: Any = None
    suggested_questions: Any = None
    primary_object_ids: Any = None
    attachment_ids: Any = None
    human_handoff: Any = None
    version_note: Any = ""


def _strings(value: object, what: str, *, limit: int = 200) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{what} must be a list of at most {limit} strings")
    return list(value)


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    return value


def definition_of(db: Database, services: Services, principal: Principal, body: AgentIn) -> Definition:
    """The core definition for a Codeer agent body; every reference is checked against the key."""
    name = body.name
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required")
    tools = body.unified_tools if body.unified_tools is not None else []
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS or not all(isinstance(t, dict) for t in tools):
        raise InvalidInput(f"unified_tools must be a list of at most {MAX_TOOLS} objects")
    context: list[str] = []
    subs: list[str] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "knowledge_base":
            nodes = _strings(tool.get("knowledge_node_ids"), f"unified_tools[{i}].knowledge_node_ids")
            if not nodes:
                raise InvalidInput(f"unified_tools[{i}]: a knowledge_base tool needs knowledge_node_ids")
        elif kind == "tabular_data":
            node = tool.get("knowledge_node_id")
            if not isinstance(node, str) or not node:
                raise InvalidInput(f"unified_tools[{i}]: a tabular_data tool needs a knowledge_node_id")
            nodes = [node]
        elif kind == "call_agent":
            agent_id = tool.get("agent_id")
            if not isinstance(agent_id, str) or not agent_id:
                raise InvalidInput(f"unified_tools[{i}]: a call_agent tool needs an agent_id")
            subs.append(agent_id)
            continue
        else:
            raise InvalidInput(
                f"unified_tools[{i}].type {kind!r} is not served here; supported: {', '.join(SUPPORTED_TOOLS)}"
            )
        context.extend(knowledge.source_of(db, principal, node_id).name for node_id in nodes)
    use_search = body.use_search
    if not isinstance(use_search, bool):
        raise InvalidInput("use_search must be true or false")
    questions = _strings(body.suggested_questions, "suggested_questions", limit=MAX_SUGGESTED_QUESTIONS)
    if any(len(q) > MAX_SUGGESTED_QUESTION_CHARS for q in questions):
        raise InvalidInput(f"each suggested question must be at most {MAX_SUGGESTED_QUESTION_CHARS} characters")
    primary = body.primary_object_ids if body.primary_object_ids is not None else []
    if not isinstance(primary, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in primary):
        raise InvalidInput("primary_object_ids must be a list of integers")
    for key, value in (("human_handoff", body.human_handoff), ("llm_model_settings", body.llm_model_settings)):
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f"{key} must be an object")
    model = _text(body.llm_model, "llm_model")
    services.agents.pick_model(model)  # a model this server does not serve is refused now, not per turn
    code_tools: tuple[str, ...] = ()
    if use_search:
        code_tools = CODE_TOOLS
    elif context:
        code_tools = KB_TOOLS
    attributes = {
        "unified_tools": tools,
        "primary_object_ids": primary,
        "attachment_ids": _strings(body.attachment_ids, "attachment_ids"),
        "human_handoff": body.human_handoff,
        "llm_model_settings": body.llm_model_settings,
        "use_search": use_search,
        "workspace_id": knowledge.home_workspace(db, principal).public_id,
    }
    return Definition(
        name=name.strip(),
        description=_text(body.description, "description"),
        system_prompt=_text(body.system_prompt, "system_prompt"),
        model=model,
        context=tuple(dict.fromkeys(context)),
        tools=code_tools,
        sub_assistants=tuple(dict.fromkeys(subs)),
        conversation_starters=tuple(questions),
        attributes=attributes,
    )


def _writable(d: Definition) -> dict[str, Any]:
    """The fields a Codeer client writes, as it wrote them."""
    a = dict(d.attributes)
    return {
        "name": d.name,
        "description": d.description,
        "system_prompt": d.system_prompt,
        "unified_tools": list(a.get("unified_tools") or []),
        "use_search": bool(a.get("use_search", bool(d.tools))),
        "llm_model": d.model or None,
        "llm_model_settings": a.get("llm_model_settings"),
        "suggested_questions": list(d.conversation_starters),
        "primary_object_ids": list(a.get("primary_object_ids") or []),
        "attachment_ids": list(a.get("attachment_ids") or []),
        "human_handoff": a.get("human_handoff"),
    }


def _workspace(db: Database, assistant: Assistant) -> dict[str, Any]:
    wanted = str(assistant.definition.attributes.get("workspace_id") or "")
    found = db.get_workspace(wanted) if wanted else knowledge.default_workspace(db)
    return {"id": found.public_id, "name": found.name} if found else {"id": wanted, "name": None}


def agent_json(db: Database, assistant: Assistant, history: list[Version]) -> dict[str, Any]:
    """An agent as Codeer shows it, with its version numbers."""
    live = next((v for v in history if v.status == "published"), None)
    latest = max((v.number for v in history), default=assistant.version)
    workspace = _workspace(db, assistant)
    fields = _writable(assistant.definition)
    return {
        "id": assistant.id,
        **fields,
        "workspace_id": workspace["id"],
        "workspace": workspace,
        "publish_state": PRIVATE,
        "agent_type": AGENT_TYPE,
        "version": latest,
        "latest_version_number": latest,
        "published_version_number": live.number if live else None,
        "publish_history_id": live.id if live else None,
        "published_history_id": live.id if live else None,
        "is_published": live is not None,
        "meta": {"human_handoff": fields["human_handoff"]},
        "created_by": assistant.owner_name or assistant.owner,
        "created_at": iso(assistant.created_at),
        "updated_at": iso(assistant.updated_at),
    }


def version_json(v: Version, *, snapshot: bool) -> dict[str, Any]:
    """A version as Codeer lists it; ``snapshot`` adds the fields it stored."""
    row: dict[str, Any] = {
        "id": v.id,
        "agent_id": v.assistant_id,
        "version_number": v.number,
        "status": v.status,
        "was_published": v.was_published,
        "version_note": v.note,
        "created_at": iso(v.created_at),
        "published_at": iso(v.published_at),
    }
    if snapshot:
        fields = _writable(v.definition)
        row.update(fields)
        row["attachments"] = [{"id": a} for a in fields["attachment_ids"]]
        row["meta"] = {
            "human_handoff": fields["human_handoff"],
            "primary_objects_info": [{"id": p} for p in fields["primary_object_ids"]],
        }
    return row


def _viewer(services: Services, principal: Principal) -> Viewer:
    return registry.viewer_for(services.store, principal)


def _agents_json(services: Services, principal: Principal, *, published_only: bool) -> list[dict[str, Any]]:
    db = services.store
    viewer = _viewer(services, principal)
    out = []
    for a in registry.list_visible(db, viewer, principal):
        history = registry.versions(db, viewer, principal, a.id)
        if published_only and not any(v.status == "published" for v in history):
            continue
        out.append(agent_json(db, a, history))
    return out


def _one(services: Services, principal: Principal, agent_id: str) -> dict[str, Any]:
    db = services.store
    viewer = _viewer(services, principal)
    found = registry.get(db, viewer, principal, agent_id)
    return agent_json(db, found, registry.versions(db, viewer, principal, found.id))


@router.get("/all", summary="Every agent the key sees, drafts included")
async def list_all(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(await anyio.to_thread.run_sync(lambda: _agents_json(services, principal, published_only=False)))


@router.get("", summary="The agents with a published version")
async def list_published(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(await anyio.to_thread.run_sync(lambda: _agents_json(services, principal, published_only=True)))


@router.post("", summary="Create an agent (version 1, a draft)")
async def create_agent(body: AgentIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        db = services.store
        definition = definition_of(db, services, principal, body)
        made = registry.create(db, _viewer(services, principal), principal, definition, publish=False, note="created")
        return _one(services, principal, made.id)

    return ok(await anyio.to_thread.run_sync(run))


@router.get("/{agent_id}", summary="An agent")
async def get_agent(agent_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(await anyio.to_thread.run_sync(_one, services, principal, agent_id))


@router.patch("/{agent_id}", summary="Replace every field of an agent: a new draft version")
async def update_agent(agent_id: str, body: AgentIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    note = _text(body.version_note, "version_note")

    def run() -> dict[str, Any]:
        db = services.store
        definition = definition_of(db, services, principal, body)
        viewer = _viewer(services, principal)
        registry.update(db, viewer, principal, agent_id, definition, publish=False, note=note)
        return _one(services, principal, agent_id)

    return ok(await anyio.to_thread.run_sync(run))


@router.get("/{agent_id}/versions", summary="An agent's versions, newest first")
async def list_versions(agent_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = _viewer(services, principal)
    found = await anyio.to_thread.run_sync(registry.versions, services.store, viewer, principal, agent_id)
    return ok([version_json(v, snapshot=False) for v in found])


@router.get("/{agent_id}/versions/{history_id}", summary="One version with the fields it stored")
async def get_version(agent_id: str, history_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = _viewer(services, principal)
    found = await anyio.to_thread.run_sync(registry.version, services.store, viewer, principal, agent_id, history_id)
    return ok(version_json(found, snapshot=True))


@router.post("/{agent_id}/versions/{history_id}:publish", summary="Make a version the one chats run")
async def publish_version(agent_id: str, history_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = _viewer(services, principal)
    done = await anyio.to_thread.run_sync(registry.publish, services.store, viewer, principal, agent_id, history_id)
    return ok({**version_json(done, snapshot=False), "published": True})


@router.get("/{agent_id}/impact", summary="The agents that call this one")
async def impact(agent_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = _viewer(services, principal)
    found = await anyio.to_thread.run_sync(registry.callers, services.store, viewer, principal, agent_id)
    return ok(
        {
            "agent_id": agent_id,
            "downstream_agents": [{"id": a.id, "name": a.name} for a in found],
            "downstream_count": len(found),
        }
    )
