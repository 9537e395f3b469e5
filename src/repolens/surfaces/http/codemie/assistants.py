"""CodeMie's assistants: CRUD, the tools catalog, context, and calling one (sync, NDJSON, background).

Wire shapes follow what ``codemie-sdk-python`` 0.1.703 sends and parses (specs/clients.md §3.1,
specs/codemie_codeer.md §1.3-1.6): snake_case request bodies with extra fields ignored, the
exact success messages, ``assistantId``/``timeElapsed``/``taskId`` camel keys in the chat
response, and a stream of newline-delimited JSON chunks (no SSE framing) ending with a
``last: true`` chunk that carries the whole ``generated`` text. Everything else is the core's:
``agents/assistants.py`` decides visibility, ``agents/runtime.py`` runs the turn.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from repolens import catalog, tools, uploads
from repolens.access.keys import Principal
from repolens.agents import assistants as registry
from repolens.agents.mcp import forwardable_headers
from repolens.agents.model import CODE_TOOLS, Assistant, Definition, McpServer, PromptVariable, Viewer, validate
from repolens.agents.runtime import (
    MAX_TURN_CHARS,
    Attachment,
    ThoughtChanged,
    Token,
    TurnEvent,
    TurnFinished,
    TurnRequest,
    TurnStarted,
)
from repolens.chat.llm import ChatMessage
from repolens.errors import BodyTooLarge, InvalidInput, RepolensError, status_of
from repolens.services import Services
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso

router = APIRouter()  # included under /code-assistant-api/v1 by codemie/routes.py

TOOLKIT = "Code"  # the one toolkit: repolens's read-only code tools
TOOLKIT_LABEL = "Code search (repolens)"
DEFAULT_PROJECT = "demo"  # CodeMie's default project name
MAX_PER_PAGE = 200  # clients look a new assistant up by name in lists of up to 200
# ``filters`` is a small JSON object (a search word, a few project names); the bound keeps the URL
# under the HTTP parser's 80 KB limit even percent-encoded, so an oversized one is this route's 422
# rather than a parser error (as codemie/datasources.py bounds its own).
MAX_FILTERS_CHARS = 2_000
NDJSON = "application/x-ndjson"
MAX_FILES = 20  # files on one turn, as CodeMie caps ``file_names``
SAVED, UPDATED, REMOVED = "Specified assistant saved", "Specified assistant updated", "Specified assistant removed"
BACKGROUND_MESSAGE = "Task is running in the background"
# A turn stopped by a budget (``TurnFinished.stopped``) as CodeMie's ``ErrorCode`` names it: its
# own time and token limits, and the generic budget code for our cap on model calls.
BUDGET_ERROR_CODES = {"time": "agent_timeout", "tokens": "agent_token_limit", "steps": "agent_budget_exceeded"}
# Fields CodeMie clients send that the runtime does not use; kept for the round trip.
ATTRIBUTE_FIELDS = (
    "icon_url",
    "categories",
    "is_react",
    "is_global",
    "type",
    "custom_metadata",
    "skill_ids",
    "agent_mode",
    "plan_prompt",
    "smart_tool_selection_enabled",
    "enabled_builtin_subagents",
    "tool_permissions",
)
MASKED = "********"
_CALL_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer: JSON, or newline-delimited JSON chunks with `stream: true`.",
        "content": {"application/json": {"schema": {"type": "object"}}, NDJSON: {"schema": {"type": "string"}}},
    }
}  # header values of another owner's MCP server are not shown


# -- request bodies ------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ContextBody(_Body):
    context_type: str = "code"
    name: str = Field(min_length=1, max_length=4096)


class ToolBody(_Body):
    name: str = Field(min_length=1, max_length=200)


class ToolkitBody(_Body):
    toolkit: str = Field(max_length=200)
    tools: list[ToolBody] = []


class McpConfigBody(_Body):
    url: str | None = Field(None, max_length=4096)
    headers: dict[str, str] | None = None
    command: str | None = Field(None, max_length=4096)
    args: list[str] | None = None
    env: dict[str, Any] | None = None
    type: str | None = None
    tools: list[str] | None = None


class McpServerBody(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    enabled: bool = True
    config: McpConfigBody | None = None
    mcp_connect_url: str | None = Field(None, max_length=4096)
    command: str | None = Field(None, max_length=4096)
    arguments: str | None = Field(None, max_length=4096)
    tools: list[str] | None = None


class PromptVariableBody(_Body):
    key: str = Field(min_length=1, max_length=200)
    description: str | None = None
    default_value: str = ""
    is_sensitive: bool = False


class DefinitionBody(_Body):
    """What an assistant is made of (create, update, and the inline part of a virtual call)."""

    description: str = ""
    system_prompt: str = ""
    llm_model_type: str | None = Field(None, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    tools_tokens_size_limit: int | None = Field(None, ge=100, le=1_000_000)
    context: list[ContextBody] = []
    toolkits: list[ToolkitBody] = []
    mcp_servers: list[McpServerBody] = []
    assistant_ids: list[str] = []
    prompt_variables: list[PromptVariableBody] = []
    conversation_starters: list[str] = []


class AssistantBody(DefinitionBody):
    """``AssistantCreateRequest`` / ``AssistantUpdateRequest``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    project: str = Field(DEFAULT_PROJECT, max_length=200)
    slug: str | None = Field(None, max_length=200)
    shared: bool = True


class HistoryItemBody(_Body):
    role: Literal["User", "Assistant", "user", "assistant"]
    message: str = ""


class ChatBody(_Body):
    """``AssistantChatRequest`` (camel aliases accepted, as CodeMie's own model does)."""

    text: str = ""
    conversation_id: str | None = Field(
        None, max_length=100, validation_alias=AliasChoices("conversation_id", "conversationId")
    )
    history: list[HistoryItemBody] | str = []
    llm_model: str | None = Field(None, validation_alias=AliasChoices("llm_model", "llmModel"))
    stream: bool = False
    system_prompt: str = Field("", max_length=100_000)
    background_task: bool = False
    save_history: bool = True
    propagate_headers: bool = False
    content_raw: str = ""
    file_names: list[str] = Field([], max_length=MAX_FILES)
    top_k: int = 10
    metadata: dict[str, Any] | None = None
    history_index: int | None = Field(None, ge=0)
    output_schema: dict[str, Any] | None = None


class VirtualChatBody(ChatBody, DefinitionBody):
    """``VirtualAssistantChatRequest``: the chat fields and an inline definition."""

    save_history: bool = False


# -- conversions ---------------------------------------------------------------------------------


def _mcp_server(body: McpServerBody) -> McpServer:
    config = body.config or McpConfigBody.model_validate({})
    url = config.url or body.mcp_connect_url or ""
    command = config.command or body.command or ""
    args = tuple(config.args or ()) or tuple((body.arguments or "").split())
    env = {k: str(v) for k, v in (config.env or {}).items()}
    return McpServer(
        name=body.name,
        url=url,
        headers=dict(config.headers or {}),
        command=command,
        args=args,
        env=env,
        tools=tuple(body.tools or config.tools or ()),
        enabled=body.enabled,
    )


def _tool_names(toolkits: list[ToolkitBody]) -> tuple[str, ...]:
    names = [tool.name for kit in toolkits for tool in kit.tools]
    return tuple(dict.fromkeys(names))


def definition_of(body: DefinitionBody, *, name: str, project: str, slug: str | None, shared: bool) -> Definition:
    """The core definition for a CodeMie body."""
    extras = body.model_extra or {}
    return Definition(
        name=name,
        description=body.description,
        system_prompt=body.system_prompt,
        project=project,
        slug=slug or "",
        model=body.llm_model_type or "",
        temperature=body.temperature,
        top_p=body.top_p,
        tool_output_tokens=body.tools_tokens_size_limit,
        context=tuple(c.name for c in body.context),
        tools=_tool_names(body.toolkits),
        mcp_servers=tuple(_mcp_server(s) for s in body.mcp_servers),
        sub_assistants=tuple(body.assistant_ids),
        prompt_variables=tuple(
            PromptVariable(v.key, v.description or "", v.default_value, v.is_sensitive) for v in body.prompt_variables
        ),
        conversation_starters=tuple(body.conversation_starters),
        shared=shared,
        attributes={k: extras[k] for k in ATTRIBUTE_FIELDS if k in extras},
    )


def _user(owner: str, name: str) -> dict[str, str]:
    return {"id": owner, "username": name or owner, "name": name or owner}


def _may_change(viewer: Viewer, assistant: Assistant) -> bool:
    return assistant.owner == viewer.owner or viewer.admin


def _tool_details(name: str) -> dict[str, Any]:
    tool = tools.TOOLS[name]
    return {"name": name, "label": tool.title, "settings_config": False, "user_description": None}


def _mcp_details(server: McpServer, *, masked: bool) -> dict[str, Any]:
    headers = {k: (MASKED if masked else v) for k, v in server.headers.items()}
    env = {k: (MASKED if masked else v) for k, v in server.env.items()}
    return {
        "name": server.name,
        "description": None,
        "enabled": server.enabled,
        "config": {
            "url": server.url or None,
            "headers": headers,
            "command": server.command or None,
            "args": list(server.args),
            "env": env,
            "type": "streamable-http" if server.url else None,
            "tools": list(server.tools) or None,
        },
        "tools": list(server.tools) or None,
    }


def assistant_json(assistant: Assistant, viewer: Viewer, *, minimal: bool = False) -> dict[str, Any]:
    """An assistant as CodeMie's ``Assistant`` (or ``AssistantBase`` when minimal)."""
    d = assistant.definition
    attributes = dict(d.attributes)
    base = {
        "id": assistant.id,
        "name": d.name,
        "description": d.description,
        "icon_url": attributes.get("icon_url"),
        "created_by": _user(assistant.owner, assistant.owner_name),
        "slug": d.slug,
        "project": d.project,
    }
    if minimal:
        return base
    owner_view = _may_change(viewer, assistant)
    return {
        **base,
        "system_prompt": d.system_prompt,
        "llm_model_type": d.model or None,
        "temperature": d.temperature,
        "top_p": d.top_p,
        "tools_tokens_size_limit": d.tool_output_tokens,
        "context": [{"context_type": "code", "name": name} for name in d.context],
        "toolkits": (
            [
                {
                    "toolkit": TOOLKIT,
                    "tools": [_tool_details(t) for t in d.tools],
                    "label": TOOLKIT_LABEL,
                    "settings_config": False,
                    "is_external": False,
                    "settings": None,
                }
            ]
            if d.tools
            else []
        ),
        "mcp_servers": [_mcp_details(s, masked=not owner_view) for s in d.mcp_servers],
        "assistant_ids": list(d.sub_assistants),
        "nested_assistants": [],
        "conversation_starters": list(d.conversation_starters),
        "prompt_variables": [
            {"key": v.key, "description": v.description, "default_value": "" if v.sensitive else v.default_value}
            for v in d.prompt_variables
        ],
        "shared": d.shared,
        "is_react": bool(attributes.get("is_react", True)),
        "is_global": bool(attributes.get("is_global", False)),
        "categories": list(attributes.get("categories") or []),
        "type": attributes.get("type") or "codemie",
        "creator": assistant.owner_name or assistant.owner,
        "created_date": iso(assistant.created_at),
        "updated_date": iso(assistant.updated_at),
        "version_count": assistant.version,
        "system_prompt_history": [],
        "user_abilities": ["read", "write", "delete"] if owner_view else ["read"],
        "enabled_builtin_subagents": list(attributes.get("enabled_builtin_subagents") or []),
        "skill_ids": list(attributes.get("skill_ids") or []),
        "unique_users_count": 0,
        "unique_likes_count": 0,
        "unique_dislikes_count": 0,
    }


def thought_json(thought: dict[str, Any]) -> dict[str, Any]:
    """A core thought as CodeMie's (``output_format`` added, children recursively)."""
    out = {k: v for k, v in thought.items() if k != "children"}
    out["output_format"] = "text"
    out["children"] = [thought_json(c) for c in thought.get("children", [])]
    return out


# -- dependencies ---------------------------------------------------------------------------


def viewer_of(services: Services, principal: Principal) -> Viewer:
    """The caller as the assistant registry sees it."""
    return registry.viewer_for(services.store, principal)


def _json_filters(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise InvalidInput('filters must be a JSON object, e.g. {"search": "helper"}') from None
    if not isinstance(parsed, dict):
        raise InvalidInput('filters must be a JSON object, e.g. {"search": "helper"}')
    return parsed


def _matches(assistant: Assistant, filters: dict[str, Any]) -> bool:
    d = assistant.definition
    search = str(filters.get("search") or filters.get("name") or "").strip().lower()
    if search and search not in d.name.lower() and search not in d.description.lower():
        return False
    projects = filters.get("project")
    if projects:
        wanted = {projects} if isinstance(projects, str) else {str(p) for p in projects}
        if d.project not in wanted:
            return False
    created_by = str(filters.get("created_by") or "").strip()
    if created_by and created_by not in (assistant.owner_name, assistant.owner):
        return False
    shared = filters.get("shared")
    return shared is None or bool(shared) == d.shared


# -- CRUD ----------------------------------------------------------------------------------------


# CodeMie's list scopes. This server has no marketplace and no templates, so those list nothing;
# ``project_with_marketplace`` and ``all`` are then what the caller may see, like the default.
ListScope = Literal["visible_to_user", "created_by_user", "marketplace", "project_with_marketplace", "all", "templates"]
EMPTY_SCOPES = frozenset({"marketplace", "templates"})
SortField = Literal["usage", "likes", "dislikes", "name", "date", "update_date"]
# What each ``sort_by`` orders by. Usage and likes are not counted here (every assistant reports
# 0), so ordering by them keeps the default order, newest change first; Python's sort is stable.
SORT_KEYS: dict[str, Callable[[Assistant], Any]] = {
    "name": lambda a: a.definition.name.lower(),
    "date": lambda a: a.created_at,
    "update_date": lambda a: a.updated_at,
    "usage": lambda a: 0,
    "likes": lambda a: 0,
    "dislikes": lambda a: 0,
}


@router.get("/assistants", summary="List assistants")
async def list_assistants(
    services: ServicesDep,
    principal: PrincipalDep,
    scope: ListScope = "visible_to_user",
    minimal_response: bool = False,
    filters: str | None = Query(None, max_length=MAX_FILTERS_CHARS),
    page: Annotated[int, Query(ge=0)] = 0,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 12,
    sort_by: SortField | None = None,
    sort_order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    wanted = _json_filters(filters)
    viewer = viewer_of(services, principal)
    if scope in EMPTY_SCOPES:
        found: list[Assistant] = []
    else:
        mine = scope == "created_by_user"
        found = await anyio.to_thread.run_sync(
            lambda: registry.list_visible(services.store, viewer, principal, mine_only=mine)
        )
    found = [a for a in found if _matches(a, wanted)]
    if sort_by is not None:
        found.sort(key=SORT_KEYS[sort_by], reverse=sort_order == "desc")
    total = len(found)
    window = found[page * per_page : (page + 1) * per_page]
    return {
        "data": [assistant_json(a, viewer, minimal=minimal_response) for a in window],
        "pagination": {"page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page)},
    }


@router.get("/assistants/tools", summary="The tools an assistant may be given")
async def toolkits(principal: PrincipalDep) -> list[dict[str, Any]]:
    return [
        {
            "toolkit": TOOLKIT,
            "label": TOOLKIT_LABEL,
            "tools": [{**_tool_details(n), "description": tools.TOOLS[n].description} for n in CODE_TOOLS],
            "settings_config": False,
            "is_external": False,
            "settings": None,
        }
    ]


@router.get("/assistants/context", summary="The data sources an assistant may search")
async def context(services: ServicesDep, principal: PrincipalDep, project_name: str = "") -> list[dict[str, Any]]:
    found = await anyio.to_thread.run_sync(lambda: catalog.list_data_sources(services.store, principal))
    return [{"name": d.name, "context_type": "code", "id": d.public_id} for d in found]


@router.get("/assistants/prebuilt", summary="Templates (none on this server)")
async def prebuilt(principal: PrincipalDep) -> list[dict[str, Any]]:
    return []


@router.get("/assistants/id/{assistant_id}", summary="An assistant by id")
async def get_assistant(assistant_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    found = await anyio.to_thread.run_sync(registry.get, services.store, viewer, principal, assistant_id)
    return assistant_json(found, viewer)


@router.get("/assistants/slug/{slug}", summary="An assistant by slug")
async def get_by_slug(
    slug: str, services: ServicesDep, principal: PrincipalDep, project: str | None = None
) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    found = await anyio.to_thread.run_sync(registry.by_slug, services.store, viewer, principal, slug, project)
    return assistant_json(found, viewer)


def _definition(body: AssistantBody, services: Services) -> Definition:
    definition = definition_of(body, name=body.name, project=body.project, slug=body.slug, shared=body.shared)
    services.agents.pick_model(definition.model)  # a model this server does not serve is refused now, not per turn
    return definition


@router.post("/assistants", summary="Create an assistant")
async def create_assistant(body: AssistantBody, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    made = await anyio.to_thread.run_sync(registry.create, services.store, viewer, principal, _definition(body, services))
    return {"message": SAVED, "assistantId": made.id, "validation": None}


@router.put("/assistants/{assistant_id}", summary="Replace an assistant")
async def update_assistant(
    assistant_id: str, body: AssistantBody, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    await anyio.to_thread.run_sync(
        registry.update, services.store, viewer, principal, assistant_id, _definition(body, services)
    )
    return {"message": UPDATED, "validation": None}


@router.delete("/assistants/{assistant_id}", summary="Delete an assistant")
async def delete_assistant(assistant_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    await anyio.to_thread.run_sync(registry.delete, services.store, viewer, principal, assistant_id)
    return {"message": REMOVED}


# -- calling -------------------------------------------------------------------------------------


def _attachments(services: Services, principal: Principal, names: list[str]) -> tuple[Attachment, ...]:
    """The files a turn names (uploaded with ``POST /v1/files/``), read as text."""
    found = [uploads.fetch(services.store, principal, name) for name in dict.fromkeys(names)]
    return tuple(Attachment(row.name, uploads.text_of(row)) for row in found)


async def _turn(request: Request, body: ChatBody, services: Services, principal: Principal) -> TurnRequest:
    if len(body.text) > MAX_TURN_CHARS:
        raise BodyTooLarge(f"text is over {MAX_TURN_CHARS} characters; send less at once")
    if not body.text.strip():
        raise InvalidInput("text (the message to the assistant) is required")
    history: tuple[ChatMessage, ...] = ()
    if isinstance(body.history, list):
        history = tuple(
            ChatMessage("user" if h.role.lower() == "user" else "assistant", h.message)
            for h in body.history
            if h.message.strip()
        )
    forwarded: dict[str, str] = {}
    if body.propagate_headers:
        forwarded = forwardable_headers(request.headers.items(), services.settings.forwarded_headers_blocklist)
    attachments: tuple[Attachment, ...] = ()
    if body.file_names:
        attachments = await anyio.to_thread.run_sync(_attachments, services, principal, body.file_names)
    return TurnRequest(
        text=body.text,
        conversation_id=body.conversation_id or None,
        history=history,
        remember=body.save_history,
        forwarded_headers=forwarded,
        system_prompt=body.system_prompt,
        model=body.llm_model or "",
        attachments=attachments,
        output_schema=body.output_schema,
        history_index=body.history_index,
    )


def _generated(finished: TurnFinished) -> Any:
    """The answer as CodeMie returns it: the parsed object when an ``output_schema`` was met."""
    return finished.structured if finished.structured is not None else finished.answer


def _agent_error(finished: TurnFinished) -> dict[str, Any] | None:
    """CodeMie's ``AgentErrorDetails`` of a turn: a budget that ran out, or an answer that did not
    match its ``output_schema``; None for a turn that succeeded."""
    if finished.stopped:
        return {
            "error_code": BUDGET_ERROR_CODES[finished.stopped],
            "message": finished.stop_note,
            "details": {"budget": finished.stopped},
        }
    if finished.output_error:
        return {"error_code": "validation_output", "message": finished.output_error, "details": None}
    return None


def _succeeded(finished: TurnFinished) -> bool:
    return not finished.stopped and not finished.output_error


def _result(finished: TurnFinished, include_tool_errors: bool) -> dict[str, Any]:
    return {
        "generated": _generated(finished),
        "timeElapsed": finished.elapsed_s,
        "tokensUsed": finished.prompt_tokens + finished.completion_tokens,
        "thoughts": [thought_json(t) for t in finished.thoughts],
        "taskId": None,
        "success": _succeeded(finished),
        "agentError": _agent_error(finished),
        "toolErrors": _tool_errors(finished) if include_tool_errors else None,
        "conversationId": finished.conversation_id,
    }


def _tool_errors(finished: TurnFinished) -> list[dict[str, Any]]:
    return [
        {
            "error_code": f.code,
            "message": f.message,
            "details": {},
            "tool_name": f.tool,
            "tool_call_id": f.call_id,
            "http_status": None,
            "timestamp": None,
        }
        for f in finished.tool_failures
    ]


def _line(chunk: dict[str, Any]) -> bytes:
    return (json.dumps(chunk, ensure_ascii=False) + "\n").encode()


def _chunk(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "generated_chunk": None,
        "generated": None,
        "thought": None,
        "context": None,
        "last": False,
        "time_elapsed": None,
        "debug": None,
        "execution_error": None,
    }
    return {**base, **fields}


async def _ndjson(first: TurnStarted, events: AsyncIterator[TurnEvent], include_tool_errors: bool) -> AsyncIterator[bytes]:
    """The stream as CodeMie sends it: token chunks, thought chunks, a final ``last`` chunk."""
    try:
        async for event in events:
            if isinstance(event, Token):
                yield _line(_chunk(generated_chunk=event.text))
            elif isinstance(event, ThoughtChanged):
                yield _line(_chunk(thought=thought_json({**event.thought, "children": []})))
            elif isinstance(event, TurnFinished):
                yield _line(
                    _chunk(
                        generated=_generated(event),
                        generated_chunk="",
                        last=True,
                        time_elapsed=event.elapsed_s,
                        debug={"conversation_id": first.conversation_id, "mode": event.mode},
                        success=_succeeded(event),
                        execution_error=event.output_error or None,
                        agent_error=_agent_error(event),
                    )
                )
                if include_tool_errors:
                    yield _line(
                        {
                            "last": True,
                            "success": _succeeded(event),
                            "agent_error": _agent_error(event),
                            "tool_errors": _tool_errors(event),
                            "time_elapsed": event.elapsed_s,
                        }
                    )
    except RepolensError as exc:  # after the stream started: the last chunk says what failed
        yield _line(_chunk(generated="", last=True, success=False, execution_error=str(exc), status=status_of(exc)))


async def _respond(
    request: Request,
    services: Services,
    principal: Principal,
    viewer: Viewer,
    assistant: Assistant,
    body: ChatBody,
    include_tool_errors: bool,
) -> Any:
    turn = await _turn(request, body, services, principal)
    loader = registry.sub_loader(services.store, viewer, principal)
    if body.background_task:
        task = registry.start_task(services, viewer, principal, assistant, turn)
        return {"generated": BACKGROUND_MESSAGE, "timeElapsed": 0, "taskId": task.public_id, "success": True}
    events = services.agents.run(principal, viewer.owner, assistant, turn, load_assistant=loader)
    # Everything that can refuse the turn (scope, conversation, size) fails on the first event,
    # while an ordinary HTTP error can still be sent.
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    assert isinstance(first, TurnStarted)
    if body.stream:

        async def stream() -> AsyncIterator[bytes]:
            async with contextlib.aclosing(events):
                async for line in _ndjson(first, events, include_tool_errors):
                    yield line

        return StreamingResponse(stream(), media_type=NDJSON, headers={"Cache-Control": "no-cache"})
    finished: TurnFinished | None = None
    async with contextlib.aclosing(events) as rest:
        async for event in rest:
            if isinstance(event, TurnFinished):
                finished = event
    assert finished is not None
    return JSONResponse(_result(finished, include_tool_errors))


@router.post("/assistants/virtual/model", summary="Call an inline assistant (never stored)", responses=_CALL_DOC)
async def ask_virtual(
    body: VirtualChatBody,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    include_tool_errors: bool = False,
) -> Any:
    viewer = viewer_of(services, principal)
    definition = validate(definition_of(body, name="Virtual assistant", project="", slug="virtual", shared=False))
    await anyio.to_thread.run_sync(lambda: catalog.resolve_scope(services.store, principal, list(definition.context)))
    virtual = Assistant(
        id="virtual",
        organization=viewer.organization,
        owner=viewer.owner,
        owner_name=viewer.name,
        definition=definition,
        created_at=0.0,
        updated_at=0.0,
    )
    body.save_history = False  # a virtual assistant's turns are never kept
    return await _respond(request, services, principal, viewer, virtual, body, include_tool_errors)


@router.post("/assistants/slug/{slug}/model", summary="Call an assistant by slug", responses=_CALL_DOC)
async def chat_by_slug(
    slug: str,
    body: ChatBody,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    include_tool_errors: bool = False,
) -> Any:
    viewer = viewer_of(services, principal)
    found = await anyio.to_thread.run_sync(registry.by_slug, services.store, viewer, principal, slug, None)
    return await _respond(request, services, principal, viewer, found, body, include_tool_errors)


@router.post("/assistants/{assistant_id}/model", summary="Call an assistant", responses=_CALL_DOC)
@router.post(
    "/assistants/{assistant_id}/chat", summary="Call an assistant (the docs' spelling of /model)", responses=_CALL_DOC
)
async def chat(
    assistant_id: str,
    body: ChatBody,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    include_tool_errors: bool = False,
) -> Any:
    viewer = viewer_of(services, principal)
    found = await anyio.to_thread.run_sync(registry.get, services.store, viewer, principal, assistant_id)
    return await _respond(request, services, principal, viewer, found, body, include_tool_errors)
