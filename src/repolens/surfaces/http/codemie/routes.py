"""Every CodeMie route, under ``/code-assistant-api/v1``: app.py includes ``router`` once."""

from __future__ import annotations

from fastapi import APIRouter

from repolens.surfaces.http.codemie import API, auth, datasources, files, meta

router = APIRouter(prefix=API, tags=["CodeMie"])
for _module in (auth, meta, datasources, files):
    router.include_router(_module.router)
# The assistant runtime's routes (assistants.py, conversations.py, tasks.py: the `agents`
# branch) are included here the same way, each module exposing its own ``router``.
