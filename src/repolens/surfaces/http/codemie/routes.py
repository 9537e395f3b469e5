"""Every CodeMie route, under ``/code-assistant-api/v1``: app.py includes ``router`` once."""

from __future__ import annotations

from fastapi import APIRouter

from repolens.surfaces.http.codemie import API, assistants, auth, conversations, datasources, files, meta, tasks

router = APIRouter(prefix=API, tags=["CodeMie"])
for _module in (auth, meta, datasources, files, assistants, conversations, tasks):
    router.include_router(_module.router)
