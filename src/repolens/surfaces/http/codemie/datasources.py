"""CodeMie's code datasources (``/v1/application/{project}/index``, ``/v1/index``) over our
repositories and their indexing jobs.

A CodeMie code datasource is one of our repositories: created from a git URL (or a folder under
an allowed root), indexed by a queued job, listed at once under its name (CodeMie's create
answers with a message and no id, so clients find the new datasource by name). The SDK computes
a datasource's status from flags: ``error`` -> failed, else ``completed``, else ``is_fetching``
-> fetching, else in progress. Creating, updating and deleting need an admin, as for our own
data source routes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from repolens import catalog
from repolens.access.identity import projects_of, require_project
from repolens.access.keys import Principal
from repolens.domain import Job, Source
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso

router = APIRouter()

CODE = "code"
FETCH_PHASE = "fetch"  # the job phase that clones or pulls (indexing/jobs.py PHASE_WEIGHTS)
MAX_PER_PAGE = 1_000
# The filter keys the SDK and the datasources MCP server send (specs/clients.md §3.4).
FILTER_KEYS = frozenset({"index_type", "project", "status", "created_by", "name", "search"})
STATUSES = ("completed", "failed", "fetching", "in_progress")
# The longest JSON ``filters`` a client sends is a few lists of names; the bound keeps a URL well
# under the HTTP parser's 80 KB limit, so an oversized one is this route's 422, not a parser error.
MAX_FILTERS_CHARS = 2_000
MAX_ID_CHARS = 200  # a datasource id (24 hex) or name (sources/naming.py caps names at 100)
IdPath = Annotated[str, Path(max_length=MAX_ID_CHARS)]


class CodeIndexIn(BaseModel):
    """A code datasource as the SDK posts it: camelCase and snake_case both accepted, and the
    visibility flag under both names (it sends it twice)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    name: str = Field(min_length=1, max_length=50)
    description: str = Field("", max_length=500)
    link: str = Field(min_length=1, max_length=1000)
    branch: str | None = Field(None, max_length=255)
    index_type: Literal["code", "summary", "chunk-summary"] = Field("code", alias="indexType")
    files_filter: str | None = Field("", alias="filesFilter", max_length=10_000)
    embeddings_model: str | None = Field(None, alias="embeddingsModel", max_length=200)
    summarization_model: str | None = Field(None, alias="summarizationModel", max_length=200)
    prompt: str | None = Field(None, max_length=10_000)
    docs_generation: bool = Field(False, alias="docsGeneration")
    project_space_visible: bool = Field(True, validation_alias=AliasChoices("projectSpaceVisible", "project_space_visible"))
    setting_id: str | None = Field(None, validation_alias=AliasChoices("settingId", "setting_id"), max_length=200)
    cron_expression: str | None = Field(None, max_length=200)


def _refuse_unsupported(body: CodeIndexIn, services: Services) -> None:
    """Options CodeMie has that we cannot honour: refused by name, never silently dropped."""
    if body.index_type != CODE:
        raise InvalidInput(f"indexType {body.index_type!r} is not supported; use 'code' (symbols, chunks and vectors)")
    if (body.files_filter or "").strip():
        raise InvalidInput("filesFilter is not supported; list paths to skip in a .repolensignore in the repository")
    embedder = services.settings.embedder
    if body.embeddings_model and body.embeddings_model != embedder:
        raise InvalidInput(
            f"embeddingsModel {body.embeddings_model!r} is not available; this server embeds with {embedder!r}"
        )
    if body.docs_generation:
        raise InvalidInput("docsGeneration is not supported")
    if body.setting_id:
        raise InvalidInput("git integrations (settingId) are not supported; the server's own git credentials are used")
    if body.cron_expression:
        raise InvalidInput("scheduled re-indexing (cron_expression) is not supported; update the datasource to re-index")


def _location(link: str) -> dict[str, str]:
    """``url=`` for a git URL, ``path=`` for a folder (``file://`` or absolute)."""
    link = link.strip()
    if link.startswith("file://"):
        return {"path": link.removeprefix("file://")}
    if link.startswith("/"):
        return {"path": link}
    return {"url": link}


def _creator(services: Services) -> dict[str, str]:
    # Repositories do not record who created them; the organization stands in as their owner.
    org_id, org_name, _ = services.store.organization("default")
    return {"id": org_id, "username": org_name, "name": org_name}


def _flags(source: Source, job: Job | None) -> dict[str, Any]:
    running = job is not None and job.state in ("New", "Processing")
    return {
        "error": source.state == "Failed" and not running,
        "completed": source.state == "Ready" and not running,
        "is_fetching": bool(running and job is not None and job.state == "Processing" and job.phase == FETCH_PHASE),
        "is_queued": bool(running and job is not None and job.state == "New"),
    }


def _status(flags: dict[str, Any]) -> str:
    """The status the SDK derives from the flags (for the ``status`` filter)."""
    if flags["error"]:
        return "failed"
    if flags["completed"]:
        return "completed"
    return "fetching" if flags["is_fetching"] else "in_progress"


def _updated(source: Source, job: Job | None) -> float:
    times = [source.created_at, source.indexed_at or 0.0]
    if job is not None:
        times += [job.created_at, job.finished_at or 0.0, job.heartbeat_at or 0.0]
    return max(times)


def _datasource_json(services: Services, principal: Principal, source: Source, project: str) -> dict[str, Any]:
    jobs = services.store.jobs_for_source(source.id, limit=1)
    job = jobs[0] if jobs else None
    flags = _flags(source, job)
    failed_reason = (job.reason if job is not None and job.reason else source.state_reason) if flags["error"] else None
    return {
        "id": source.public_id,
        "project_name": project,
        "repo_name": source.name,
        "description": source.description,
        "index_type": CODE,
        "link": source.location,
        "branch": source.branch,
        "files_filter": "",
        "embeddings_model": services.settings.embedder,
        "summarization_model": None,
        "prompt": None,
        "docs_generation": False,
        "setting_id": None,
        "cron_expression": None,
        "date": iso(source.created_at),
        "update_date": iso(_updated(source, job)),
        "created_by": _creator(services),
        "project_space_visible": True,
        "text": failed_reason,
        **flags,
        "current_state": job.done if job is not None else source.file_count,
        "complete_state": job.total if job is not None else source.file_count,
        "processing_info": {
            "total_documents": source.file_count,
            "documents_count_key": source.file_count,
            "skipped_documents": 0,
        },
        "user_abilities": ["read", "write", "delete"] if principal.is_admin else ["read"],
    }


def _parse_filters(raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInput('filters must be a JSON object, e.g. {"project": ["default"]}') from None
    if not isinstance(value, dict):
        raise InvalidInput('filters must be a JSON object, e.g. {"project": ["default"]}')
    unknown = sorted(set(value) - FILTER_KEYS)
    if unknown:
        raise InvalidInput(f"unknown filters {unknown}; use {sorted(FILTER_KEYS)}")
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _matches(item: dict[str, Any], filters: dict[str, Any]) -> bool:
    types = _as_list(filters.get("index_type"))
    if types and item["index_type"] not in types:
        return False
    projects = _as_list(filters.get("project"))
    if projects and item["project_name"] not in projects:
        return False
    status = filters.get("status")
    if status and _status(item) != str(status):
        return False
    owner = filters.get("created_by")
    if owner and str(owner) not in (item["created_by"]["name"], item["created_by"]["username"]):
        return False
    term = str(filters.get("name") or filters.get("search") or "").strip().lower()
    return not term or term in item["repo_name"].lower()


@router.post(
    "/application/{project_name}/index",
    status_code=201,
    summary="Create a code datasource from a git repository and start indexing it",
)
def create(project_name: IdPath, body: CodeIndexIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, str]:
    db = services.store
    require_project(db, principal, project_name)
    principal.require_admin()
    _refuse_unsupported(body, services)
    catalog.create_repository(
        db, services.settings, **_location(body.link), name=body.name, branch=body.branch, description=body.description
    )
    return {"message": f"Indexing of datasource {body.name} has been started in the background"}


@router.put("/application/{project_name}/index/{repo_name}", summary="Update a code datasource, re-indexing it")
def update(
    project_name: IdPath,
    repo_name: IdPath,
    body: CodeIndexIn,
    services: ServicesDep,
    principal: PrincipalDep,
    full_reindex: bool | None = None,
    skip_reindex: bool | None = None,
    resume_indexing: bool | None = None,
    incremental_reindex: bool | None = None,
) -> dict[str, str]:
    db = services.store
    require_project(db, principal, project_name)
    principal.require_admin()
    _refuse_unsupported(body, services)
    source = catalog.get_repository(db, principal, repo_name)
    wanted = _location(body.link)
    if wanted.get("url", wanted.get("path")) != source.location:
        raise InvalidInput(f"link cannot change ({source.location!r}); create another datasource instead")
    if incremental_reindex:
        raise InvalidInput("Code data sources do not support incremental_reindex")
    source, job = catalog.update_repository(db, source, description=body.description, branch=body.branch or None)
    if job is None and not skip_reindex and (full_reindex or resume_indexing):
        catalog.resync(db, source)
    return {"message": f"Datasource {source.name} has been updated"}


@router.post("/index/knowledge_base/{kind}", summary="Knowledge-base datasources: not supported (refused by name)")
@router.put("/index/knowledge_base/{kind}", summary="Knowledge-base datasources: not supported (refused by name)")
def knowledge_base(kind: IdPath, principal: PrincipalDep) -> dict[str, str]:
    # Jira, Confluence, files, git FAQs...: repolens indexes code. Said plainly rather than as a
    # missing route, so that a client (the datasources MCP server's git FAQ tool) shows why.
    raise InvalidInput(f"knowledge-base datasources ({kind!r}) are not supported; create a code datasource instead")


@router.get("/index", summary="Code datasources the caller may see")
def list_index(
    services: ServicesDep,
    principal: PrincipalDep,
    page: int = Query(0, ge=0),
    per_page: int = Query(10, ge=1, le=MAX_PER_PAGE),
    sort_key: Literal["date", "update_date"] = "update_date",
    sort_order: Literal["asc", "desc"] = "desc",
    filters: str | None = Query(None, max_length=MAX_FILTERS_CHARS),
    full_response: bool = False,
) -> list[dict[str, Any]]:
    wanted = _parse_filters(filters)
    db = services.store
    project = projects_of(db, principal)[0]
    found = catalog.list_data_sources(db, principal, type_filter="Repository")
    items = [_datasource_json(services, principal, d.repository, project) for d in found if d.repository is not None]
    items = [i for i in items if _matches(i, wanted)]
    items.sort(key=lambda i: (i[sort_key] or "", i["id"]), reverse=sort_order == "desc")
    return items[page * per_page : (page + 1) * per_page]


@router.get("/index/{datasource_id}", summary="One code datasource")
def get_index(datasource_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    source = catalog.get_repository(db, principal, datasource_id)
    return _datasource_json(services, principal, source, projects_of(db, principal)[0])


@router.delete("/index/{datasource_id}", summary="Delete a code datasource and its index")
def delete_index(datasource_id: IdPath, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    db = services.store
    source = catalog.get_repository(db, principal, datasource_id)
    principal.require_admin()
    catalog.delete_repository(db, services.settings, source)
    return JSONResponse({"message": f"Datasource {source.name} has been deleted"})
