"""Data sources as the API manages them: repositories (from a git URL or an allowed local
path) and workspaces (named groups of repositories), each visible only within a key's scope.

Creating or re-syncing a repository only validates and queues a job; the job runner does the
work (``indexing.jobs``). Every location is checked here, before anything is stored: git URLs
by scheme, shape and host address; local paths by resolving them and confining them to the
configured roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from repolens import validation
from repolens.domain import Job, Source, Workspace
from repolens.errors import Conflict, Forbidden, InvalidInput, NotFound, UnsafeSource
from repolens.settings import Settings
from repolens.sources.naming import check_name, source_name
from repolens.storage.base import IndexDatabase

if TYPE_CHECKING:
    from repolens.access.keys import Principal  # a search from the shell (no key) never loads access
    from repolens.storage.base import Database

SourceType = Literal["Repository", "Workspace"]
MAX_DESCRIPTION_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class DataSource:
    """A repository or a workspace, as listed."""

    type: SourceType
    repository: Source | None = None
    workspace: Workspace | None = None

    @property
    def public_id(self) -> str:
        """The 24-hex id."""
        if self.repository is not None:
            return self.repository.public_id
        assert self.workspace is not None
        return self.workspace.public_id

    @property
    def name(self) -> str:
        """The display name (what ``Names`` matches)."""
        if self.repository is not None:
            return self.repository.name
        assert self.workspace is not None
        return self.workspace.name


def _check_description(description: str | None) -> str:
    return validation.require_description(description or "", max_chars=MAX_DESCRIPTION_CHARS)


def _check_branch(branch: str | None) -> str | None:
    if branch is None or branch == "":
        return None
    if branch.startswith("-") or len(branch) > 255 or any(c in branch for c in " \t\r\n\0~^:?*[\\"):
        raise InvalidInput(f"invalid branch name {branch!r}")
    return branch


def confine_local_path(raw: str, roots: tuple[Path, ...]) -> Path:
    """Resolve ``raw`` (symlinks included) and insist that it lies under one of ``roots``."""
    if not roots:
        raise UnsafeSource(
            "local paths are disabled over the API; the operator can allow folders with REPOLENS_ALLOWED_ROOTS"
        )
    if "\0" in raw:
        raise UnsafeSource("path contains a NUL byte")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise InvalidInput(f"local path must be absolute, got {raw!r}")
    resolved = path.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise UnsafeSource(f"path {raw!r} is outside the allowed roots")
    if not resolved.is_dir():
        raise NotFound(f"no such directory under the allowed roots: {raw!r}")
    return resolved


def create_repository(
    db: Database,
    settings: Settings,
    *,
    url: str | None = None,
    path: str | None = None,
    name: str | None = None,
    branch: str | None = None,
    description: str | None = None,
) -> tuple[Source, Job]:
    """Register a repository and queue its first indexing job."""
    from repolens.sources import git  # subprocess and sockets: only when a source is added or changed

    if bool(url) == bool(path):
        raise InvalidInput("give exactly one of 'url' (a git URL) or 'path' (a local folder under an allowed root)")
    branch = _check_branch(branch)
    text = _check_description(description)
    if url:
        location = git.validate_git_url(url, allowed_schemes=settings.allowed_git_schemes)
        git.check_host(location, allow_hosts=settings.git_allow_hosts)
    else:
        assert path is not None
        resolved = confine_local_path(path, settings.allowed_roots)
        if branch is not None:
            raise InvalidInput("'branch' applies to git URLs only; a local folder is indexed as it is on disk")
        location = str(resolved)
    chosen = source_name(location, name)
    if db.get_workspace(chosen) is not None:
        raise Conflict(f"a workspace is already named {chosen!r}", [chosen])
    source = db.create_source(name=chosen, location=location, branch=branch, description=text)
    job = db.enqueue_job(kind="index", source_id=source.id)
    return source, job


def queue_location(
    db: Database, settings: Settings, location: str, *, name: str | None = None, branch: str | None = None
) -> tuple[Source, Job]:
    """The CLI on a shared database: register (or find) the source at ``location`` and queue its
    indexing for the workers, without cloning or reading anything here. The operator is trusted
    (no allowed-roots check), but a local path must be one the workers can read too."""
    from repolens.sources import git

    branch = _check_branch(branch)
    if git.looks_like_url(location) or location.startswith("-"):
        location = git.validate_git_url(location, allowed_schemes=settings.allowed_git_schemes)
        git.check_host(location, allow_hosts=settings.git_allow_hosts)
    else:
        path = Path(location).expanduser()
        if not path.is_dir():
            raise NotFound(f"no such directory: {location!r}")
        location = str(path.resolve())
    chosen = source_name(location, name)
    source = db.get_source(chosen)
    if source is None:
        if db.get_workspace(chosen) is not None:
            raise Conflict(f"a workspace is already named {chosen!r}", [chosen])
        source = db.create_source(name=chosen, location=location, branch=branch, description="")
    elif source.location != location or source.branch != branch:
        db.update_source(source.id, location=location, branch=branch)
    return source, db.enqueue_job(kind="index", source_id=source.id)


def resync(db: Database, source: Source) -> Job:
    """Queue a refresh of a repository (an unfinished queued job is reused)."""
    return db.enqueue_job(kind="index", source_id=source.id)


def update_repository(
    db: Database, source: Source, *, description: str | None = None, branch: str | None = None
) -> tuple[Source, Job | None]:
    """Change a repository's description or branch; a new branch queues a refresh."""
    from repolens.sources import git

    fields: dict[str, object] = {}
    if description is not None:
        fields["description"] = _check_description(description)
    job = None
    if branch is not None:
        new_branch = _check_branch(branch)
        if not git.looks_like_url(source.location):
            raise InvalidInput("'branch' applies to git URLs only")
        if new_branch != source.branch:
            fields["branch"] = new_branch
    db.update_source(source.id, **fields)
    if "branch" in fields:
        job = resync(db, source)
    fresh = db.get_source(source.public_id)
    assert fresh is not None
    return fresh, job


def delete_repository(db: Database, settings: Settings, source: Source) -> None:
    """Remove a repository, everything indexed from it, and its clone (no other source's files)."""
    from repolens.indexing.units import file_tokens
    from repolens.sources import git

    db.delete_source(source.id, tokenize=file_tokens)
    if git.looks_like_url(source.location):
        from repolens.indexing.pipeline import forget_clone

        forget_clone(settings, source, db.list_sources())
    db.compact()


def _repository_ids(db: Database, names: list[str]) -> list[int]:
    ids = []
    for item in names:
        source = db.get_source(item)
        if source is None:
            raise NotFound(f"unknown repository {item!r}")
        ids.append(source.id)
    return ids


def create_workspace(db: Database, *, name: str, description: str | None, repositories: list[str]) -> Workspace:
    """A workspace over existing repositories (by name or id)."""
    return db.create_workspace(
        name=check_name(name), description=_check_description(description), source_ids=_repository_ids(db, repositories)
    )


def update_workspace(
    db: Database,
    workspace: Workspace,
    *,
    name: str | None = None,
    description: str | None = None,
    repositories: list[str] | None = None,
) -> Workspace:
    """Rename a workspace, change its description or its repositories."""
    db.update_workspace(
        workspace.id,
        name=check_name(name) if name is not None else None,
        description=_check_description(description) if description is not None else None,
        source_ids=_repository_ids(db, repositories) if repositories is not None else None,
    )
    fresh = db.get_workspace(workspace.public_id)
    assert fresh is not None
    return fresh


# -- reading, within a key's scope ----------------------------------------------------------


def list_data_sources(
    db: Database,
    principal: Principal | None,
    *,
    type_filter: str | None = None,
    search_term: str | None = None,
    ready_only: bool = False,
) -> list[DataSource]:
    """Repositories and workspaces the key may see, filtered as CodeAlive's listing is."""
    if type_filter and type_filter.lower() not in ("repository", "workspace"):
        raise InvalidInput(f"type must be Repository or Workspace, got {type_filter!r}")
    visible = visible_ids(db, principal)
    term = (search_term or "").strip().lower()
    out: list[DataSource] = []
    if not type_filter or type_filter.lower() == "repository":
        for s in db.list_sources():
            if visible is not None and s.id not in visible:
                continue
            if ready_only and s.state != "Ready":
                continue
            out.append(DataSource("Repository", repository=s))
    if not type_filter or type_filter.lower() == "workspace":
        ready = {s.id for s in db.list_sources() if s.state == "Ready"}
        for w in db.list_workspaces():
            members = set(w.source_ids)
            if visible is not None and not members <= visible:
                continue
            if ready_only and not (members & ready):
                continue
            out.append(DataSource("Workspace", workspace=w))
    if term:
        out = [d for d in out if term in d.name.lower()]
    return out


def get_data_source(db: IndexDatabase, principal: Principal | None, name_or_id: str) -> DataSource:
    """One repository or workspace the key may see (a hidden one is reported as missing)."""
    source = db.get_source(name_or_id)
    if source is not None:
        if principal is not None and not principal.can_see(db, source):
            raise NotFound(f"unknown data source {name_or_id!r}")
        return DataSource("Repository", repository=source)
    workspace = db.get_workspace(name_or_id)
    if workspace is not None:
        visible = visible_ids(db, principal)
        if visible is not None and not set(workspace.source_ids) <= visible:
            raise NotFound(f"unknown data source {name_or_id!r}")
        return DataSource("Workspace", workspace=workspace)
    raise NotFound(f"unknown data source {name_or_id!r}")


def get_job(db: Database, principal: Principal | None, job_id: str) -> Job:
    """One indexing job of a repository the key may see (any other reads as unknown)."""
    found = db.get_job(job_id)
    visible = visible_ids(db, principal)
    if found is None or found.source_id is None or (visible is not None and found.source_id not in visible):
        raise NotFound(f"unknown job {job_id!r}")
    return found


def visible_ids(db: IndexDatabase, principal: Principal | None) -> frozenset[int] | None:
    """The repository ids the key may see; None means all (an unscoped key, or the local user)."""
    return principal.visible_source_ids(db) if principal is not None else None


def get_repository(db: IndexDatabase, principal: Principal | None, name_or_id: str) -> Source:
    """One repository the key may see."""
    found = get_data_source(db, principal, name_or_id)
    if found.repository is None:
        raise InvalidInput(f"{name_or_id!r} is a workspace; this needs one repository")
    return found.repository


def resolve_scope(db: IndexDatabase, principal: Principal | None, names: list[str]) -> list[Source]:
    """The repositories a search runs over: the named ones (workspaces expanded), else all
    the key may see. Names outside the key's scope are refused, never silently dropped."""
    visible = visible_ids(db, principal)
    if not names:
        return [s for s in db.list_sources() if visible is None or s.id in visible]
    by_id: dict[int, Source] = {}
    every: dict[int, Source] | None = None
    for name in names:
        found = get_data_source(db, principal, name)
        if found.repository is not None:
            by_id[found.repository.id] = found.repository
        else:
            assert found.workspace is not None
            every = every or {s.id: s for s in db.list_sources()}
            by_id.update((sid, every[sid]) for sid in found.workspace.source_ids if sid in every)
    if visible is not None and not set(by_id) <= visible:
        raise Forbidden("API key does not have access to this resource")
    return sorted(by_id.values(), key=lambda s: s.name.lower())


def relevance_filter(items: list[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """Keep the listed sources whose name or description shares words with ``query``, each
    with a ``relevanceReason``; when none does, return the full list (CodeAlive's filter
    fails open the same way)."""
    from repolens.parsing.tokens import identifier_tokens as tokenize_text

    wanted = {t for t in tokenize_text(query) if len(t) > 2}
    kept = []
    for item in items:
        words = set(tokenize_text(f"{item.get('name', '')} {item.get('description', '')}"))
        common = sorted(wanted & words)
        if common:
            kept.append({**item, "relevanceReason": f"its name or description mentions {', '.join(common[:5])}"})
    return kept or items


def recent_jobs(db: Database, principal: Principal | None, *, per_source: int = 5) -> list[tuple[Source, Job]]:
    """The latest jobs of every repository the key may see, newest first."""
    visible = visible_ids(db, principal)
    pairs = [
        (source, job)
        for source in db.list_sources()
        if visible is None or source.id in visible
        for job in db.jobs_for_source(source.id, limit=per_source)
    ]
    return sorted(pairs, key=lambda pair: pair[1].created_at, reverse=True)


def latest_job(db: Database, source: Source) -> Job | None:
    """A repository's newest index job (its progress while it indexes; a knowledge base's crawl
    jobs are not index runs)."""
    jobs = [j for j in db.jobs_for_source(source.id, limit=5) if j.kind == "index"]
    return jobs[0] if jobs else None
