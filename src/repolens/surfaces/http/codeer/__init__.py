"""Codeer's API (``/api/v1/...``): what ``codeer-cli`` 0.1.17 calls, over the same core.

Every response is Codeer's envelope ``{data, message, error_code, pagination}``; errors come
from the one error tree through ``surfaces/http/errors.py`` (Codeer's numeric codes). Keys
arrive as ``x-api-key`` (or ``Authorization: Bearer``) and pass the shared access layer.
Codeer's workspace is our workspace, its organization our install's organization.

Here: identity and scope (``/external/me``), models, knowledge bases (nodes, uploads, status,
content, export, download, FAQs, website crawls), the admin routes of a workspace's client
whitelist, agents with their versions (over the core's assistants), chats (``/api/v2/chats``
and ``/api/v1/chats``, streamed as SSE), uploads for attachments, feedback and histories.
"""

from __future__ import annotations

from fastapi import APIRouter

from repolens.surfaces.http.codeer import agents, chats, histories, identity, knowledge, whitelist

router = APIRouter()
for _module in (identity, knowledge, whitelist, agents, chats, histories):
    router.include_router(_module.router)

__all__ = ["router"]
