"""Dify's External Knowledge API: ``POST /api/knowledge-retrieval/dify/retrieval``.

Dify registers the endpoint with a probe (a POST with a key and no body), so a valid key with
an empty body gets 400, and a bad key gets 403 (the only statuses Dify's probe reports are
403, 404 and 502). Errors use Dify's body and codes: 1001 bad request, 1002 authorization,
2001 unknown knowledge.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from repolens import operations
from repolens.access.keys import Principal
from repolens.errors import InvalidInput, NotFound
from repolens.retrieval.conditions import Condition
from repolens.services import Services
from repolens.surfaces.http.deps import get_principal, get_services
from repolens.surfaces.http.errors import dify_error
from repolens.surfaces.http.schemas import DifyError, DifyRequest, DifyResponse

router = APIRouter(prefix="/api/knowledge-retrieval/dify", tags=["dify"])


@router.post(
    "/retrieval",
    response_model=DifyResponse,
    responses={400: {"model": DifyError}, 403: {"model": DifyError}, 404: {"model": DifyError}},
    summary="Dify external knowledge retrieval",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": DifyRequest.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    },
)
async def retrieval(request: Request) -> JSONResponse:
    principal = get_principal(request)
    services = get_services(request)
    raw = await request.body()
    if not raw.strip():
        return dify_error(400, "request body is required: knowledge_id, query and retrieval_setting", code=1001)
    try:
        body = DifyRequest.model_validate_json(raw)
    except ValidationError as exc:
        errs = exc.errors()
        where = ".".join(str(p) for p in errs[0]["loc"]) if errs else "body"
        message = errs[0]["msg"] if errs else "invalid"
        return dify_error(400, f"invalid request: {where or 'body'}: {message}", code=1001)
    try:
        records = await run_in_threadpool(_retrieve, services, principal, body)
    except InvalidInput as exc:
        return dify_error(400, str(exc), code=1001)
    except NotFound:
        return dify_error(404, "The knowledge does not exist", code=2001)
    return JSONResponse({"records": records})


def _retrieve(services: Services, principal: Principal, body: DifyRequest) -> list[dict[str, Any]]:
    condition = body.metadata_condition
    given = condition.conditions if condition else []
    conditions = [Condition(tuple(c.name), c.comparison_operator, c.value) for c in given]
    records = operations.retrieve_knowledge(
        services,
        principal,
        body.query,
        body.knowledge_id,
        top_k=body.retrieval_setting.top_k,
        score_threshold=body.retrieval_setting.score_threshold,
        conditions=conditions,
        match_all=(condition.logical_operator if condition else "and") == "and",
    )
    out: list[dict[str, Any]] = []
    for record in records:
        meta = dict(record.metadata)
        title = meta.pop("title")
        out.append({"content": record.content, "score": record.score, "title": title, "metadata": meta})
    return out
