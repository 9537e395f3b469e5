"""What a handler receives: the services, and the principal the access middleware found."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from repolens.access.keys import Principal
from repolens.errors import Unauthorized
from repolens.services import Services


def get_services(request: Request) -> Services:
    """The app's long-lived services."""
    services: Services = request.app.state.services
    return services


def get_principal(request: Request) -> Principal:
    """The key this request runs as (set by ``AccessMiddleware``)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthorized("Invalid or missing API key")
    return principal


def get_admin(request: Request) -> Principal:
    """The key, which must be an admin key."""
    principal = get_principal(request)
    principal.require_admin()
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
