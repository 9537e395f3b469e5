"""The read operations every surface serves (CLI ``--json``, REST, tools, MCP), scoped to
a key: one function per operation, returning CodeAlive-shaped data from ``views``.

A ``principal`` of None means a local caller (the CLI) who may see every data source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repolens import catalog, validation, views
from repolens.domain import Artifact, SearchFilters, Source
from repolens.errors import InvalidInput, NotFound
from repolens.retrieval import graph
from repolens.retrieval.artifacts import FetchedArtifact, fetch, find_artifact
from repolens.retrieval.conditions import Condition, holds, metadata
from repolens.retrieval.search import MAX_LIMIT, Mode, ScoredArtifact, SearchOutcome
from repolens.sources.languages import EXTENSIONS

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.services import Services

MARKDOWN_EXTENSIONS = frozenset({"md", "markdown", "mdx", "rst", "txt", "adoc"})
MAX_IDENTIFIERS_HARD = 1_000  # even a raised per-request cap stops here
PROFILE_ALIASES: dict[str, graph.Profile] = {
    "callsonly": "calls",
    "calls": "calls",
    "calls_only": "calls",
    "inheritanceonly": "inheritance",
    "inheritance": "inheritance",
    "inheritance_only": "inheritance",
    "allrelevant": "all",
    "all": "all",
    "all_relevant": "all",
    "referencesonly": "references",
    "references": "references",
    "references_only": "references",
}
PROFILE_NAMES: dict[graph.Profile, str] = {
    "calls": "CallsOnly",
    "inheritance": "InheritanceOnly",
    "all": "AllRelevant",
    "references": "ReferencesOnly",
}


# CodeAlive's modes are about how hard its backend thinks; ours answer in milliseconds, so
# every one of them runs the full hybrid search. lexical/semantic/hybrid pick an index.
SEARCH_MODES: dict[str, Mode] = {
    "auto": "auto",
    "fast": "auto",
    "fast_deeper": "auto",
    "deep": "auto",
    "deeper": "auto",
    "lexical": "lexical",
    "semantic": "semantic",
    "hybrid": "hybrid",
}


def search_mode(value: str | None, *, param: str) -> Mode:
    """The search mode a caller named (case-insensitive; none means auto); ``param`` is the
    caller's own name for the argument, for the error message."""
    key = (value or "auto").strip().lower()
    if key not in SEARCH_MODES:
        raise InvalidInput(f"{param} must be one of {', '.join(SEARCH_MODES)}, got {value!r}")
    return SEARCH_MODES[key]


def description_detail(value: str | None, *, param: str) -> views.Detail:
    """``Short`` (the default) or ``Full``, case-insensitive."""
    key = (value or "Short").strip().lower()
    if key not in ("short", "full"):
        raise InvalidInput(f"{param} must be Short or Full, got {value!r}")
    return "Full" if key == "full" else "Short"


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search as every surface can express it."""

    query: str
    names: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    limit: int = 10
    mode: Mode = "auto"
    include_content: bool = False
    detail: views.Detail = "Short"
    exclude_markdown: bool = False


def normalize_extensions(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``.py``, ``py`` and ``PY`` all mean the extension ``py``."""
    return tuple(v.strip().lower().lstrip(".") for v in values if v and v.strip())


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"MaxResults must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def run_search(services: Services, principal: Principal | None, request: SearchRequest) -> SearchOutcome:
    """Ranked artifacts for a search within the key's scope."""
    if not request.query.strip():
        raise InvalidInput("Query is required")
    sources = catalog.resolve_scope(services.index, principal, list(request.names))
    filters = SearchFilters(
        paths=tuple(p.strip().strip("/") for p in request.paths if p.strip()),
        extensions=normalize_extensions(list(request.extensions)),
    )
    limit = _check_limit(request.limit)
    # Dropping prose afterwards must still leave ``limit`` results when there are enough.
    fetch_limit = min(MAX_LIMIT, limit * 3) if request.exclude_markdown else limit
    outcome = services.searcher.search(request.query, filters=filters, limit=fetch_limit, mode=request.mode, sources=sources)
    if request.exclude_markdown:
        kept = [h for h in outcome.hits if _extension(h.artifact.path) not in MARKDOWN_EXTENSIONS][:limit]
        outcome = dataclasses.replace(outcome, hits=kept)
    return outcome


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def hit_contents(services: Services, outcome: SearchOutcome) -> dict[int, str]:
    """artifact id -> its text, for every hit (each file read once, split only as far as needed)."""
    last_line: dict[int, int] = {}
    for hit in outcome.hits:
        row = hit.artifact
        last_line[row.file_id] = max(last_line.get(row.file_id, 0), row.end_line)
    lines = {fid: services.index.file_content(fid).split("\n", end) for fid, end in last_line.items()}
    return {
        hit.artifact.id: "\n".join(lines[hit.artifact.file_id][hit.artifact.start_line - 1 : hit.artifact.end_line])
        for hit in outcome.hits
    }


def search_with_contents(
    services: Services, principal: Principal | None, request: SearchRequest
) -> tuple[SearchOutcome, dict[int, str]]:
    """The ranked hits and their text, read from one state of the index (a re-index committing
    meanwhile cannot remove a hit's file between the two)."""
    with services.index.snapshot():
        outcome = run_search(services, principal, request)
        return outcome, hit_contents(services, outcome)


def search(services: Services, principal: Principal | None, request: SearchRequest) -> dict[str, Any]:
    """CodeAlive's ``SearchResponse``."""
    outcome, contents = search_with_contents(services, principal, request)
    return views.search_response(outcome, contents, include_content=request.include_content, detail=request.detail)


def grep(
    services: Services,
    principal: Principal | None,
    pattern: str,
    *,
    names: tuple[str, ...] = (),
    paths: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
    regex: bool = False,
    limit: int = 50,
    case_sensitive: bool | None = None,
    exclude_markdown: bool = False,
) -> dict[str, Any]:
    """``{"results": [GrepResult]}`` within the key's scope."""
    sources = catalog.resolve_scope(services.store, principal, list(names))
    filters = SearchFilters(
        paths=tuple(p.strip().strip("/") for p in paths if p.strip()), extensions=normalize_extensions(list(extensions))
    )
    from repolens.retrieval.grep import grep as run_grep  # re2 and the line walk: only when grepping

    hits = run_grep(
        services.store,
        sources,
        pattern,
        regex=regex,
        filters=filters,
        limit=_check_limit(limit),
        case_sensitive=case_sensitive,
    )
    if exclude_markdown:
        hits = [h for h in hits if _extension(h.file.path) not in MARKDOWN_EXTENSIONS]
    return views.grep_response(hits)


def fetch_items(
    services: Services,
    principal: Principal | None,
    identifiers: list[str],
    *,
    data_source: str | None = None,
    max_identifiers: int | None = None,
) -> list[FetchedArtifact]:
    """Artifacts by identifier within the key's scope (unknown or hidden ones: found=False)."""
    cap = min(max_identifiers or services.settings.max_artifacts_per_request, MAX_IDENTIFIERS_HARD)
    cleaned = [i for i in identifiers if isinstance(i, str) and i.strip()]
    if not cleaned or len(identifiers) > cap:
        raise InvalidInput(f"Identifiers array is required and must contain at most {cap} items")
    if data_source:
        catalog.get_repository(services.store, principal, data_source)  # 404 for unknown or hidden
    return fetch(services.store, cleaned, data_source=data_source, visible=catalog.visible_ids(services.store, principal))


def call_preview(services: Services, item: FetchedArtifact) -> dict[str, Any] | None:
    """At most three callers and callees of a function, with the totals."""
    if not (item.found and item.artifact and item.source and item.artifact.symbol_kind in ("function", "method")):
        return None
    out_group, in_group = graph.relations(services.store, item.source, item.artifact, profile="calls", max_per_type=3)
    name = item.source.name
    return {
        "outgoingCallsCount": out_group.total,
        "outgoingCalls": [
            {"identifier": r.identifier(name), "summary": r.doc.split("\n", 1)[0]} for r, _ in out_group.items
        ],
        "incomingCallsCount": in_group.total,
        "incomingCalls": [{"identifier": r.identifier(name), "summary": r.doc.split("\n", 1)[0]} for r, _ in in_group.items],
    }


def fetch_artifacts(
    services: Services,
    principal: Principal | None,
    identifiers: list[str],
    *,
    data_source: str | None = None,
    max_identifiers: int | None = None,
) -> dict[str, Any]:
    """``{"artifacts": [...]}`` with a call preview for functions."""
    items = fetch_items(services, principal, identifiers, data_source=data_source, max_identifiers=max_identifiers)
    previews = {i.identifier: call_preview(services, i) for i in items if i.found}
    return views.fetch_response(items, previews)


def parse_profile(profile: str | None) -> graph.Profile:
    """``CallsOnly``, ``calls_only`` or ``calls`` → ``calls`` (and so on)."""
    key = (profile or "CallsOnly").replace("-", "_").lower()
    if key not in PROFILE_ALIASES:
        raise InvalidInput("profile must be one of CallsOnly, InheritanceOnly, AllRelevant, ReferencesOnly")
    return PROFILE_ALIASES[key]


def relationships(
    services: Services,
    principal: Principal | None,
    identifier: str,
    *,
    profile: str | None = None,
    max_count: int = 50,
    data_source: str | None = None,
) -> dict[str, Any]:
    """The ``artifact-relationships`` response (found:false for unknown or hidden identifiers)."""
    chosen = parse_profile(profile)
    if not 1 <= max_count <= 1000:
        raise InvalidInput("maxCountPerType must be between 1 and 1000")
    if data_source:
        catalog.get_repository(services.store, principal, data_source)
    try:
        source, artifact = find_artifact(
            services.store, identifier, data_source=data_source, visible=catalog.visible_ids(services.store, principal)
        )
    except NotFound:
        return {"sourceIdentifier": identifier, "profile": PROFILE_NAMES[chosen], "found": False}
    groups = graph.relations(services.store, source, artifact, profile=chosen, max_per_type=max_count)
    available = graph.counts(services.store, source, artifact)
    return views.relationships_response(source, artifact, identifier, PROFILE_NAMES[chosen], groups, available)


@dataclass(frozen=True, slots=True)
class KnowledgeRecord:
    """One retrieved artifact with its metadata, its score relative to the best (0-1) and its text."""

    hit: ScoredArtifact
    metadata: dict[str, Any]
    score: float
    content: str


def retrieve_knowledge(
    services: Services,
    principal: Principal | None,
    query: str,
    data_source: str,
    *,
    top_k: int,
    score_threshold: float = 0.0,
    conditions: Sequence[Condition] = (),
    match_all: bool = True,
) -> list[KnowledgeRecord]:
    """The best ``top_k`` artifacts of one data source whose metadata meets the conditions (all of
    them, or any with ``match_all=False``) and whose relative score reaches the threshold."""
    for condition in conditions:
        condition.check()
    target = catalog.get_data_source(services.store, principal, data_source)
    # Filters decide which artifacts may be answered, so they apply before the top_k cut: with
    # conditions, every candidate the retrievers find is ranked (their combined depth is below
    # MAX_LIMIT), the ones that pass are kept, and only then is the list cut to top_k.
    request = SearchRequest(query, names=(target.public_id,), limit=MAX_LIMIT if conditions else top_k)
    with services.store.snapshot():  # hits and their text from one state of the index
        outcome = run_search(services, principal, request)
        top = outcome.hits[0].score if outcome.hits else 0.0
        chosen: list[tuple[ScoredArtifact, dict[str, Any], float]] = []
        for hit in outcome.hits:
            meta = metadata(hit)
            if conditions:
                checks = [holds(meta, c) for c in conditions]
                if not (all(checks) if match_all else any(checks)):
                    continue
            score = round(hit.score / top, 4) if top > 0 else 0.0
            if score < score_threshold:
                continue
            chosen.append((hit, meta, score))
            if len(chosen) >= top_k:
                break
        contents = hit_contents(services, dataclasses.replace(outcome, hits=[h for h, _, _ in chosen]))
    return [KnowledgeRecord(hit, meta, score, contents.get(hit.artifact.id, "")) for hit, meta, score in chosen]


# -- reading code (the web UI's code view) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeView:
    """A file or symbol to read: the whole file it sits in, the range it covers, and the file's
    symbols (its outline)."""

    source: Source
    artifact: Artifact  # what the identifier named (a File artifact for a file)
    content: str  # the whole file
    outline: list[Artifact]  # the file's symbols, in line order


def read_code(services: Services, principal: Principal | None, identifier: str) -> CodeView:
    """The file an identifier (file, symbol or chunk) lies in, within the key's scope; another
    scope's identifier is ``NotFound`` exactly like a missing one."""
    store = services.store
    with store.snapshot():  # the artifact, the text and the outline from one state of the index
        source, artifact = find_artifact(store, identifier, visible=catalog.visible_ids(store, principal))
        content = store.file_content(artifact.file_id)
        rows = store.artifacts_in_path(source.id, artifact.path)
    outline = sorted((r for r in rows if r.kind == "Symbol"), key=lambda r: (r.start_line, r.end_line))
    return CodeView(source, artifact, content, outline)


def file_identifier(source: Source, path: str) -> str:
    """The identifier of a whole file."""
    return f"{source.name}::{path}"


LANGUAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {}
for _ext, _language in EXTENSIONS.items():
    LANGUAGE_EXTENSIONS[_language] = (*LANGUAGE_EXTENSIONS.get(_language, ()), _ext)


def extensions_for_language(language: str | None) -> tuple[str, ...]:
    """The file extensions of a language the indexer knows (empty for none); an unknown name is
    refused rather than matching nothing."""
    if not language:
        return ()
    key = language.strip().lower()
    if key not in LANGUAGE_EXTENSIONS:
        raise InvalidInput(f"unknown language {language!r}; use one of {', '.join(sorted(LANGUAGE_EXTENSIONS))}")
    return LANGUAGE_EXTENSIONS[key]


# -- conversations ---------------------------------------------------------------------------------

MAX_TITLE_CHARS = 200


def rename_conversation(services: Services, principal: Principal | None, conversation_id: str, title: str) -> None:
    """Give one of the caller's conversations a new title."""
    row = services.answers.owned_conversation(principal, conversation_id)
    services.store.rename_conversation(row.id, validation.require_name(title, what="title", max_chars=MAX_TITLE_CHARS))


def delete_conversation(services: Services, principal: Principal | None, conversation_id: str) -> None:
    """Delete one of the caller's conversations."""
    row = services.answers.owned_conversation(principal, conversation_id)
    services.store.delete_conversation(row.id)
