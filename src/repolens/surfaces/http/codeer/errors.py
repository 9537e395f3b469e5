"""Codeer's error envelope, from our one error tree (``repolens.errors.status_of``).

Codeer answers ``{"data": null, "message": <what happened>, "error_code": <int>, "pagination":
null}``. The HTTP status stays the one every dialect gives (401 for a bad key, as the CLI
expects: it treats only 401/403 as auth failures); ``error_code`` is Codeer's, from the table
below (specs/codemie_codeer.md §2.1).
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from repolens.errors import ClientNotAllowed, RepolensError
from repolens.surfaces.http.errors import Dialect, validation_summary

# Codeer names 10001 (permission denied: a missing or bad key, or no access), 10003 (not
# found), 10005 (server error) and 10006 (bad request). Every other refusal of the caller's
# request (409, 413, 422, 429) is a bad request to Codeer, and every server failure a 10005.
CODES: dict[int, int] = {400: 10006, 401: 10001, 403: 10001, 404: 10003}
BAD_REQUEST = 10006
SERVER_ERROR = 10005
CLIENT_NOT_ALLOWED = 14103  # WORKSPACE_CLIENT_NOT_ALLOWED: whitelist mode refused the external user
PREFIXES = ("/api/v1/", "/api/v2/")


def code_of(status: int, exc: RepolensError | None = None) -> int:
    """Codeer's ``error_code`` for a status (and, for a whitelist refusal, the error)."""
    if isinstance(exc, ClientNotAllowed):
        return CLIENT_NOT_ALLOWED
    return CODES.get(status, SERVER_ERROR if status >= 500 else BAD_REQUEST)


def codeer_body(status: int, message: str, exc: RepolensError | None = None) -> dict[str, Any]:
    """Codeer's error envelope."""
    return {"data": None, "message": message, "error_code": code_of(status, exc), "pagination": None}


def _validation(exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(codeer_body(400, validation_summary(exc)), status_code=400)


def _body(status: int, message: str) -> dict[str, Any]:
    return codeer_body(status, message)


# One per prefix: Codeer's routes live under /api/v1 and (chats, later) /api/v2.
DIALECTS = tuple(Dialect(prefix=p, body=_body, validation=_validation, error_body=codeer_body) for p in PREFIXES)
