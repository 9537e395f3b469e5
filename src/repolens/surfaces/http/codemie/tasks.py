"""CodeMie's background tasks: ``GET /v1/tasks/{id}`` for a turn started with ``background_task``."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter

from repolens.agents import assistants as registry
from repolens.surfaces.http.codemie.assistants import viewer_of
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep
from repolens.views import iso

router = APIRouter()  # included under /code-assistant-api/v1 by codemie/routes.py


@router.get("/tasks/{task_id}", summary="A background task: STARTED, COMPLETED or FAILED")
async def get_task(task_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    viewer = viewer_of(services, principal)
    row = await anyio.to_thread.run_sync(registry.get_task, services, viewer, task_id)
    return {
        "id": row.public_id,
        "task": row.task,
        "user": {"user_id": row.owner, "username": row.owner_name, "name": row.owner_name},
        "final_output": row.final_output,
        "current_step": row.current_step,
        "status": row.status,
        "date": iso(row.created_at),
        "update_date": iso(row.updated_at),
    }
