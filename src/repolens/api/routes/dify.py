"""Dify's External Knowledge API: ``POST /api/knowledge-retrieval/dify/retrieval``.

Dify registers the endpoint with a probe (a POST with a key and no body), so a valid key with
an empty body gets 400, and a bad key gets 403 (the only statuses Dify's probe reports are
403, 404 and 502). Errors use Dify's body and codes: 1001 bad request, 1002 authorization,
2001 unknown knowledge.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from repolens import catalog, operations
from repolens.access.keys import Principal
from repolens.api.deps import get_principal, get_services
from repolens.api.errors import dify_error
from repolens.api.schemas import DifyCondition, DifyError, DifyRequest, DifyResponse
from repolens.errors import NotFound
from repolens.retrieval.search import MAX_LIMIT, ScoredArtifact
from repolens.services import Services

router = APIRouter(prefix="/api/knowledge-retrieval/dify", tags=["dify"])
FIELDS = ("file_extension", "path", "artifact_kind", "data_source_name", "data_source_id", "language", "start_line",
          "end_line", "title")  # fmt: skip


@router.post(
    "/retrieval",
    response_model=DifyResponse,
    responses={400: {"model": DifyError}, 403: {"model": DifyError}, 404: {"model": DifyError}},
    summary="Dify external knowledge retrieval",
    openapi_extra={"requestBody": {"required": False, "content": {"application/json": {
        "schema": DifyRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
)  # fmt: skip
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
    for condition in body.metadata_condition.conditions if body.metadata_condition else []:
        problem = _check_condition(condition)
        if problem:
            return dify_error(400, problem, code=1001)
    try:
        records = await run_in_threadpool(_retrieve, services, principal, body)
    except NotFound:
        return dify_error(404, "The knowledge does not exist", code=2001)
    return JSONResponse({"records": records})


_OPERATORS = frozenset({"contains", "not contains", "start with", "end with", "is", "is not", "empty", "not empty",
                        "=", "≠", "!=", ">", "<", "≥", ">=", "≤", "<=", "before", "after", "null", "not null"})  # fmt: skip
_NO_VALUE = frozenset({"empty", "not empty", "null", "not null"})


def _check_condition(condition: DifyCondition) -> str:
    if condition.comparison_operator not in _OPERATORS:
        return f"unknown comparison_operator {condition.comparison_operator!r}"
    unknown = [n for n in condition.name if n not in FIELDS]
    if unknown:
        return f"unknown metadata field {unknown[0]!r}; use one of {', '.join(FIELDS)}"
    if condition.comparison_operator not in _NO_VALUE and condition.value is None:
        return f"comparison_operator {condition.comparison_operator!r} needs a value"
    return ""


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _holds(meta: dict[str, Any], condition: DifyCondition) -> bool:
    op = condition.comparison_operator
    want = condition.value
    results = []
    for name in condition.name:
        have = meta.get(name)
        text = "" if have is None else str(have).lower()
        value = "" if want is None else str(want).lower()
        if name == "file_extension" and value and not value.startswith("."):
            value = "." + value
        if op in ("contains",):
            ok = value in text
        elif op == "not contains":
            ok = value not in text
        elif op == "start with":
            ok = text.startswith(value)
        elif op == "end with":
            ok = text.endswith(value)
        elif op in ("is", "="):
            ok = text == value if _number(have) is None or _number(want) is None else _number(have) == _number(want)
        elif op in ("is not", "≠", "!="):
            ok = text != value if _number(have) is None or _number(want) is None else _number(have) != _number(want)
        elif op in ("empty", "null"):
            ok = text == ""
        elif op in ("not empty", "not null"):
            ok = text != ""
        else:
            a, b = _number(have), _number(want)
            if a is None or b is None:
                ok = False
            elif op in (">", "after"):
                ok = a > b
            elif op in ("<", "before"):
                ok = a < b
            elif op in ("≥", ">="):
                ok = a >= b
            else:
                ok = a <= b
        results.append(ok)
    return all(results)


def _metadata(hit: ScoredArtifact) -> dict[str, Any]:
    row = hit.artifact
    name = row.path.rsplit("/", 1)[-1]
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {
        "path": row.path,
        "description": f"{row.kind.lower()} in {name} from {hit.source.name}",
        "file_extension": ext,
        "data_source_id": hit.source.public_id,
        "data_source_name": hit.source.name,
        "data_source_type": "repository",
        "artifact_kind": row.kind.lower(),
        "identifier": row.identifier(hit.source.name),
        "language": row.language or "",
        "start_line": row.start_line,
        "start_character": 0,
        "end_line": row.end_line,
        "end_character": 0,
        "commit": hit.source.commit,
        "title": name,
    }


def _retrieve(services: Services, principal: Principal, body: DifyRequest) -> list[dict[str, Any]]:
    target = catalog.get_data_source(services.store, principal, body.knowledge_id)
    condition = body.metadata_condition
    conditions = condition.conditions if condition else []
    top_k = body.retrieval_setting.top_k
    # Filters decide which artifacts may be answered, so they apply before the top_k cut: with
    # conditions, every candidate the retrievers find is ranked (their combined depth is below
    # MAX_LIMIT), the ones that pass are kept, and only then is the list cut to top_k.
    request = operations.SearchRequest(body.query, names=(target.public_id,), limit=MAX_LIMIT if conditions else top_k)
    with services.store.snapshot():  # hits and their text from one state of the index
        outcome = operations.run_search(services, principal, request)
        top = outcome.hits[0].score if outcome.hits else 0.0
        chosen: list[tuple[ScoredArtifact, dict[str, Any], float]] = []
        for hit in outcome.hits:
            meta = _metadata(hit)
            if conditions:
                checks = [_holds(meta, c) for c in conditions]
                logical = condition.logical_operator if condition else "and"
                if not (all(checks) if logical == "and" else any(checks)):
                    continue
            score = round(hit.score / top, 4) if top > 0 else 0.0
            if score < body.retrieval_setting.score_threshold:
                continue
            chosen.append((hit, meta, score))
            if len(chosen) >= top_k:
                break
        contents = operations.hit_contents(services, dataclasses.replace(outcome, hits=[h for h, _, _ in chosen]))
    records: list[dict[str, Any]] = []
    for hit, meta, score in chosen:
        title = meta.pop("title")
        records.append({"content": contents.get(hit.artifact.id, ""), "score": score, "title": title, "metadata": meta})
    return records
