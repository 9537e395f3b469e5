"""Codeer's success envelope and its pagination block (specs/codemie_codeer.md §2.1)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request

from repolens import views
from repolens.errors import InvalidInput

DEFAULT_LIMIT = 50  # Codeer's default page size
MAX_LIMIT = 1000  # Codeer's largest page


def ok(data: Any) -> dict[str, Any]:
    """A success without pagination."""
    return {"data": data, "message": None, "error_code": 0, "pagination": None}


def page_bounds(limit: int | None, offset: int | None, *, default: int = DEFAULT_LIMIT) -> tuple[int, int]:
    """(limit, offset) checked against Codeer's bounds."""
    chosen = default if limit is None else limit
    start = 0 if offset is None else offset
    if not 1 <= chosen <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}")
    if start < 0:
        raise InvalidInput("offset must be 0 or more")
    return chosen, start


def paged(request: Request, data: list[Any], *, total: int, limit: int, offset: int) -> dict[str, Any]:
    """A list page with Codeer's pagination: ``current_page = offset/limit + 1``, next/previous as URLs."""

    def link(at: int) -> str:
        return str(request.url.include_query_params(limit=limit, offset=at))

    return {
        "data": data,
        "message": None,
        "error_code": 0,
        "pagination": {
            "limit": limit,
            "offset": offset,
            "total_records": total,
            "total_pages": max(1, math.ceil(total / limit)),
            "current_page": offset // limit + 1,
            "next_page": link(offset + limit) if offset + limit < total else None,
            "prev_page": link(max(0, offset - limit)) if offset > 0 else None,
        },
    }


def iso(ts: float | None) -> str | None:
    """A timestamp as Codeer shows it (ISO 8601, UTC, ``Z``)."""
    return views.iso(ts)
