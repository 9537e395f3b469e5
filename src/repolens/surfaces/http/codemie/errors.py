"""CodeMie's error body, from our one error tree (``repolens.errors.status_of``).

CodeMie answers ``{"error": {"message": <short title>, "details": <what happened>, "help":
<what to do>}}``; a request that fails validation is a **422** whose ``details`` is the list of
pydantic errors (``[{"msg", "loc", "type"}]``). The SDK raises ``requests.HTTPError`` on any 4xx
and does not read the body, so the body is for the people and agents reading it.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from repolens.surfaces.http.codemie import PREFIX, PUBLIC_PATHS
from repolens.surfaces.http.errors import Dialect

# status -> (message, help): CodeMie's short titles, and what the caller can do.
MESSAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "Check the request body and parameters and try again."),
    401: (
        "Unauthorized",
        "Send Authorization: Bearer <token>: a repolens API key, a token from POST /v1/local-auth/login, "
        "or an access token of the configured identity provider.",
    ),
    403: ("Access denied", "Ask an administrator of this server for access."),
    404: ("Not found", "Please verify the ID and try again. If you believe this is an error, contact support."),
    405: ("Method not allowed", "Check the HTTP method of this route."),
    409: ("Conflict", "Pick another name, or change the existing item instead."),
    413: ("Request too large", "Send a smaller body or file."),
    415: ("Unsupported media type", "Send JSON, or multipart/form-data for uploads."),
    422: ("Validation error", "Fix the fields listed in details and try again."),
    429: ("Too many requests", "Wait for the time given in Retry-After and try again."),
    500: ("Internal server error", "Try again later; the server log has details under this request id."),
    502: ("Upstream error", "A model or identity provider behind this server failed; try again later."),
    503: ("Service unavailable", "Try again later."),
}
NOT_READY = ("Datasource not ready", "Wait until the datasource has finished indexing, then try again.")


class CodeMieErrorInfo(BaseModel):
    """What went wrong: a title, the specifics (a list of field errors for a 422), what to do."""

    message: str
    details: str | list[dict[str, Any]]
    help: str


class CodeMieError(BaseModel):
    """CodeMie's error body (documented for every CodeMie route in /openapi.json)."""

    error: CodeMieErrorInfo


def codemie_error_body(status: int, details: str | list[dict[str, Any]], *, message: str = "") -> dict[str, Any]:
    """CodeMie's error body for ``status``."""
    title, help_text = MESSAGES.get(status, ("Error", "Try again later."))
    if status == 422 and isinstance(details, str):  # our NotReady: a state, not a malformed field
        title, help_text = NOT_READY
    return {"error": {"message": message or title, "details": details, "help": help_text}}


def codemie_error(
    status: int, details: str | list[dict[str, Any]], *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A CodeMie error response."""
    return JSONResponse(codemie_error_body(status, details), status_code=status, headers=headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors as CodeMie lists them: ``msg``, ``loc`` and ``type`` (inputs dropped:
    they can be large, and they may hold a secret such as a password)."""
    return [
        {"msg": str(e.get("msg", "invalid")), "loc": [str(p) for p in e.get("loc", ())], "type": str(e.get("type", ""))}
        for e in errors
    ]


def _validation(exc: RequestValidationError) -> JSONResponse:
    return codemie_error(422, validation_details(exc.errors()))


def _body(status: int, message: str) -> dict[str, Any]:
    return codemie_error_body(status, message)


DIALECT = Dialect(prefix=PREFIX, body=_body, validation=_validation, public_paths=PUBLIC_PATHS)
