"""``create_app(settings)``: the FastAPI application and its lifespan.

The lifespan opens the services once, resumes interrupted jobs and starts the job runner;
on shutdown it stops the runner (a running job is left to resume) and closes the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from repolens import __version__
from repolens.access.ratelimit import RateLimiter, SharedQuota
from repolens.batches import dispatcher as batch_webhooks
from repolens.services import Services, build_services
from repolens.settings import Settings
from repolens.surfaces.http import codeer as codeer_api
from repolens.surfaces.http import codemie as codemie_api
from repolens.surfaces.http import errors, health
from repolens.surfaces.http import mcp as mcp_http
from repolens.surfaces.http.access import AccessMiddleware
from repolens.surfaces.http.codealive import admin, chat, datasources, search, tools
from repolens.surfaces.http.codeer import errors as codeer_errors
from repolens.surfaces.http.codemie import errors as codemie_errors
from repolens.surfaces.http.codemie import routes as codemie
from repolens.surfaces.http.codemie.errors import CodeMieError
from repolens.surfaces.http.dify import routes as dify
from repolens.surfaces.http.openai import routes as openai
from repolens.surfaces.http.schemas import CodeerError, DifyError, OpenAIError, Problem
from repolens.surfaces.mcp.server import build_server
from repolens.surfaces.web import WEB_PREFIX
from repolens.surfaces.web.app import SECURITY_HEADER_DICT, create_web_app

_ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "422", "429", "500", "503")


def create_app(settings: Settings, *, run_jobs: bool = True) -> FastAPI:
    """The server for ``settings``; ``run_jobs=False`` leaves jobs queued (tests, replicas)."""
    services = build_services(settings, resident=True)
    mcp_server = build_server(lambda: services, max_tokens=settings.mcp_max_tokens, version=__version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from repolens.indexing.jobs import JobRunner

        app.state.services = services
        services.store.organization("default")
        _ = services.searcher  # open the embedder now, not on the first search
        runner = JobRunner(services.store, settings) if run_jobs and settings.index_workers > 0 else None
        app.state.runner = runner
        if runner is not None:
            runner.start()
            _queue_reembedding(services)
        webhooks = batch_webhooks(services) if run_jobs else None
        if webhooks is not None:
            webhooks.start()
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            if webhooks is not None:
                webhooks.stop()
            if runner is not None:
                runner.stop()
            services.close()

    app = FastAPI(
        title="repolens",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted code intelligence: CodeAlive-compatible REST API; MCP at /mcp.",
    )
    app.state.services = services
    dialects = (codemie_errors.DIALECT, *codeer_errors.DIALECTS)  # the dialects that own their error shape
    errors.install(app, dialects)
    for module in (health, datasources, search, chat, dify, tools, admin, openai, codemie, codeer_api):
        app.include_router(module.router)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Api-Key"],
        )
    mcp_http.mount(app, mcp_server, settings)
    store = services.store
    shared = store if isinstance(store, SharedQuota) else None  # replicas of one PostgreSQL share quotas
    # One limiter for the API and the web UI: a key's plan counts its requests wherever they come from.
    limiter = RateLimiter(shared=shared, bucket="api")
    app.mount(WEB_PREFIX, create_web_app(services, limiter=limiter))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """The web UI: ``/`` is not an API route, so a browser pointed at the server lands there."""
        return RedirectResponse(f"{WEB_PREFIX}/", status_code=302, headers=SECURITY_HEADER_DICT)

    app.add_middleware(
        AccessMiddleware,
        db=lambda: services.store,
        limiter=limiter,
        authenticator=services.authenticator,
        dialects=dialects,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus bearer auth and the error responses every route can give."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schemas["Problem"].pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["DifyError"] = DifyError.model_json_schema()
    schemas["CodeerError"] = CodeerError.model_json_schema()
    schemas["OpenAIError"] = OpenAIError.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schemas["OpenAIError"].pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "API key: Authorization: Bearer ca_..."},
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    schemas["CodeMieError"] = CodeMieError.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schemas["CodeMieError"].pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    for path, item in doc.get("paths", {}).items():
        public = path in ("/health", "/ready")
        signs_in = path == codemie_api.LOGIN_PATH  # no credentials needed, a wrong password is a 401
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if path.startswith(errors.DIFY_PREFIX):
                ref, media = "DifyError", "application/json"
            elif path.startswith(errors.OPENAI_PREFIX):
                ref, media = "OpenAIError", "application/json"
            elif path.startswith(codemie_api.PREFIX):
                ref, media = "CodeMieError", "application/json"
            elif path.startswith(codeer_errors.PREFIXES):
                ref, media = "CodeerError", "application/json"
            else:
                ref, media = "Problem", errors.PROBLEM_JSON
            for status in _ERROR_STATUSES:
                if public and status not in ("500", "503"):
                    continue
                op["responses"][status] = {
                    "description": errors.CODES[int(status)][1],
                    "content": {media: {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
                }
            if not public and not signs_in:
                op["security"] = [{"bearer": []}, {"apiKey": []}]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc


__all__ = ["Services", "create_app"]


def _queue_reembedding(services: Services) -> None:
    """The embedder setting may have changed since the sources were indexed: queue the re-embedding
    of every source short of vectors from the configured model (background jobs; search answers
    meanwhile from the lexical index and whatever vectors are ready)."""
    import logging

    from repolens.indexing.jobs import queue_missing_vectors

    embedder = services.embedder
    if embedder is None:
        return
    queued = queue_missing_vectors(services.store, embedder.name)
    if queued:
        logging.getLogger(__name__).info(
            "embedder %s: re-embedding %d source(s) in the background", embedder.name, len(queued)
        )
