"""The assistant half of the CodeMie API in one router: assistants, conversations, tasks."""

from __future__ import annotations

from fastapi import APIRouter

from repolens.surfaces.http.codemie import assistants, conversations, tasks

router = APIRouter()
for part in (assistants.router, conversations.router, tasks.router):
    router.include_router(part)
