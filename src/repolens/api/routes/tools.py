"""``POST /api/tools/{name}``: CodeAlive's Tool API v3 envelope ``{rendered, obj}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from repolens import tools
from repolens.api.deps import PrincipalDep, ServicesDep
from repolens.api.schemas import ToolEnvelope
from repolens.errors import InvalidInput

router = APIRouter(prefix="/api/tools", tags=["tools"])


@router.post("/{name}", response_model=ToolEnvelope, summary="Run an agent tool (CodeAlive Tool API v3)")
def call(
    name: str,
    services: ServicesDep,
    principal: PrincipalDep,
    body: dict[str, Any] | None = Body(default=None),  # noqa: B008 - FastAPI's documented pattern
) -> JSONResponse:
    if body is not None and not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object of tool arguments")
    args = {k: v for k, v in (body or {}).items() if k != "output_format"}
    result = tools.call_tool(services, principal, name, args)
    return JSONResponse({"rendered": result.rendered, "obj": result.obj})
