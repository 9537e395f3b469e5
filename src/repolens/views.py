"""Core results in CodeAlive's JSON shapes (specs/codealive.md §3.1-3.4).

Shared by the CLI's ``--json`` output and the REST API, so both print the same thing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from repolens.domain import ApiKey, Artifact, Job, Source, User, Workspace
from repolens.validation import MAX_TIMESTAMP_S

if TYPE_CHECKING:  # a CLI search imports views: it pays for no module it does not run
    from repolens.retrieval.artifacts import FetchedArtifact
    from repolens.retrieval.graph import RelationGroup
    from repolens.retrieval.grep import GrepHit
    from repolens.retrieval.search import ScoredArtifact, SearchOutcome

Detail = Literal["Short", "Full"]
_SNIPPET_LINES = 6  # enough to recognise a hit without fetching it


def data_source(source: Source) -> dict[str, str]:
    """The ``dataSource`` object of a result."""
    return {"type": "repository", "id": source.public_id, "name": source.name}


def description(row: Artifact, detail: Detail = "Short") -> str:
    """Signature plus the first docstring line (Short) or the whole docstring (Full)."""
    head = row.signature or (f"{row.kind} {row.path}" if row.kind != "Symbol" else row.qualified_name)
    if row.kind == "Chunk" and row.name:
        head = f"Section: {row.name}"
    doc = row.doc if detail == "Full" else row.doc.split("\n", 1)[0]
    return f"{head}\n{doc}".strip() if doc else head


def search_result(
    hit: ScoredArtifact, *, top_score: float, content: str | None, detail: Detail = "Short", snippet: str = ""
) -> dict[str, Any]:
    """One ``SearchResult``."""
    row = hit.artifact
    out: dict[str, Any] = {
        "kind": row.kind,
        "identifier": row.identifier(hit.source.name),
        "dataSource": data_source(hit.source),
        "location": {"path": row.path, "range": _range(row.start_line, row.end_line)},
        "score": round(hit.score / top_score, 4) if top_score > 0 else 0.0,
        "description": description(row, detail),
        "contentByteSize": len(content.encode("utf-8")) if content is not None else 0,
        "commit": hit.source.commit,
    }
    if snippet:
        out["snippet"] = snippet
    if content is not None:
        out["content"] = content
    return out


def _range(start: int, end: int) -> dict[str, dict[str, int]]:
    return {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}}


def search_response(
    outcome: SearchOutcome, contents: dict[int, str], *, include_content: bool, detail: Detail = "Short"
) -> dict[str, Any]:
    """The ``SearchResponse``, plus an ``index`` block saying what the search could use."""
    top = outcome.hits[0].score if outcome.hits else 0.0
    results = []
    for hit in outcome.hits:
        text = contents.get(hit.artifact.id, "")
        snippet = "\n".join(text.split("\n")[:_SNIPPET_LINES])
        item = search_result(hit, top_score=top, content=text if include_content else None, detail=detail, snippet=snippet)
        item["contentByteSize"] = len(text.encode("utf-8"))
        results.append(item)
    return {
        "results": results,
        "index": {
            "mode": outcome.mode,
            "vectorsReady": outcome.vectors_ready,
            "vectorsTotal": outcome.vectors_total,
            "vectorsModel": outcome.vectors_model or None,
        },
    }


def grep_response(hits: list[GrepHit]) -> dict[str, Any]:
    """``{"results": [GrepResult]}`` (1-based lines and columns)."""
    results = []
    for h in hits:
        first = h.matches[0].line if h.matches else 1
        item: dict[str, Any] = {
            "kind": "File",
            "identifier": f"{h.source.name}::{h.file.path}",
            "dataSource": data_source(h.source),
            "location": {"path": h.file.path, "range": {"start": {"line": first}, "end": {"line": first}}},
            "contentByteSize": h.file.size,
            "matchCount": h.match_count,
            "matches": [
                {"lineNumber": m.line, "startColumn": m.start_column, "endColumn": m.end_column, "lineText": m.text}
                for m in h.matches
            ],
        }
        if h.by_name:
            item["matchedByName"] = True
        results.append(item)
    return {"results": results}


def fetch_response(items: list[FetchedArtifact], previews: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """``{"artifacts": [...]}`` with content and a relationships preview for functions."""
    artifacts = []
    for item in items:
        if not item.found or item.artifact is None or item.content is None:
            artifacts.append({"identifier": item.identifier, "found": False, "content": None})
            continue
        artifacts.append(
            {
                "identifier": item.identifier,
                "found": True,
                "kind": item.artifact.kind,
                "content": item.content,
                "contentByteSize": len(item.content.encode("utf-8")),
                "startLine": item.artifact.start_line,
                "endLine": item.artifact.end_line,
                "commit": item.source.commit if item.source else "",
                "relationships": previews.get(item.identifier),
            }
        )
    return {"artifacts": artifacts}


def relation_item(row: Artifact, source: Source, line: int, resolution: str = "name match") -> dict[str, Any]:
    """One related artifact; ``resolution`` says how the edge was linked (``resolved`` through the
    file's imports, ``self``/``this`` or a receiver type; ``name match`` by bare name)."""
    return {
        "identifier": row.identifier(source.name),
        "filePath": row.path,
        "startLine": row.start_line,
        "shortSummary": description(row),
        "line": line,
        "resolution": resolution,
    }


def relationships_response(
    source: Source,
    artifact: Artifact | None,
    identifier: str,
    profile: str,
    groups: list[RelationGroup],
    available: dict[str, int],
) -> dict[str, Any]:
    """The ``artifact-relationships`` response."""
    if artifact is None:
        return {"sourceIdentifier": identifier, "profile": profile, "found": False}
    return {
        "sourceIdentifier": artifact.identifier(source.name),
        "profile": profile,
        "found": True,
        "relationships": [
            {
                "relationType": g.direction,
                "totalCount": g.total,
                "returnedCount": len(g.items),
                "truncated": g.total > len(g.items),
                "items": [relation_item(row, source, line, g.resolution.get(row.id, "name match")) for row, line in g.items],
                # calls the parser saw but could not place (an untyped receiver, a builtin):
                # named, linked to nothing
                "unresolved": [{"name": name, "line": line} for name, line in g.unresolved],
            }
            for g in groups
        ],
        "availableRelationshipCounts": available,
    }


# -- data sources, jobs, keys ------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC timestamp.

    A value datetime cannot show (a row saved before timestamps were validated: 1e308, inf, NaN)
    is clamped to 1970..9999 rather than failing the whole listing; NaN shows as the epoch, as
    ``authenticate`` treats a NaN expiry as past.
    """
    if ts is None:
        return None
    import datetime as _dt

    shown = 0.0 if math.isnan(ts) else min(max(ts, 0.0), MAX_TIMESTAMP_S)
    return _dt.datetime.fromtimestamp(shown, tz=_dt.UTC).isoformat().replace("+00:00", "Z")


def job_json(job: Job) -> dict[str, Any]:
    """A job's state and progress: ``files*`` count the file phases, ``units*`` the vectors phase
    (null outside them), ``percent`` is 100 only when the job is done."""
    from repolens.indexing.jobs import phase_counts

    counts = phase_counts(job)
    files = counts[1:] if counts is not None and counts[0] == "files" else (None, None)
    units = counts[1:] if counts is not None and counts[0] == "units" else (None, None)
    return {
        "id": job.public_id,
        "state": job.state,
        "reason": job.reason or None,
        "phase": job.phase,
        "filesDone": files[0],
        "filesTotal": files[1],
        "unitsDone": units[0],
        "unitsTotal": units[1],
        "percent": job.percent,
        "attempts": job.attempts,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
    }


def repository_json(
    source: Source, *, job: Job | None = None, remote: bool = True, vectors: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A repository as ``/api/datasources`` lists it (``url`` only for remote sources; ``vectors``
    from ``vectors_json`` on the single-repository view)."""
    out: dict[str, Any] = {
        "id": source.public_id,
        "name": source.name,
        "type": "Repository",
        "url": source.location if remote else None,
        "branch": source.branch,
        "description": source.description,
        "state": source.state,
        "stateReason": source.state_reason or None,
        "commit": source.commit or None,
        "files": source.file_count,
        "artifacts": source.artifact_count,
        "indexedAt": iso(source.indexed_at),
    }
    if job is not None:
        out["job"] = job_json(job)
    if vectors is not None:
        out["vectors"] = vectors
    return out


def vectors_json(model: str, ready: int, total: int, by_model: list[tuple[str, int]]) -> dict[str, Any]:
    """Which model a source's vectors came from: the configured one's coverage and every model's count."""
    return {"model": model, "ready": ready, "total": total, "byModel": dict(by_model)}


def workspace_json(workspace: Workspace, members: list[Source]) -> dict[str, Any]:
    """A workspace as ``/api/datasources`` lists it."""
    ready = any(m.state == "Ready" for m in members)
    return {
        "id": workspace.public_id,
        "name": workspace.name,
        "type": "Workspace",
        "description": workspace.description,
        "repositoryIds": [m.public_id for m in members],
        "state": "Ready" if ready else ("New" if members else "Ready"),
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key's metadata (never its secret)."""
    return {
        "id": key.key_id,
        "name": key.name,
        "role": key.role,
        "plan": key.plan,
        "requestsPerHour": key.requests_per_hour,
        "concurrency": key.concurrency,
        "scopes": list(key.scopes),
        "createdAt": iso(key.created_at),
        "expiresAt": iso(key.expires_at),
        "revokedAt": iso(key.revoked_at),
    }


def user_json(user: User) -> dict[str, Any]:
    """A user's metadata (never the password hash)."""
    return {
        "id": user.public_id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "scopes": list(user.scopes),
        "disabled": user.disabled_at is not None,
        "createdAt": iso(user.created_at),
        "disabledAt": iso(user.disabled_at),
        "lastLoginAt": iso(user.last_login_at),
    }
