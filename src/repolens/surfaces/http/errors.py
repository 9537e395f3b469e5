"""Every error leaves the server in its route's dialect, from one place.

* CodeAlive routes: RFC 9457 problem details (``application/problem+json``) that also carry
  ``error{code,message}`` and a flat ``message`` (the three shapes CodeAlive's clients read).
* The Dify route: ``{"error_code": int, "error_msg": str}`` with Dify's own codes.
* The OpenAI-compatible routes (``/v1/``): ``{"error": {message, type, param, code}}`` as
  OpenAI sends it, so the ``openai`` SDK raises its usual typed exceptions.
* A dialect package that owns its error shape (CodeMie: ``codemie/errors.py``) hands a
  ``Dialect`` to ``install``; its routes' errors, validation failures and the access layer's
  refusals then take its shape. (Dialect packages may not import each other, nor anything that
  imports one, so this module cannot import them: app.py passes them in.)

Bad input is a 4xx, never a 500; an unexpected exception becomes a 500 with a request id and
no trace (the trace goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from repolens.errors import Conflict, RateLimited, RepolensError, status_of

log = logging.getLogger("repolens.surfaces.http")

PROBLEM_JSON = "application/problem+json"
DIFY_PREFIX = "/api/knowledge-retrieval/dify"
OPENAI_PREFIX = "/v1/"


CODES: dict[int, tuple[str, str, str]] = {  # status -> (code, title, type slug)
    400: ("BAD_REQUEST", "Bad request", "bad-request"),
    401: ("UNAUTHORIZED", "Unauthorized", "unauthorized"),
    403: ("FORBIDDEN", "Forbidden", "forbidden"),
    404: ("NOT_FOUND", "Not found", "not-found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed", "method-not-allowed"),
    409: ("AMBIGUOUS", "Ambiguous identifier", "ambiguous"),
    413: ("PAYLOAD_TOO_LARGE", "Payload too large", "payload-too-large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type", "unsupported-media-type"),
    422: ("NOT_READY", "Data source not ready", "not-ready"),
    429: ("RATE_LIMITED", "Rate limit exceeded", "plan-limit"),
    500: ("INTERNAL_ERROR", "Server error", "internal"),
    502: ("BAD_GATEWAY", "Bad gateway", "bad-gateway"),
    503: ("UNAVAILABLE", "Service unavailable", "unavailable"),
}
# Dify's external-knowledge codes (specs/codealive.md §4): 1001 bad request or header,
# 1002 authorization failed, 2001 the knowledge does not exist.
DIFY_CODES: dict[int, int] = {400: 1001, 401: 1002, 403: 1002, 404: 2001, 409: 1001, 422: 1001, 429: 1002}


@dataclass(frozen=True, slots=True)
class Dialect:
    """A dialect's own error shape, for the routes under ``prefix``."""

    prefix: str
    body: Callable[[int, str], dict[str, Any]]  # (status, message) -> error body
    validation: Callable[[RequestValidationError], JSONResponse]  # a body or query that failed validation
    public_paths: frozenset[str] = frozenset()  # routes reached without credentials (a sign-in)


def dialect_for(dialects: tuple[Dialect, ...], path: str) -> Dialect | None:
    """The dialect whose routes ``path`` belongs to, if one owns its errors."""
    return next((d for d in dialects if path.startswith(d.prefix)), None)


def _dialects(request: Request) -> tuple[Dialect, ...]:
    return tuple(getattr(request.app.state, "error_dialects", ()))


def request_id(request: Request) -> str:
    """The id the access middleware gave this request."""
    return str(getattr(request.state, "request_id", "") or "")


def problem(
    status: int,
    detail: str,
    *,
    rid: str = "",
    errors: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem-details response that every CodeAlive client can read."""
    body = problem_body(status, detail)
    if rid:
        body["requestId"] = rid
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(status: int, detail: str) -> dict[str, Any]:
    """The problem-details body: RFC 9457 fields plus ``message`` and ``error{code,message}``."""
    code, title, slug = CODES.get(status, ("ERROR", "Error", "error"))
    body: dict[str, Any] = {
        "type": f"/errors/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "message": detail,
        "error": {"code": code, "message": detail},
    }
    return body


# OpenAI's error ``type`` and ``code`` per status (what its SDK maps to exception classes).
OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "not_ready"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body."""
    kind, code = OPENAI_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def dify_error(status: int, message: str, *, code: int | None = None) -> JSONResponse:
    """Dify's error body."""
    return JSONResponse(
        {"error_code": code or DIFY_CODES.get(status, 2001 if status == 404 else 1001), "error_msg": message},
        status_code=status,
    )


def error_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error in the dialect of the route that was asked."""
    if request.url.path.startswith(DIFY_PREFIX):
        response = dify_error(status, detail)
        if headers:
            response.headers.update(headers)
        return response
    if request.url.path.startswith(OPENAI_PREFIX):
        return JSONResponse(openai_error_body(status, detail), status_code=status, headers=headers)
    dialect = dialect_for(_dialects(request), request.url.path)
    if dialect is not None:
        return JSONResponse(dialect.body(status, detail), status_code=status, headers=headers)
    return problem(status, detail, rid=request_id(request), errors=errors, extra=extra, headers=headers)


def _validation_errors(exc: RequestValidationError) -> tuple[str, dict[str, list[str]]]:
    fields: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        key = ".".join(loc) or "body"
        fields.setdefault(key, []).append(str(err.get("msg", "invalid")))
    summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items())
    return f"invalid request: {summary}"[:2000], fields


def install(app: FastAPI, dialects: tuple[Dialect, ...] = ()) -> None:
    """Register the handlers that turn every exception into its dialect's error."""
    app.state.error_dialects = dialects

    @app.exception_handler(RepolensError)
    async def _core(request: Request, exc: RepolensError) -> JSONResponse:
        status = status_of(exc)
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, Conflict) and exc.candidates:
            extra["candidates"] = exc.candidates
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
            if exc.limit is not None:  # a quota of its own (chat): these replace the access layer's
                headers.update(
                    {
                        "X-RateLimit-Limit": str(exc.limit),
                        "X-RateLimit-Remaining": str(max(0, exc.remaining)),
                        "X-RateLimit-Reset": str(exc.reset or 0),
                    }
                )
        if status >= 500:
            log.error("request %s failed: %s", request_id(request), exc)
        return error_response(request, status, str(exc), extra=extra, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        dialect = dialect_for(_dialects(request), request.url.path)
        if dialect is not None:
            return dialect.validation(exc)
        detail, fields = _validation_errors(exc)
        return error_response(request, 400, detail, errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code if exc.status_code in CODES else 400
        detail = str(exc.detail) if exc.detail else CODES.get(status, ("", "error", ""))[1]
        if status == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        return error_response(request, status, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(UnicodeEncodeError)
    async def _unpaired_surrogate(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        # JSON lets a string carry an unpaired surrogate (\ud800); no database can store or
        # search it, and the driver refuses to encode it: the caller's text is at fault.
        return error_response(
            request, 400, "text must be valid Unicode: unpaired surrogate code points (\\ud800-\\udfff escapes) are refused"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s crashed", request_id(request))
        return error_response(request, 500, "internal error; the server log has details under this request id")
