"""``/api/datasources``: CodeAlive's listings plus our management routes (create, get,
update, delete, re-sync, jobs). Listing needs any key; changing needs an admin key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from repolens import catalog, views
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.sources.git import looks_like_url
from repolens.surfaces.http.deps import AdminDep, PrincipalDep, ServicesDep
from repolens.surfaces.http.schemas import CreatedOut, DataSourceCreate, DataSourceOut, DataSourceUpdate, JobOut

router = APIRouter(prefix="/api", tags=["data sources"])
TOTAL_HEADER = "X-CodeAlive-Total-Data-Sources"


def _json(services: Services, ds: catalog.DataSource, *, with_job: bool = False) -> dict[str, Any]:
    db = services.store
    if ds.repository is not None:
        jobs = db.jobs_for_source(ds.repository.id, limit=1) if with_job else []
        vectors = None
        embedder = services.embedder
        if with_job and embedder is not None:
            ready, total = db.vector_counts(ds.repository.id, embedder.name)
            vectors = views.vectors_json(embedder.name, ready, total, db.vector_models(ds.repository.id))
        return views.repository_json(
            ds.repository, job=jobs[0] if jobs else None, remote=looks_like_url(ds.repository.location), vectors=vectors
        )
    assert ds.workspace is not None
    every = {s.id: s for s in db.list_sources()}
    return views.workspace_json(ds.workspace, [every[i] for i in ds.workspace.source_ids if i in every])


def _listing(
    services: Services,
    principal: PrincipalDep,
    *,
    ready_only: bool,
    type_: str | None,
    search_term: str | None,
    query: str | None,
) -> JSONResponse:
    found = catalog.list_data_sources(
        services.store, principal, type_filter=type_, search_term=search_term, ready_only=ready_only
    )
    items = [_json(services, d) for d in found]
    if query and query.strip():
        items = catalog.relevance_filter(items, query)
    return JSONResponse(items, headers={TOTAL_HEADER: str(len(found))})


TypeQ = Annotated[str | None, Query(alias="type", description="Repository or Workspace", max_length=20)]
TermQ = Annotated[str | None, Query(alias="searchTerm", description="Substring of the name", max_length=200)]
QueryQ = Annotated[str | None, Query(alias="query", description="A task: keeps only relevant sources", max_length=2000)]


@router.get("/datasources/all", response_model=list[DataSourceOut], summary="Every data source, in any state")
def list_all(services: ServicesDep, principal: PrincipalDep, type_: TypeQ = None, search_term: TermQ = None) -> Response:
    return _listing(services, principal, ready_only=False, type_=type_, search_term=search_term, query=None)


@router.get("/datasources/ready", response_model=list[DataSourceOut], summary="Data sources ready for search")
def list_ready(
    services: ServicesDep, principal: PrincipalDep, type_: TypeQ = None, search_term: TermQ = None, query: QueryQ = None
) -> Response:
    return _listing(services, principal, ready_only=True, type_=type_, search_term=search_term, query=query)


@router.get("/datasources/alive", response_model=list[DataSourceOut], summary="Legacy name of /datasources/ready")
def list_alive(
    services: ServicesDep, principal: PrincipalDep, type_: TypeQ = None, search_term: TermQ = None, query: QueryQ = None
) -> Response:
    return _listing(services, principal, ready_only=True, type_=type_, search_term=search_term, query=query)


@router.post(
    "/datasources",
    status_code=202,
    response_model=CreatedOut,
    responses={201: {"model": CreatedOut, "description": "Workspace created (no indexing job)"}},
    summary="Add a repository (git URL or allowed local path) or a workspace",
)
def create(body: DataSourceCreate, services: ServicesDep, principal: AdminDep) -> JSONResponse:
    db = services.store
    if body.type == "Workspace":
        if not body.name:
            raise InvalidInput("a workspace needs a name")
        ws = catalog.create_workspace(
            db, name=body.name, description=body.description, repositories=body.repositoryIds or []
        )
        ds = catalog.DataSource("Workspace", workspace=ws)
        return JSONResponse({"dataSource": _json(services, ds), "job": None}, status_code=201)
    source, job = catalog.create_repository(
        db, services.settings, url=body.url, path=body.path, name=body.name, branch=body.branch, description=body.description
    )
    ds = catalog.DataSource("Repository", repository=source)
    return JSONResponse({"dataSource": _json(services, ds), "job": views.job_json(job)}, status_code=202)


@router.get("/datasources/{data_source_id}", response_model=DataSourceOut, summary="One data source with its latest job")
def get_one(data_source_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return _json(services, catalog.get_data_source(services.store, principal, data_source_id), with_job=True)


@router.patch("/datasources/{data_source_id}", response_model=CreatedOut, summary="Change a data source")
def update(data_source_id: str, body: DataSourceUpdate, services: ServicesDep, principal: AdminDep) -> dict[str, Any]:
    db = services.store
    ds = catalog.get_data_source(db, principal, data_source_id)
    if ds.workspace is not None:
        ws = catalog.update_workspace(
            db, ds.workspace, name=body.name, description=body.description, repositories=body.repositoryIds
        )
        return {"dataSource": _json(services, catalog.DataSource("Workspace", workspace=ws)), "job": None}
    assert ds.repository is not None
    if body.name is not None and body.name != ds.repository.name:
        raise InvalidInput("a repository cannot be renamed: its name is part of every identifier")
    source, job = catalog.update_repository(db, ds.repository, description=body.description, branch=body.branch)
    return {
        "dataSource": _json(services, catalog.DataSource("Repository", repository=source)),
        "job": views.job_json(job) if job else None,
    }


@router.delete("/datasources/{data_source_id}", status_code=204, summary="Delete a data source and its index")
def delete(data_source_id: str, services: ServicesDep, principal: AdminDep) -> Response:
    db = services.store
    ds = catalog.get_data_source(db, principal, data_source_id)
    if ds.workspace is not None:
        db.delete_workspace(ds.workspace.id)
    else:
        assert ds.repository is not None
        catalog.delete_repository(db, services.settings, ds.repository)
    return Response(status_code=204)


@router.post(
    "/datasources/{data_source_id}/sync",
    status_code=202,
    response_model=JobOut,
    summary="Re-index a repository (every repository of a workspace)",
)
def sync(data_source_id: str, services: ServicesDep, principal: AdminDep) -> JSONResponse:
    db = services.store
    ds = catalog.get_data_source(db, principal, data_source_id)
    if ds.repository is not None:
        return JSONResponse(views.job_json(catalog.resync(db, ds.repository)), status_code=202)
    assert ds.workspace is not None
    every = {s.id: s for s in db.list_sources()}
    jobs = [catalog.resync(db, every[i]) for i in ds.workspace.source_ids if i in every]
    if not jobs:
        raise InvalidInput("the workspace has no repositories to sync")
    return JSONResponse(views.job_json(jobs[0]) | {"jobs": [views.job_json(j) for j in jobs]}, status_code=202)


@router.get("/datasources/{data_source_id}/jobs", response_model=list[JobOut], summary="A repository's jobs, newest first")
def jobs(data_source_id: str, services: ServicesDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    source = catalog.get_repository(services.store, principal, data_source_id)
    return [views.job_json(j) for j in services.store.jobs_for_source(source.id)]


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job's state and progress")
def job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return views.job_json(catalog.get_job(services.store, principal, job_id))
