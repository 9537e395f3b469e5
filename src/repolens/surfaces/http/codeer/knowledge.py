"""Codeer's knowledge-base routes (``/api/v1/external/knowledge-bases/...`` and
``/api/v1/external/context-object-faqs``), over ``repolens.knowledge``.

Ids are Codeer's: nodes by UUID; a file's ``snapshot_object_id`` (its content object, which
FAQs attach to as ``context_object_id``) and crawl targets by integer. A website crawl's one
job is its target: ``website-crawl-jobs/{id}`` is the target's latest run.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from repolens import knowledge
from repolens.domain import CrawlTarget, Faq, KnowledgeNode
from repolens.errors import Conflict, InvalidInput
from repolens.storage.base import Database
from repolens.surfaces.http.codeer.envelope import iso, ok, page_bounds, paged
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/external", tags=["codeer"])
BASE = "/knowledge-bases"
# The CLI lists a folder in one call and reads no pagination, so a folder listing defaults to
# Codeer's largest page rather than its usual 50.
NODE_PAGE = 1000
# Integer ids are row ids: positive and within a signed 64-bit column, so any other number is a
# 400 here instead of an overflow in the database driver.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=100_000)


class NodeCreate(_Body):
    name: Any = None
    description: Any = None
    parent_id: str | None = None


class NodeRename(_Body):
    name: Any = None


class NodeIds(_Body):
    node_ids: list[str] = Field(max_length=knowledge.MAX_UPLOAD_FILES * 5)


class FaqIn(_Body):
    context_object_id: Any = None
    question: Any = None
    ranges: Any = None


class CrawlIn(_Body):
    start_url: Any = None
    folder_name: Any = None
    crawl_config: Any = None


def _workspaces(db: Database) -> dict[int, str]:
    return {w.id: w.public_id for w in db.list_workspaces()}


def node_json(
    node: KnowledgeNode,
    status: tuple[str, str],
    *,
    children: int,
    workspace: str,
    parent: str | None,
) -> dict[str, Any]:
    """A node as Codeer lists it (both of the names the CLI reads for each field)."""
    kind = "FOLDER" if node.kind == "folder" else "FILE"
    is_file = node.kind == "file"
    return {
        "id": node.public_id,
        "node_id": node.public_id,
        "name": node.name,
        "original_name": node.name if is_file else None,
        "type": kind,
        "node_type": kind,
        "is_root": node.parent_id is None,
        "parent_id": parent,
        "workspace_id": workspace,
        "snapshot_object_id": node.id if is_file else None,
        "status": status[0],
        "status_reason": status[1] or None,
        "description": node.description,
        "children_count": children,
        "size_bytes": node.size if is_file else None,
        "content_type": _content_type(node.name) if is_file else None,
        "source": node.origin,
        "source_url": node.origin_url or None,
        "created_at": iso(node.created_at),
        "updated_at": iso(node.updated_at),
    }


def _content_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in ("md", "markdown"):
        return "text/markdown"
    if ext == "csv":
        return "text/csv"
    guess, _ = mimetypes.guess_type(name)
    return guess if guess and guess.startswith("text/") else "text/plain"


def _nodes_json(db: Database, nodes: Sequence[KnowledgeNode], parent: KnowledgeNode | None = None) -> list[dict[str, Any]]:
    statuses = knowledge.node_statuses(db, nodes)
    counts = db.child_counts([n.id for n in nodes if n.kind == "folder"])
    spaces = _workspaces(db)
    return [
        node_json(
            n,
            statuses[n.id],
            children=counts.get(n.id, 0),
            workspace=spaces.get(n.workspace_id, ""),
            parent=parent.public_id if parent else None,
        )
        for n in nodes
    ]


def _one(db: Database, node: KnowledgeNode) -> dict[str, Any]:
    parent = db.get_node_by_id(node.parent_id) if node.parent_id is not None else None
    return _nodes_json(db, [node], parent)[0]


@router.get(f"{BASE}/nodes", summary="Knowledge bases (no parent_id) or a folder's children")
def list_nodes(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    parent_id: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    db = services.store
    size, start = page_bounds(limit, offset, default=NODE_PAGE)
    if parent_id is None:
        nodes, parent = knowledge.list_roots(db, principal), None
    else:
        parent = knowledge.get_node(db, principal, parent_id)
        nodes = db.child_nodes(parent.id)
    shown = nodes[start : start + size]
    return paged(request, _nodes_json(db, shown, parent), total=len(nodes), limit=size, offset=start)


@router.post(f"{BASE}/nodes", summary="Create a knowledge base (no parent_id) or a folder in one")
def create_node(body: NodeCreate, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    node = knowledge.create_node(
        db, services.settings, principal, name=body.name, description=body.description or "", parent_id=body.parent_id
    )
    return ok(_one(db, node))


@router.patch(f"{BASE}/nodes/{{node_id}}", summary="Rename a knowledge base, folder or file")
def rename_node(node_id: str, body: NodeRename, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    node = knowledge.rename_node(db, services.settings, principal, node_id, name=body.name)
    return ok(_one(db, node))


@router.delete(f"{BASE}/nodes/{{node_id}}", summary="Delete a node and everything under it")
def delete_node(node_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    knowledge.delete_node(services.store, services.settings, principal, node_id)
    return ok({"node_id": node_id, "deleted": True})


@router.post(f"{BASE}/files:upload", summary="Upload files into a knowledge base or folder (multipart)")
def upload(
    services: ServicesDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="the files; repeat the part for each")],
    parent_id: Annotated[str | None, Form()] = None,
    form: Annotated[str | None, Form(description='Django Ninja style: JSON {"parent_id": ...}')] = None,
) -> dict[str, Any]:
    target = parent_id or _form_parent(form)
    if not target:
        raise InvalidInput("parent_id is required: the knowledge base or folder the files go into")
    cap = services.settings.max_file_bytes
    uploads = [knowledge.IncomingFile(name=f.filename or "", data=f.file.read(cap + 1)) for f in files]
    db = services.store
    nodes = knowledge.upload_files(db, services.settings, principal, parent_id=target, uploads=uploads)
    statuses = knowledge.node_statuses(db, nodes)
    return ok(
        {
            "nodes": [
                {
                    "node_id": n.public_id,
                    "id": n.public_id,
                    "original_name": n.name,
                    "name": n.name,
                    "status": statuses[n.id][0],
                    "snapshot_object_id": n.id,
                    "size_bytes": n.size,
                }
                for n in nodes
            ]
        }
    )


def _form_parent(form: str | None) -> str | None:
    if not form:
        return None
    try:
        value = json.loads(form)
    except ValueError:
        raise InvalidInput('form must be a JSON object such as {"parent_id": "..."}') from None
    parent = value.get("parent_id") if isinstance(value, dict) else None
    return parent if isinstance(parent, str) else None


@router.post(f"{BASE}/files:status", summary="Indexing status of files (poll until READY or FAILED)")
def status(body: NodeIds, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = knowledge.statuses(services.store, principal, body.node_ids)
    return ok(
        [
            {
                "node_id": n.public_id,
                "id": n.public_id,
                "status": s,
                "snapshot_object_id": n.id if n.kind == "file" else None,
            }
            for n, s in rows
        ]
    )


@router.get(f"{BASE}/files/{{node_id}}/content", summary="A file's text")
def content(node_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    node = knowledge.file_node(db, principal, node_id)
    data = knowledge.file_bytes(db, services.settings, node)
    state = knowledge.file_status(db, node)[0]
    return ok({"node_id": node.public_id, "status": state, "name": node.name, "content": data.decode("utf-8")})


def _metadata(db: Database, node: KnowledgeNode) -> dict[str, Any]:
    return _one(db, node) | {
        "stored_file": {
            "available": True,
            "reason": None,
            "revision": str(node.id),
            "size_bytes": node.size,
            "sha256": node.sha256,
            "provenance": node.origin,
        }
    }


@router.get(f"{BASE}/files/{{node_id}}", summary="A file's metadata, with its stored bytes' size and digest")
def metadata(node_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    return ok(_metadata(db, knowledge.file_node(db, principal, node_id)))


@router.get(f"{BASE}/files/{{node_id}}/export", summary="A file's metadata, text and FAQs as one snapshot")
def export(
    node_id: str, services: ServicesDep, principal: PrincipalDep, expected_export_revision: str | None = None
) -> dict[str, Any]:
    db = services.store
    node = knowledge.file_node(db, principal, node_id)
    faqs = knowledge.faqs_of(db, node)
    revision = knowledge.export_revision(node, faqs)
    if expected_export_revision and expected_export_revision != revision:
        raise Conflict(f"the file or its FAQs changed since export revision {expected_export_revision!r}", [revision])
    text = knowledge.file_bytes(db, services.settings, node).decode("utf-8")
    return ok(
        {
            "metadata": _metadata(db, node),
            "snapshot": {"snapshot_object_id": node.id, "content": text},
            "faqs": [faq_json(f) for f in faqs],
            "export_revision": revision,
        }
    )


@router.get(
    f"{BASE}/files/{{node_id}}/download",
    summary="A file's bytes as uploaded",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    node_id: str, services: ServicesDep, principal: PrincipalDep, expected_snapshot_object_id: str | None = None
) -> Response:
    db = services.store
    node = knowledge.file_node(db, principal, node_id)
    if expected_snapshot_object_id is not None and expected_snapshot_object_id != str(node.id):
        raise Conflict(f"node {node_id!r} holds snapshot {node.id}, not {expected_snapshot_object_id!r}", [str(node.id)])
    data = knowledge.file_bytes(db, services.settings, node)
    return Response(
        data,
        media_type=_content_type(node.name),
        headers={
            "X-Codeer-Snapshot-Object-Id": str(node.id),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(node.name)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


# -- FAQs -----------------------------------------------------------------------------------


def faq_json(faq: Faq) -> dict[str, Any]:
    """An FAQ as Codeer shows it."""
    return {
        "id": faq.id,
        "context_object_id": faq.node_id,
        "question": faq.question,
        "ranges": json.loads(faq.ranges or "[]"),
        "has_question_embedding": False,  # FAQs are matched by the index's own search, not a vector of their own
        "created_at": iso(faq.created_at),
        "updated_at": iso(faq.updated_at),
    }


@router.get("/context-object-faqs", summary="FAQs of one file, or of every file the key sees")
def list_faqs(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    context_object_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    faqs, total = knowledge.list_faqs(
        services.store, principal, context_object_id=context_object_id, limit=limit, offset=offset
    )
    return paged(request, [faq_json(f) for f in faqs], total=total, limit=limit, offset=offset)


@router.post("/context-object-faqs", summary="Attach an FAQ to a file")
def create_faq(body: FaqIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    faq = knowledge.create_faq(
        services.store, principal, context_object_id=body.context_object_id, question=body.question, ranges=body.ranges
    )
    return ok(faq_json(faq))


@router.get("/context-object-faqs/{faq_id}", summary="One FAQ")
def get_faq(faq_id: RowId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(faq_json(knowledge.get_faq(services.store, principal, faq_id)))


@router.patch("/context-object-faqs/{faq_id}", summary="Change an FAQ")
def update_faq(faq_id: RowId, body: FaqIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return ok(faq_json(knowledge.update_faq(services.store, principal, faq_id, changes)))


@router.delete("/context-object-faqs/{faq_id}", summary="Delete an FAQ")
def delete_faq(faq_id: RowId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    knowledge.delete_faq(services.store, principal, faq_id)
    return ok({"id": faq_id, "deleted": True})


# -- website crawls -------------------------------------------------------------------------


def crawl_json(target: CrawlTarget, folder: KnowledgeNode) -> dict[str, Any]:
    """A crawl target with its latest run (its one job)."""
    failures = json.loads(target.failures or "[]")
    return {
        "id": target.id,
        "target_id": target.id,
        "folder_id": folder.public_id,
        "node_id": folder.public_id,
        "start_url": target.start_url,
        "crawl_config": json.loads(target.config or "{}"),
        "status": target.state.upper(),
        "latest_job": {
            "id": target.id,
            "job_id": target.id,
            "run": target.runs,
            "status": target.state.upper(),
            "pages_stored": target.pages,
            "failed_count": len(failures),
        }
        if target.runs
        else None,
        "created_at": iso(target.created_at),
        "updated_at": iso(target.updated_at),
    }


@router.post(f"{BASE}/website-crawls", summary="A knowledge base fed by a website (same guards as git clones)")
def create_crawl(body: CrawlIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    folder, target = knowledge.create_crawl(
        services.store,
        services.settings,
        principal,
        start_url=body.start_url,
        folder_name=body.folder_name,
        config=body.crawl_config,
    )
    return ok(crawl_json(target, folder))


@router.patch(f"{BASE}/website-crawls/{{target_id}}", summary="Change a crawl target's URL or settings")
def update_crawl(target_id: RowId, body: CrawlIn, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    target = knowledge.update_crawl(
        db, services.settings, principal, target_id, start_url=body.start_url, config=body.crawl_config
    )
    return ok(crawl_json(target, knowledge.crawl_target(db, principal, target.id)[1]))


@router.post(f"{BASE}/website-crawls/{{target_id}}:sync", summary="Crawl the site now and index its pages")
def sync_crawl(target_id: RowId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    target = knowledge.sync_crawl(db, services.settings, principal, target_id)
    return ok(crawl_json(target, knowledge.crawl_target(db, principal, target.id)[1]))


@router.post(f"{BASE}/website-crawls/{{target_id}}:cancel", summary="Cancel a crawl target's runs")
def cancel_crawl(target_id: RowId, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    target = knowledge.cancel_crawl(db, principal, target_id)
    return ok(crawl_json(target, knowledge.crawl_target(db, principal, target.id)[1]))


@router.get(f"{BASE}/nodes/{{folder_id}}/website-crawl-state", summary="The crawl feeding a folder")
def crawl_state(folder_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    db = services.store
    folder = knowledge.get_node(db, principal, folder_id)
    target = db.crawl_target_of(folder.id)
    return ok({"folder_id": folder.public_id, "target": crawl_json(target, folder) if target else None})


@router.get(f"{BASE}/website-crawl-jobs/{{job_id}}/failures", summary="Pages a crawl's latest run could not store")
def crawl_failures(
    request: Request,
    job_id: RowId,
    services: ServicesDep,
    principal: PrincipalDep,
    status: str = "DOWNLOAD_FAILED,FAILED",
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    size, start = page_bounds(limit, offset)
    target, _ = knowledge.crawl_target(services.store, principal, job_id)
    wanted = {s.strip().upper() for s in status.split(",") if s.strip()}
    rows = [f for f in json.loads(target.failures or "[]") if not wanted or str(f.get("status")).upper() in wanted]
    return paged(request, rows[start : start + size], total=len(rows), limit=size, offset=start)
