"""``POST /v1/local-auth/login``: a local user's email and password for a sign-in token.

CodeMie's SDK (and so its MCP servers) logs in here whenever its API domain looks local
(``localhost``, ``127.0.0.1``, ...) and it has a username and password; it reads
``access_token`` and sends it as ``Authorization: Bearer`` from then on. The token is a JWT
whose ``exp`` the SDK uses to know when to log in again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from repolens.surfaces.http.deps import ServicesDep

router = APIRouter()


class LoginIn(BaseModel):
    """What the SDK posts (``LocalAuthCredentials``)."""

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=4096)


@router.post("/local-auth/login", summary="Sign a local user in")
def login(body: LoginIn, services: ServicesDep) -> dict[str, Any]:
    session = services.authenticator.login(services.store, body.email, body.password)
    user = session.user
    return {
        "access_token": session.token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
        "user": {"id": user.public_id, "email": user.email, "username": user.email, "name": user.name or user.email},
    }
