"""Knowledge bases: folders and files that people upload (or a crawl fetches), indexed by the
same engine as repositories and searchable like any data source. Dialect-free use cases.

A knowledge base is a root node that owns a data source: its location is a folder under the
data dir (``<home>/knowledge/<root id>``), its files sit there at their tree paths, and the
ordinary job queue and pipeline index them (markdown split by headings, code by symbols).
A file's status is read off the index, not stored: READY once the index holds the file's
bytes, FAILED once a run after the upload finished without them, PENDING or PROCESSING before.

Every base belongs to a workspace; a key sees the bases of the workspaces in its scope (an
unscoped key: all), and its data source joins the workspace, so a workspace-scoped key can
search it too. Uploads are checked whole before anything is written: one bad file (binary,
too large, a name that would escape its folder) refuses the request and stores nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from repolens import validation
from repolens.access.keys import Principal
from repolens.catalog import delete_repository
from repolens.domain import CrawlTarget, Faq, Job, KnowledgeNode, Source, Workspace
from repolens.errors import ClientNotAllowed, Conflict, Forbidden, InvalidInput, NotFound, RepolensError, StorageError
from repolens.settings import Settings
from repolens.sources import filters, git, web
from repolens.sources.languages import language_of
from repolens.storage.base import Database
from repolens.storage.knowledge import NewNode, ranges_json

FileStatus = Literal["PENDING", "PROCESSING", "READY", "FAILED"]

DEFAULT_WORKSPACE = "default"  # the workspace of an unscoped key's knowledge bases
MAX_NODE_NAME_CHARS = 255  # a file name on every common file system
MAX_DESCRIPTION_CHARS = 4_000
MAX_UPLOAD_FILES = 200  # per request: a folder the CLI uploads in one go
# Prose and tables besides code: what a knowledge base is for. Code files are recognised by
# the indexer's own language table, so whatever it can split by symbols can be uploaded.
TEXT_EXTENSIONS = frozenset({"md", "markdown", "txt", "text", "csv", "tsv", "rst", "adoc", "org"})
MAX_FAQ_QUESTION_CHARS = 2_000
MAX_FAQ_RANGES = 100
MAX_PAGE_LIMIT = 200  # FAQ pages (the CLI asks 1-200)
MAX_ROW_ID = 2**63 - 1  # integer ids are signed 64-bit row ids in both backends
# A base's newest jobs read to find its latest index run: a crawl queues one crawl job at a
# time (a sync while one is queued or running is refused), so the index run is among a few.
JOBS_LOOKED_AT = 5


# -- workspaces of a key ---------------------------------------------------------------------


def workspaces_of(db: Database, principal: Principal) -> list[Workspace]:
    """The workspaces a key works in: those in its scope, or every one (with the default
    workspace made on first use) for an unscoped key."""
    if not principal.key.scopes:
        default_workspace(db)
        return db.list_workspaces()
    found = [db.get_workspace(s) for s in principal.key.scopes]
    return [w for w in found if w is not None and w.public_id in principal.key.scopes]


def default_workspace(db: Database) -> Workspace:
    """The install's default workspace, made on first call."""
    ws = db.get_workspace(DEFAULT_WORKSPACE)
    if ws is None:
        try:
            ws = db.create_workspace(name=DEFAULT_WORKSPACE, description="Knowledge bases of unscoped keys", source_ids=())
        except Conflict:  # another request made it first, or a repository has the name
            ws = db.get_workspace(DEFAULT_WORKSPACE)
    if ws is None:
        raise Conflict(
            f"the {DEFAULT_WORKSPACE!r} workspace cannot be made: a repository has that name; "
            "use a key scoped to a workspace",
            [DEFAULT_WORKSPACE],
        )
    return ws


def home_workspace(db: Database, principal: Principal) -> Workspace:
    """The workspace a key's new knowledge bases go to: its first scoped workspace, or the
    default one for an unscoped key; a key scoped to repositories only has none."""
    if not principal.key.scopes:
        return default_workspace(db)
    spaces = workspaces_of(db, principal)
    if not spaces:
        raise Forbidden("this key is scoped to repositories only; knowledge bases need a key scoped to a workspace")
    return spaces[0]


def _visible(db: Database, principal: Principal, node: KnowledgeNode) -> bool:
    if not principal.key.scopes:
        return True
    return any(w.id == node.workspace_id for w in workspaces_of(db, principal))


# -- nodes ----------------------------------------------------------------------------------


def base_dir(settings: Settings, base_id: str) -> Path:
    """Where the files of the knowledge base with root ``base_id`` live (its source's location)."""
    return settings.home / "knowledge" / base_id


def _folder_of(db: Database, settings: Settings, node: KnowledgeNode) -> Path:
    root = node if node.parent_id is None else db.get_node_by_id(node.root_id)
    if root is None:
        raise NotFound("the knowledge base of this node is gone")
    return base_dir(settings, root.public_id)


def check_node_name(name: object, *, what: str = "name") -> str:
    """A node name that is one path component and nothing more: no separators, no ``..``, no
    leading dot (a ``.gitignore`` would hide its neighbours from the indexer), printable."""
    if not isinstance(name, str):
        raise InvalidInput(f"{what} must be a string")
    name = validation.require_name(name, what=what, max_chars=MAX_NODE_NAME_CHARS)
    if "/" in name or "\\" in name:
        raise InvalidInput(f"{what} {name!r} must not contain '/' or '\\' (one name, not a path)")
    if name.startswith("."):
        raise InvalidInput(f"{what} {name!r} must not start with '.' (no '.', '..' or hidden files)")
    if name != name.strip() or name.endswith("."):
        raise InvalidInput(f"{what} {name!r} must not end with a dot or space")
    return name


def get_node(db: Database, principal: Principal, public_id: str) -> KnowledgeNode:
    """A node the key may see, or ``NotFound``."""
    node = db.get_node(public_id) if isinstance(public_id, str) and len(public_id) <= 64 else None
    if node is None or not _visible(db, principal, node):
        raise NotFound(f"no knowledge-base node {public_id!r}")
    return node


def list_roots(db: Database, principal: Principal) -> list[KnowledgeNode]:
    """The knowledge bases the key sees."""
    if not principal.key.scopes:
        return db.root_nodes()
    ids = {w.id for w in workspaces_of(db, principal)}
    return [n for n in db.root_nodes() if n.workspace_id in ids]


def list_children(db: Database, principal: Principal, parent_public_id: str) -> list[KnowledgeNode]:
    """A folder's children (folders first)."""
    parent = get_node(db, principal, parent_public_id)
    return db.child_nodes(parent.id)


def _folder(db: Database, principal: Principal, public_id: str) -> KnowledgeNode:
    node = get_node(db, principal, public_id)
    if node.kind != "folder":
        raise InvalidInput(f"node {public_id!r} is a file; files go into a knowledge base or a folder")
    return node


def _child_path(parent: KnowledgeNode, name: str) -> str:
    return f"{parent.path}/{name}" if parent.path else name


def create_node(
    db: Database,
    settings: Settings,
    principal: Principal,
    *,
    name: object,
    description: object = "",
    parent_id: str | None = None,
) -> KnowledgeNode:
    """A new knowledge base (no parent) or a folder in one."""
    name = check_node_name(name)
    text = validation.require_description(
        description if isinstance(description, str) else "", max_chars=MAX_DESCRIPTION_CHARS
    )
    if parent_id is None:
        return _create_base(db, settings, principal, name=name, description=text)
    parent = _folder(db, principal, parent_id)
    (node,) = db.create_nodes(
        workspace_id=parent.workspace_id,
        source_id=parent.source_id,
        nodes=[NewNode(kind="folder", name=name, path=_child_path(parent, name), parent_id=parent.id, description=text)],
    )
    (_folder_of(db, settings, node) / node.path).mkdir(parents=True, exist_ok=True)
    return node


def _create_base(db: Database, settings: Settings, principal: Principal, *, name: str, description: str) -> KnowledgeNode:
    workspace = home_workspace(db, principal)
    if any(n.name == name and n.workspace_id == workspace.id for n in db.root_nodes()):
        raise Conflict(f"this workspace already holds a knowledge base named {name!r}", [name])
    # The root's UUID names its data source and folder: base names repeat across workspaces
    # and change, ids do not.
    base_id = str(uuid.uuid4())
    folder = base_dir(settings, base_id)
    folder.mkdir(parents=True, exist_ok=True)
    source = db.create_source(name=source_name(base_id), location=str(folder), branch=None, description=name)
    try:
        (root,) = db.create_nodes(
            workspace_id=workspace.id,
            source_id=source.id,
            nodes=[NewNode(kind="folder", name=name, path="", description=description, public_id=base_id)],
        )
        db.add_workspace_source(workspace.id, source.id)
    except BaseException:
        _drop_base(db, settings, base_id)
        raise
    return root


def source_name(base_id: str) -> str:
    """The data source name of the knowledge base with root ``base_id``."""
    return f"kb/{base_id}"


def source_of(db: Database, principal: Principal, node_id: str) -> Source:
    """The data source holding a knowledge base's files (any node of it names the base): what a
    search over the base, such as an agent's knowledge-base tool, is scoped to."""
    node = get_node(db, principal, node_id)
    root = node if node.parent_id is None else db.get_node_by_id(node.root_id)
    source = db.get_source(source_name(root.public_id)) if root is not None else None
    if source is None:
        raise NotFound(f"the knowledge base of node {node_id!r} has no data source")
    return source


def _drop_base(db: Database, settings: Settings, base_id: str) -> None:
    source = db.get_source(source_name(base_id))
    if source is not None:
        delete_repository(db, settings, source)
    shutil.rmtree(base_dir(settings, base_id), ignore_errors=True)


def rename_node(db: Database, settings: Settings, principal: Principal, public_id: str, *, name: object) -> KnowledgeNode:
    """Give a node a new name (a folder's files move with it and are indexed again)."""
    node = get_node(db, principal, public_id)
    name = check_node_name(name)
    if name == node.name:
        return node
    if node.parent_id is None:
        if any(n.name == name and n.workspace_id == node.workspace_id for n in db.root_nodes()):
            raise Conflict(f"this workspace already holds a knowledge base named {name!r}", [name])
        db.rename_node(node, name=name, path="")
        source = db.get_source(source_name(node.public_id))
        if source is not None:
            db.update_source(source.id, description=name)
    else:
        parent = db.get_node_by_id(node.parent_id)
        assert parent is not None
        path = _child_path(parent, name)
        folder = _folder_of(db, settings, node)
        if (folder / path).exists():
            raise Conflict(f"this folder already holds a node named {name!r}", [name])
        db.rename_node(node, name=name, path=path)
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder / node.path, folder / path)
        db.enqueue_job(kind="index", source_id=node.source_id)
    renamed = db.get_node_by_id(node.id)
    assert renamed is not None
    return renamed


def delete_node(db: Database, settings: Settings, principal: Principal, public_id: str) -> None:
    """Remove a node and everything under it (a knowledge base: its data source and index too)."""
    node = get_node(db, principal, public_id)
    folder = _folder_of(db, settings, node)
    db.delete_nodes([n.id for n in db.subtree(node)])
    if node.parent_id is None:
        _drop_base(db, settings, node.public_id)
        return
    target = folder / node.path
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)
    db.enqueue_job(kind="index", source_id=node.source_id)


# -- uploads --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """One file of a knowledge-base upload request, as received (not ``domain.Upload``, a file
    stored for a chat)."""

    name: str
    data: bytes


def check_upload(upload: IncomingFile, *, max_bytes: int) -> str:
    """The file's checked name, or ``InvalidInput`` saying why the file is refused."""
    name = check_node_name(upload.name, what="file name")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in TEXT_EXTENSIONS and language_of(name) is None:
        raise InvalidInput(
            f"file {name!r}: only markdown, text, CSV and source code files can be uploaded "
            f"({', '.join(sorted(TEXT_EXTENSIONS))} or a programming language's extension)"
        )
    if len(upload.data) > max_bytes:
        raise InvalidInput(f"file {name!r} is {len(upload.data)} bytes; the limit is {max_bytes} bytes per file")
    if not upload.data:
        raise InvalidInput(f"file {name!r} is empty")
    verdict = filters.classify_content(name, upload.data)
    if isinstance(verdict, tuple) and verdict[0] in ("binary", "not_utf8"):
        raise InvalidInput(f"file {name!r} is not UTF-8 text ({verdict[1]})")
    return name


def upload_files(
    db: Database, settings: Settings, principal: Principal, *, parent_id: str, uploads: Sequence[IncomingFile]
) -> list[KnowledgeNode]:
    """Store files into a folder and queue their indexing: every file is checked first, and
    the rows are written in one transaction, so a refused request leaves nothing behind."""
    parent = _folder(db, principal, parent_id)
    if not uploads:
        raise InvalidInput("no files: send one or more multipart parts named 'files'")
    if len(uploads) > MAX_UPLOAD_FILES:
        raise InvalidInput(f"{len(uploads)} files in one request; send at most {MAX_UPLOAD_FILES}")
    names = [check_upload(u, max_bytes=settings.max_file_bytes) for u in uploads]
    if len(set(names)) != len(names):
        raise InvalidInput("two files in the request have the same name")
    return _store_files(
        db,
        settings,
        parent,
        [(name, u.data, "upload", "") for name, u in zip(names, uploads, strict=True)],
    )


def _store_files(
    db: Database,
    settings: Settings,
    parent: KnowledgeNode,
    files: Sequence[tuple[str, bytes, Literal["upload", "crawl"], str]],
) -> list[KnowledgeNode]:
    folder = _folder_of(db, settings, parent)
    staging = settings.home / "knowledge" / f".staging-{secrets.token_hex(8)}"
    staging.mkdir(parents=True)
    try:
        for i, (_name, data, _origin, _url) in enumerate(files):
            (staging / str(i)).write_bytes(data)
        new = [
            NewNode(
                kind="file",
                name=name,
                path=_child_path(parent, name),
                parent_id=parent.id,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                index_sha=filters.content_hash(data),
                origin=origin,
                origin_url=url,
            )
            for name, data, origin, url in files
        ]
        for n in new:
            if (folder / n.path).exists():
                raise Conflict(f"this folder already holds a file named {n.name!r}", [n.name])
        nodes = db.create_nodes(workspace_id=parent.workspace_id, source_id=parent.source_id, nodes=new)
        try:
            (folder / parent.path).mkdir(parents=True, exist_ok=True)
            for i, node in enumerate(nodes):
                os.replace(staging / str(i), folder / node.path)
        except OSError as exc:
            db.delete_nodes([n.id for n in nodes])
            for node in nodes:
                (folder / node.path).unlink(missing_ok=True)
            raise StorageError(f"could not store the uploaded files: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    db.enqueue_job(kind="index", source_id=parent.source_id)
    return nodes


def file_status(db: Database, node: KnowledgeNode) -> tuple[FileStatus, str]:
    """(status, why) of a file, read off the index and its source's latest job."""
    return node_statuses(db, [node])[node.id]


def node_statuses(db: Database, nodes: Sequence[KnowledgeNode]) -> dict[int, tuple[FileStatus, str]]:
    """node id -> (status, why) for many nodes, reading each source's index state once."""
    hashes: dict[int, dict[str, str]] = {}
    latest: dict[int, Job | None] = {}
    out: dict[int, tuple[FileStatus, str]] = {}
    for node in nodes:
        if node.kind == "folder":
            out[node.id] = ("READY", "")
            continue
        if node.source_id not in hashes:
            hashes[node.source_id] = db.file_hashes(node.source_id)
            # The base's crawl jobs share its source; a file's status is its latest index run's.
            jobs = [j for j in db.jobs_for_source(node.source_id, limit=JOBS_LOOKED_AT) if j.kind == "index"]
            latest[node.source_id] = jobs[0] if jobs else None
        out[node.id] = _status(node, hashes[node.source_id].get(node.path), latest[node.source_id])
    return out


def _status(node: KnowledgeNode, indexed: str | None, job: Job | None) -> tuple[FileStatus, str]:
    if indexed == node.index_sha:
        return "READY", ""
    if job is None:
        return "FAILED", "no indexing job was queued"
    if job.state == "New":
        return "PENDING", ""
    # A run that started before the upload may not have seen the file; the one queued behind it will.
    if job.state == "Processing" or (job.started_at or 0) < node.created_at:
        return "PROCESSING", ""
    if job.state == "Failed":
        return "FAILED", job.reason or "indexing failed"
    return "FAILED", "the indexer skipped the file (generated, minified or unreadable)"


def statuses(db: Database, principal: Principal, public_ids: Sequence[str]) -> list[tuple[KnowledgeNode, FileStatus]]:
    """The status of each named file the key sees (``NotFound`` for any other)."""
    nodes = [get_node(db, principal, public_id) for public_id in public_ids]
    found = node_statuses(db, nodes)
    return [(node, found[node.id][0]) for node in nodes]


def file_node(db: Database, principal: Principal, public_id: str) -> KnowledgeNode:
    """A file node the key sees."""
    node = get_node(db, principal, public_id)
    if node.kind != "file":
        raise InvalidInput(f"node {public_id!r} is a folder, not a file")
    return node


def file_bytes(db: Database, settings: Settings, node: KnowledgeNode) -> bytes:
    """The stored bytes of a file, as uploaded."""
    path = _folder_of(db, settings, node) / node.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the stored file of node {node.public_id!r} is missing") from None
    if hashlib.sha256(data).hexdigest() != node.sha256:
        raise StorageError(f"the stored file of node {node.public_id!r} changed on disk")
    return data


def export_revision(node: KnowledgeNode, faqs: Sequence[Faq]) -> str:
    """A token that changes whenever the file or any of its FAQs does."""
    h = hashlib.sha256(node.sha256.encode())
    for faq in sorted(faqs, key=lambda f: f.id):
        h.update(f"|{faq.id}:{faq.updated_at!r}:{faq.question}:{faq.ranges}".encode())
    return h.hexdigest()[:32]


# -- FAQs -----------------------------------------------------------------------------------


def _faq_file(db: Database, principal: Principal, context_object_id: object) -> KnowledgeNode:
    if (
        not isinstance(context_object_id, int)
        or isinstance(context_object_id, bool)
        or not 1 <= context_object_id <= MAX_ROW_ID
    ):
        raise InvalidInput("context_object_id must be a positive integer (a file's snapshot_object_id)")
    node = db.get_node_by_id(context_object_id)
    if node is None or node.kind != "file" or not _visible(db, principal, node):
        raise NotFound(f"no knowledge-base file with snapshot_object_id {context_object_id}")
    return node


def _check_question(question: object) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput("question must be a non-empty string")
    return validation.require_description(question.strip(), max_chars=MAX_FAQ_QUESTION_CHARS)


def _check_ranges(ranges: object) -> str:
    if ranges is None:
        return "[]"
    if not isinstance(ranges, list) or len(ranges) > MAX_FAQ_RANGES:
        raise InvalidInput(f"ranges must be a list of at most {MAX_FAQ_RANGES} objects")
    keys = ("start_line", "start_column", "end_line", "end_column")
    out: list[dict[str, int]] = []
    for r in ranges:
        if not isinstance(r, dict) or set(r) - set(keys) or not all(isinstance(r.get(k), int) for k in keys):
            raise InvalidInput(f"each range must be {{{', '.join(keys)}}} with integer values")
        item = {k: int(r[k]) for k in keys}
        if item["start_line"] < 1 or item["end_line"] < 1 or item["start_column"] < 0 or item["end_column"] < 0:
            raise InvalidInput("range lines start at 1 and columns at 0")
        if (item["end_line"], item["end_column"]) < (item["start_line"], item["start_column"]):
            raise InvalidInput("a range must end at or after its start")
        out.append(item)
    return ranges_json(out)


def create_faq(db: Database, principal: Principal, *, context_object_id: object, question: object, ranges: object) -> Faq:
    """A new FAQ on a file the key sees."""
    node = _faq_file(db, principal, context_object_id)
    return db.create_faq(node_id=node.id, question=_check_question(question), ranges=_check_ranges(ranges))


def get_faq(db: Database, principal: Principal, faq_id: int) -> Faq:
    """An FAQ on a file the key sees."""
    faq = db.get_faq(faq_id)
    node = db.get_node_by_id(faq.node_id) if faq else None
    if faq is None or node is None or not _visible(db, principal, node):
        raise NotFound(f"no FAQ {faq_id}")
    return faq


def update_faq(db: Database, principal: Principal, faq_id: int, changes: dict[str, Any]) -> Faq:
    """Change an FAQ's question, ranges or file."""
    faq = get_faq(db, principal, faq_id)
    node_id = _faq_file(db, principal, changes["context_object_id"]).id if "context_object_id" in changes else faq.node_id
    question = _check_question(changes["question"]) if "question" in changes else faq.question
    ranges = _check_ranges(changes["ranges"]) if "ranges" in changes else faq.ranges
    db.update_faq(faq.id, node_id=node_id, question=question, ranges=ranges)
    return get_faq(db, principal, faq_id)


def delete_faq(db: Database, principal: Principal, faq_id: int) -> None:
    """Remove an FAQ."""
    db.delete_faq(get_faq(db, principal, faq_id).id)


def list_faqs(
    db: Database, principal: Principal, *, context_object_id: int | None, limit: int, offset: int
) -> tuple[list[Faq], int]:
    """(one page of FAQs, their total) of one file, or of every file the key sees."""
    if not 1 <= limit <= MAX_PAGE_LIMIT or not 0 <= offset <= MAX_ROW_ID:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE_LIMIT} and offset 0 to {MAX_ROW_ID}")
    if context_object_id is not None:
        ids = [_faq_file(db, principal, context_object_id).id]
    else:
        ids = [n.id for root in list_roots(db, principal) for n in db.subtree(root) if n.kind == "file"]
    return db.list_faqs(ids, limit=limit, offset=offset)


def faqs_of(db: Database, node: KnowledgeNode) -> list[Faq]:
    """Every FAQ of a file."""
    faqs, _ = db.list_faqs([node.id], limit=1_000_000, offset=0)
    return faqs


# -- website crawls -------------------------------------------------------------------------

_CRAWL_KEYS = frozenset(
    {
        "limit",
        "maxDepth",
        "includePaths",
        "excludePaths",
        "allowSubdomains",
        "allowExternalLinks",
        "ignoreQueryParameters",
        "ignoreSitemap",
        "onlyMainContent",
    }
)


# A run still marked queued or running after the longest a crawl can take belonged to a worker
# that died before its job was put back: syncing again is allowed then.
CRAWL_STALE_S = web.MAX_CRAWL_PAGES * web.FETCH_TIMEOUT_S
CRAWL_JOB = "crawl"  # the job kind (``indexing/jobs.py`` runs it through ``run_crawl_job``)


def crawl_plan(config: object) -> web.CrawlPlan:
    """A crawl plan from Codeer-style ``crawl_config`` (camelCase keys)."""
    if config is None:
        return web.CrawlPlan()
    if not isinstance(config, dict):
        raise InvalidInput("crawl_config must be an object")
    unknown = set(config) - _CRAWL_KEYS
    if unknown:
        raise InvalidInput(f"unknown crawl_config keys {sorted(unknown)!r}; known: {sorted(_CRAWL_KEYS)!r}")

    def number(key: str, default: int, top: int) -> int:
        value = config.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise InvalidInput(f"crawl_config.{key} must be an integer from 1 to {top}")
        return value

    def paths(key: str) -> tuple[str, ...]:
        value = config.get(key, [])
        if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
            raise InvalidInput(f"crawl_config.{key} must be a list of path prefixes starting with '/'")
        return tuple(value)

    if config.get("allowExternalLinks"):
        raise InvalidInput("crawl_config.allowExternalLinks is not supported: a crawl stays on its site")
    return web.CrawlPlan(
        limit=number("limit", web.DEFAULT_CRAWL_PAGES, web.MAX_CRAWL_PAGES),
        max_depth=number("maxDepth", web.DEFAULT_CRAWL_DEPTH, web.MAX_CRAWL_DEPTH),
        include_paths=paths("includePaths"),
        exclude_paths=paths("excludePaths"),
        allow_subdomains=bool(config.get("allowSubdomains", False)),
    )


def create_crawl(
    db: Database, settings: Settings, principal: Principal, *, start_url: object, folder_name: object, config: object
) -> tuple[KnowledgeNode, CrawlTarget]:
    """A knowledge base fed by a website; the URL passes the clone guards before anything is stored."""
    if not isinstance(start_url, str):
        raise InvalidInput("start_url must be a string")
    web.check_url(start_url, allow_hosts=settings.git_allow_hosts)
    crawl_plan(config)
    name = folder_name if folder_name is not None else (git.split_url(start_url).hostname or "website")
    root = create_node(db, settings, principal, name=name)
    target = db.create_crawl_target(folder_id=root.id, start_url=start_url, config=json.dumps(config or {}))
    return root, target


def crawl_target(db: Database, principal: Principal, target_id: int) -> tuple[CrawlTarget, KnowledgeNode]:
    """A crawl target whose folder the key sees."""
    target = db.get_crawl_target(target_id)
    folder = db.get_node_by_id(target.folder_id) if target else None
    if target is None or folder is None or not _visible(db, principal, folder):
        raise NotFound(f"no website crawl target {target_id}")
    return target, folder


def update_crawl(
    db: Database, settings: Settings, principal: Principal, target_id: int, *, start_url: object, config: object
) -> CrawlTarget:
    """Point a crawl target at another URL or plan."""
    target, _ = crawl_target(db, principal, target_id)
    if not isinstance(start_url, str):
        raise InvalidInput("start_url must be a string")
    web.check_url(start_url, allow_hosts=settings.git_allow_hosts)
    crawl_plan(config)
    fields: dict[str, object] = {"start_url": start_url, "updated_at": time.time()}
    if config is not None:
        fields["config"] = json.dumps(config)
    db.update_crawl_target(target.id, **fields)
    return crawl_target(db, principal, target_id)[0]


def _page_name(url: str, used: set[str]) -> str:
    parts = git.split_url(url)
    stem = "-".join(p for p in (parts.path or "/").strip("/").split("/") if p) or "index"
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:120].strip("-") or "index"
    name = f"{stem}.md"
    n = 2
    while name in used:
        name = f"{stem}-{n}.md"
        n += 1
    used.add(name)
    return name


def sync_crawl(db: Database, settings: Settings, principal: Principal, target_id: int) -> CrawlTarget:
    """Queue a crawl of the target's site: a job of the job queue fetches the pages and replaces
    the folder's crawled pages with them (``run_crawl_job``), so the request returns at once."""
    target, folder = crawl_target(db, principal, target_id)
    if target.state in ("queued", "running") and time.time() - target.updated_at < CRAWL_STALE_S:
        raise Conflict(f"website crawl {target_id} is already {target.state}", [str(target_id)])
    crawl_plan(json.loads(target.config or "{}"))
    db.update_crawl_target(target.id, state="queued", runs=target.runs + 1, updated_at=time.time())
    db.enqueue_job(kind=CRAWL_JOB, source_id=folder.source_id)
    return crawl_target(db, principal, target_id)[0]


def _target_of_job(db: Database, job: Job) -> CrawlTarget | None:
    source = next((s for s in db.list_sources() if s.id == job.source_id), None)
    root = db.get_node(source.name.removeprefix("kb/")) if source and source.name.startswith("kb/") else None
    return db.crawl_target_of(root.id) if root is not None else None


def run_crawl_job(db: Database, settings: Settings, job_public_id: str, still_mine: Any = None) -> str:
    """Crawl the site of a crawl job's target and store its pages (what the job child runs).
    A target cancelled before or during the run keeps the pages it had."""
    job = db.get_job(job_public_id)
    target = _target_of_job(db, job) if job is not None else None
    if target is None:
        raise NotFound("the crawl target of this job was deleted")
    if target.state == "cancelled":
        return "cancelled"
    folder = db.get_node_by_id(target.folder_id)
    if folder is None:
        raise NotFound("the folder of this crawl was deleted")
    plan = crawl_plan(json.loads(target.config or "{}"))
    db.update_crawl_target(target.id, state="running", updated_at=time.time())
    try:
        result = web.crawl(target.start_url, plan, allow_hosts=settings.git_allow_hosts)
    except RepolensError as exc:
        failed = json.dumps([{"url": target.start_url, "status": "FAILED", "reason": str(exc)}])
        db.update_crawl_target(target.id, state="failed", pages=0, failures=failed, updated_at=time.time())
        return "failed"
    if callable(still_mine):
        still_mine()  # a worker whose job was leased to another stops before writing
    now = db.get_crawl_target(target.id)
    if now is None or now.state == "cancelled":
        return "cancelled"
    old = [n for n in db.child_nodes(folder.id) if n.kind == "file" and n.origin == "crawl"]
    folder_path = _folder_of(db, settings, folder)
    db.delete_nodes([n.id for n in old])
    for n in old:
        (folder_path / n.path).unlink(missing_ok=True)
    used = {n.name for n in db.child_nodes(folder.id)}
    files = [(_page_name(p.url, used), p.text.encode("utf-8"), "crawl", p.url) for p in result.pages]
    kept = [f for f in files if len(f[1]) <= settings.max_file_bytes]
    failures = [{"url": u, "status": "DOWNLOAD_FAILED", "reason": r} for u, r in result.failures]
    if kept:
        _store_files(db, settings, folder, kept)  # type: ignore[arg-type]  # the literal is "crawl"
    state = "completed" if kept or not failures else "failed"
    db.update_crawl_target(target.id, state=state, pages=len(kept), failures=json.dumps(failures), updated_at=time.time())
    return state


def cancel_crawl(db: Database, principal: Principal, target_id: int) -> CrawlTarget:
    """Cancel a crawl: a queued job skips it, a running one keeps the folder's pages as they were."""
    target, _ = crawl_target(db, principal, target_id)
    db.update_crawl_target(target.id, state="cancelled", updated_at=time.time())
    return crawl_target(db, principal, target_id)[0]


# -- client whitelist (Codeer's whitelist mode) ---------------------------------------------


def workspace_of(db: Database, principal: Principal, workspace_id: str) -> Workspace:
    """A workspace the key works in."""
    for ws in workspaces_of(db, principal):
        if workspace_id in (ws.public_id, ws.name):
            return ws
    raise NotFound(f"no workspace {workspace_id!r}")


def check_client(db: Database, workspace: Workspace, external_user_id: object) -> None:
    """Refuse a chat, message or batch request whose ``external_user_id`` the workspace's
    whitelist mode does not allow (``ClientNotAllowed``); a no-op when the mode is off."""
    enabled, allowed = db.client_whitelist(workspace.id)
    if not enabled:
        return
    if not isinstance(external_user_id, str) or not external_user_id:
        raise ClientNotAllowed("this workspace is in whitelist mode: send a whitelisted external_user_id")
    if external_user_id not in allowed:
        raise ClientNotAllowed(f"external_user_id {external_user_id!r} is not on this workspace's whitelist")


MAX_WHITELIST = 10_000
MAX_EXTERNAL_USER_ID_CHARS = 256


def set_whitelist(
    db: Database, principal: Principal, workspace_id: str, *, enabled: object, external_user_ids: object
) -> tuple[Workspace, bool, tuple[str, ...]]:
    """Replace a workspace's whitelist (admin keys only)."""
    principal.require_admin()
    ws = workspace_of(db, principal, workspace_id)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false")
    if not isinstance(external_user_ids, list) or len(external_user_ids) > MAX_WHITELIST:
        raise InvalidInput(f"external_user_ids must be a list of at most {MAX_WHITELIST} strings")
    ids = [
        validation.require_name(u, what="external_user_id", max_chars=MAX_EXTERNAL_USER_ID_CHARS)
        if isinstance(u, str)
        else _not_a_string()
        for u in external_user_ids
    ]
    db.set_client_whitelist(ws.id, enabled=enabled, external_user_ids=ids)
    on, allowed = db.client_whitelist(ws.id)
    return ws, on, allowed


def _not_a_string() -> str:
    raise InvalidInput("every external_user_id must be a string")


def get_whitelist(db: Database, principal: Principal, workspace_id: str) -> tuple[Workspace, bool, tuple[str, ...]]:
    """A workspace's whitelist mode and list (admin keys only)."""
    principal.require_admin()
    ws = workspace_of(db, principal, workspace_id)
    on, allowed = db.client_whitelist(ws.id)
    return ws, on, allowed
