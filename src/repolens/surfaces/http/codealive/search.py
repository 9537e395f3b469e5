"""``/api/search``: CodeAlive's search, grep, artifact fetch and relationships."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from repolens import operations
from repolens.retrieval.search import Mode
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.surfaces.http.schemas import (
    ArtifactsBody,
    ArtifactsResponse,
    GrepResponse,
    RelationshipsBody,
    RelationshipsResponse,
    SearchBody,
    SearchResponse,
)
from repolens.views import Detail

router = APIRouter(prefix="/api/search", tags=["search"])

DEFAULT_RESULTS = 10

QueryParam = Annotated[str, Query(alias="Query", min_length=1, max_length=10_000, description="What to look for")]
NamesParam = Annotated[list[str] | None, Query(alias="Names", max_length=100, description="Data source names")]
IdsParam = Annotated[list[str] | None, Query(alias="DataSourceIds", max_length=100, description="Data source ids")]
PathsParam = Annotated[list[str] | None, Query(alias="Paths", max_length=100, description="Path prefixes")]
ExtParam = Annotated[list[str] | None, Query(alias="Extensions", max_length=100, description="e.g. py or .py")]
MaxParam = Annotated[int | None, Query(alias="MaxResults", ge=1, le=500)]
ExcludeMdParam = Annotated[bool, Query(alias="ExcludeMarkdown")]


def _mode(value: str | None) -> Mode:
    return operations.search_mode(value, param="Mode")


def _detail(value: str | None) -> Detail:
    return operations.description_detail(value, param="DescriptionDetail")


def _names(*groups: list[str] | None) -> tuple[str, ...]:
    return tuple(n for group in groups if group for n in group if n and n.strip())


@router.get("", response_model=SearchResponse, summary="Search (legacy route: Mode, IncludeContent, DescriptionDetail)")
def search_legacy(
    services: ServicesDep,
    principal: PrincipalDep,
    query: QueryParam,
    names: NamesParam = None,
    data_source_ids: IdsParam = None,
    mode: Annotated[str | None, Query(alias="Mode", max_length=20)] = None,
    include_content: Annotated[bool, Query(alias="IncludeContent")] = False,
    description_detail: Annotated[str | None, Query(alias="DescriptionDetail", max_length=10)] = None,
    max_results: MaxParam = None,
) -> JSONResponse:
    request = operations.SearchRequest(
        query,
        names=_names(data_source_ids, names),
        limit=max_results or DEFAULT_RESULTS,
        mode=_mode(mode),
        include_content=include_content,
        detail=_detail(description_detail),
    )
    data = operations.search(services, principal, request)
    return JSONResponse(data)


@router.post("", response_model=SearchResponse, summary="Search with a JSON body (alias of GET /api/search)")
def search_post(body: SearchBody, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    include = body.includeContent if body.includeContent is not None else bool(body.include_content)
    request = operations.SearchRequest(
        body.query,
        names=_names(body.dataSourceIds, body.datasource_ids, body.names),
        limit=body.maxResults or body.max_results or DEFAULT_RESULTS,
        mode=_mode(body.mode),
        include_content=include,
        detail=_detail(body.descriptionDetail or body.description_detail),
    )
    data = operations.search(services, principal, request)
    return JSONResponse(data)


@router.get("/semantic", response_model=SearchResponse, summary="Search by meaning (hybrid ranking)")
def search_semantic(
    services: ServicesDep,
    principal: PrincipalDep,
    query: QueryParam,
    names: NamesParam = None,
    data_source_ids: IdsParam = None,
    paths: PathsParam = None,
    extensions: ExtParam = None,
    max_results: MaxParam = None,
    exclude_markdown: ExcludeMdParam = False,
    include_content: Annotated[bool, Query(alias="IncludeContent")] = False,
) -> JSONResponse:
    request = operations.SearchRequest(
        query,
        names=_names(data_source_ids, names),
        paths=tuple(paths or ()),
        extensions=tuple(extensions or ()),
        limit=max_results or DEFAULT_RESULTS,
        include_content=include_content,
        exclude_markdown=exclude_markdown,
    )
    data = operations.search(services, principal, request)
    return JSONResponse(data)


@router.get("/grep", response_model=GrepResponse, summary="Literal or regex search in file contents (and names)")
def search_grep(
    services: ServicesDep,
    principal: PrincipalDep,
    query: QueryParam,
    names: NamesParam = None,
    data_source_ids: IdsParam = None,
    paths: PathsParam = None,
    extensions: ExtParam = None,
    max_results: MaxParam = None,
    exclude_markdown: ExcludeMdParam = False,
    regex: Annotated[bool, Query(alias="Regex")] = False,
    case_sensitive: Annotated[bool | None, Query(alias="CaseSensitive")] = None,
) -> JSONResponse:
    data = operations.grep(
        services,
        principal,
        query,
        names=_names(data_source_ids, names),
        paths=tuple(paths or ()),
        extensions=tuple(extensions or ()),
        regex=regex,
        limit=max_results or 50,
        case_sensitive=case_sensitive,
        exclude_markdown=exclude_markdown,
    )
    return JSONResponse(data)


@router.post("/artifacts", response_model=ArtifactsResponse, summary="Full content of artifacts by identifier")
def artifacts(body: ArtifactsBody, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    data = operations.fetch_artifacts(services, principal, body.identifiers, data_source=body.dataSource)
    return JSONResponse(data)


@router.post(
    "/artifact-relationships",
    response_model=RelationshipsResponse,
    summary="Calls, inheritance or references of one artifact",
)
def artifact_relationships(body: RelationshipsBody, services: ServicesDep, principal: PrincipalDep) -> JSONResponse:
    data = operations.relationships(
        services,
        principal,
        body.identifier,
        profile=body.profile,
        max_count=body.maxCountPerType,
        data_source=body.dataSource,
    )
    return JSONResponse(data)
