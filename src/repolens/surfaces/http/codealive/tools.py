"""``POST /api/tools/{name}``: CodeAlive's Tool API v3 envelope ``{rendered, obj}``.

One route per tool, each documented in OpenAPI with its tool's argument model (the same model
the MCP server derives its schemas from). Arguments are validated by the tool, not by FastAPI,
so that a repairable mistake comes back as CodeAlive's HTTP 200 ``obj.error`` envelope.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from repolens import tools
from repolens.errors import InvalidInput
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.surfaces.http.schemas import ToolEnvelope

router = APIRouter(prefix="/api/tools", tags=["tools"])


def _route(name: str, tool: tools.Tool) -> None:
    def call(
        services: ServicesDep,
        principal: PrincipalDep,
        body: Any = Body(default=None),  # noqa: B008 - FastAPI's documented pattern
    ) -> JSONResponse:
        if body is not None and not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object of tool arguments")
        args = {k: v for k, v in (body or {}).items() if k != "output_format"}
        result = tools.call_tool(services, principal, name, args)
        return JSONResponse({"rendered": result.rendered, "obj": result.obj})

    schema = tool.args.model_json_schema(by_alias=True)
    router.add_api_route(
        f"/{name}",
        call,
        methods=["POST"],
        response_model=ToolEnvelope,
        summary=tool.title,
        description=f"{tool.description} (CodeAlive Tool API v3)",
        operation_id=f"tool_{name}",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": schema}}, "required": False}},
    )


for _name, _tool in tools.TOOLS.items():
    _route(_name, _tool)
