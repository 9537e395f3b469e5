"""``/health`` (the process answers) and ``/ready`` (the database and job runner are up)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from repolens import __version__, views
from repolens.surfaces.http.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> dict[str, str]:
    return {"status": "healthy", "version": __version__, "timestamp": views.iso(time.time()) or ""}


@router.get("/ready", response_model=Health, responses={503: {"model": Health}}, summary="Readiness")
def ready(request: Request) -> JSONResponse:
    state = request.app.state
    runner = getattr(state, "runner", None)
    ok = getattr(state, "services", None) is not None and (runner is None or runner.alive())
    body = {"status": "ready" if ok else "not_ready", "version": __version__, "timestamp": views.iso(time.time())}
    if ok:
        try:
            state.services.store.generation()
        except Exception:
            body["status"], ok = "not_ready", False
    return JSONResponse(body, status_code=200 if ok else 503)
