"""The agent tool set (CodeAlive's Tool API v3, §3.7; the MCP server serves the same tools).

Each tool takes snake_case arguments, runs one core operation within the caller's scope and
returns ``ToolResult(obj, rendered)``: ``obj`` is the structured answer, ``rendered`` a compact
text for a language model. A mistake the caller can repair (a missing argument, an unknown
identifier, a path outside the repository) is a ``ToolError`` that comes back as a result
(``obj.error``) saying what to do, not as an HTTP failure.

Each tool's arguments are declared once, as a pydantic model below (``TOOLS`` maps a name to
its model, function, title and description): the MCP server derives its tool signatures and
input schemas from them, the REST tool API validates with them and documents them in OpenAPI.
List arguments accept an array, a JSON-array string or a single string, as CodeAlive's own
MCP server does.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

from repolens import catalog, operations
from repolens.domain import short_commit
from repolens.errors import Conflict, InvalidInput, NotFound, ToolError

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.domain import Source
    from repolens.services import Services

MAX_READ_LINES = 1000  # per read_file call, as CodeAlive's tool documents
MAX_TREE_NODES = 300
MAX_TREE_DEPTH = 8
MAX_TOOL_IDENTIFIERS = 50  # the MCP tool's cap (the REST route's default is 20)
ENTRY_POINT_NAMES = frozenset(
    {
        "main.py",
        "__main__.py",
        "cli.py",
        "app.py",
        "server.py",
        "manage.py",
        "wsgi.py",
        "asgi.py",
        "main.go",
        "main.rs",
        "lib.rs",
        "index.js",
        "index.ts",
        "main.ts",
        "main.js",
        "server.js",
        "server.ts",
        "app.js",
        "app.ts",
        "Program.cs",
        "Main.java",
        "Application.java",
        "main.c",
        "main.cpp",
        "main.swift",
        "main.kt",
        "main.zig",
    }
)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's structured answer and its text rendering."""

    obj: dict[str, Any]
    rendered: str


def error_result(tool: str, exc: ToolError) -> ToolResult:
    """The repairable-error envelope (HTTP 200, ``obj.error``)."""
    retry = "yes - repair the tool arguments and call the tool again"
    obj = {"error": {"code": exc.code, "message": str(exc), "retry": retry, "try": exc.try_}}
    rendered = (
        f"<tool_error tool={quoteattr(tool)}><code>{exc.code}</code><message>{_esc(str(exc))}</message>"
        f"<try>{_esc(exc.try_)}</try></tool_error>"
    )
    return ToolResult(obj, rendered)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- arguments, declared once ---------------------------------------------------------------------


def _string_list(value: Any) -> Any:
    """An array, a JSON-array string or one string, as a list of strings (other shapes fail validation)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return _string_list(json.loads(text))
            except json.JSONDecodeError:
                raise ValueError("not a valid JSON array") from None
        return [text]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    return value  # not a list of strings: the list[str] check reports it


def _list_schema(description: str, **array: int) -> WithJsonSchema:
    """The schema agents read for a list argument: one string, or an array (with ``minItems``/
    ``maxItems`` if given), or nothing."""
    return WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, **array}, {"type": "null"}],
            "description": description,
        }
    )


StringList = Annotated[
    list[str],
    BeforeValidator(_string_list),
    _list_schema("An array of strings; a JSON-array string or a single string also works."),
]
DataSource = Annotated[
    str | None,
    Field(
        max_length=4096, description="One repository name or id (from get_data_sources); optional when only one is visible."
    ),
]
Question = Annotated[
    str,
    Field(
        min_length=1,
        max_length=10_000,
        validation_alias=AliasChoices("question", "query"),
        description="A natural-language question (`query` is accepted as an alias).",
    ),
]
Paths = Annotated[StringList, Field(description="Repository-relative path prefixes.")]
Extensions = Annotated[StringList, Field(description="File extensions, e.g. py, ts, cs.")]


class ToolArgs(BaseModel):
    """Arguments every tool takes; unknown arguments are ignored, as CodeAlive's tools ignore them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    output_offset: int = Field(
        0, ge=0, description="Continue a truncated answer: the offset its truncation notice gives. Default 0."
    )


class GetDataSourcesArgs(ToolArgs):
    query: str | None = Field(None, max_length=2000, description="Optional question: rank data sources by relevance to it.")
    ready_only: bool = Field(True, description="Only data sources whose index is ready.")


class SemanticSearchArgs(ToolArgs):
    question: Question
    data_sources: StringList = []
    paths: Paths = []
    extensions: Extensions = []
    max_results: int = Field(10, ge=1, le=500, description="Default 10.")
    exclude_markdown: bool = False


class GrepSearchArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=1000, description="A literal string, or a regex with regex=true.")
    data_sources: StringList = []
    paths: Paths = []
    extensions: Extensions = []
    max_results: int = Field(50, ge=1, le=500, description="Default 50.")
    exclude_markdown: bool = False
    regex: bool = False


class RepositoryArgs(ToolArgs):
    data_source: DataSource = None


class FileTreeArgs(RepositoryArgs):
    path: str | None = Field(None, max_length=4096, description="Folder to start from; omit for the root.")
    max_depth: int = Field(3, ge=1, le=MAX_TREE_DEPTH)
    max_nodes: int = Field(200, ge=1, le=MAX_TREE_NODES)


class ReadFileArgs(RepositoryArgs):
    path: str = Field(min_length=1, max_length=4096, description="Repository-relative file path.")
    start_line: int = Field(1, ge=1)
    end_line: int | None = Field(None, ge=1)


class FetchArtifactsArgs(RepositoryArgs):
    identifiers: Annotated[
        StringList,
        Field(min_length=1, max_length=MAX_TOOL_IDENTIFIERS),
        _list_schema(
            f"1-{MAX_TOOL_IDENTIFIERS} identifiers from search, read or relationship results.",
            minItems=1,
            maxItems=MAX_TOOL_IDENTIFIERS,
        ),
    ]


_PROFILE_ARGS = {
    "calls": "calls_only",
    "inheritance": "inheritance_only",
    "all": "all_relevant",
    "references": "references_only",
}


def _profile(value: Any) -> Any:
    """CodeAlive's spellings (``CallsOnly``, ``calls``, ``calls_only``) as the snake-case choice."""
    if isinstance(value, str):
        key = operations.PROFILE_ALIASES.get(value.replace("-", "_").lower())
        return _PROFILE_ARGS[key] if key else value
    return value


class RelationshipsArgs(RepositoryArgs):
    identifier: str = Field(min_length=1, max_length=4096, description="An exact artifact identifier.")
    profile: Annotated[
        Literal["calls_only", "inheritance_only", "all_relevant", "references_only"], BeforeValidator(_profile)
    ] = "calls_only"
    max_count_per_type: int = Field(50, ge=1, le=1000)


class ChatArgs(ToolArgs):
    question: Question
    data_sources: StringList = []
    conversation_id: str | None = Field(
        None, max_length=64, description="The conversation_id of an earlier chat answer, for a follow-up."
    )


class CodebaseSearchArgs(ToolArgs):
    query: str = Field(
        min_length=1,
        max_length=10_000,
        validation_alias=AliasChoices("query", "question"),
        description="What to look for (`question` is accepted as an alias).",
    )
    data_sources: StringList = []
    mode: str | None = Field(
        None,
        max_length=20,
        description="auto (the default), fast and deep run the full hybrid "
        "search; lexical, semantic or hybrid pick the index.",
    )
    description_detail: str | None = Field(None, max_length=10, description="Short (default) or Full.")


def _bounds(low: Any, high: Any, *, unit: str = "") -> str:
    if low is not None and high is not None:
        return f" of {low} to {high}{unit}" if unit else f" between {low} and {high}"
    if low is not None:
        return f" of at least {low}{unit}"
    return f" of at most {high}{unit}" if high is not None else ""


def expectation(prop: Mapping[str, Any]) -> str:
    """What a tool's JSON Schema property accepts, in words: ``an integer between 1 and 500``."""
    kinds: list[str] = []
    for alt in prop.get("anyOf", [prop]):
        kind = alt.get("type")
        if "enum" in alt:
            kinds.append("one of " + ", ".join(str(v) for v in alt["enum"]))
        elif kind == "integer":
            kinds.append("an integer" + _bounds(alt.get("minimum"), alt.get("maximum")))
        elif kind == "string":
            kinds.append("a string" + _bounds(alt.get("minLength"), alt.get("maxLength"), unit=" characters"))
        elif kind == "array":
            kinds.append("an array of strings" + _bounds(alt.get("minItems"), alt.get("maxItems"), unit=" items"))
        elif kind == "boolean":
            kinds.append("true or false")
    return " or ".join(kinds) or "a valid value"


def argument_error(errors: Sequence[ErrorDetails], schema: Mapping[str, Any]) -> ToolError:
    """Arguments that failed the tool's input schema, as the core's repairable error (what is
    wrong with each argument and what it accepts), in place of pydantic's report."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems: dict[str, tuple[str, str]] = {}  # one per argument: a union type fails once per member
    for error in errors:
        name = str(error["loc"][0]) if error["loc"] else "arguments"
        if name in problems:
            continue
        if error["type"] == "missing" or (error["type"] == "too_short" and not error.get("input")):
            problems[name] = (f"{name} is required", f"Provide {name} and retry.")
        else:
            expected = expectation(properties.get(name, {}))
            problems[name] = (f"{name} must be {expected}", f"Pass {name} as {expected}.")
    return ToolError(
        "invalid_tool_arguments", "; ".join(p for p, _ in problems.values()), " ".join(t for _, t in problems.values())
    )


# -- the tools ----------------------------------------------------------------------------------


def _one_repository(services: Services, principal: Principal | None, name: str | None) -> Source:
    db = services.store
    if name:
        try:
            return catalog.get_repository(db, principal, name)
        except NotFound:
            raise ToolError(
                "data_source_not_found",
                f"no repository named {name!r} is visible to this key",
                "Call get_data_sources and pass one of the listed names.",
            ) from None
    visible = catalog.list_data_sources(db, principal, type_filter="Repository")
    if len(visible) == 1 and visible[0].repository is not None:
        return visible[0].repository
    raise ToolError(
        "data_source_required",
        "data_source is required when the key sees several repositories",
        "Call get_data_sources and pass one repository name as data_source.",
    )


def get_data_sources(services: Services, principal: Principal | None, args: GetDataSourcesArgs) -> ToolResult:
    """List the repositories and workspaces this key can use. Pass a `name` from the result as
    `data_sources` (or `data_source`) to the other tools."""
    query = args.query
    found = catalog.list_data_sources(services.store, principal, ready_only=args.ready_only)
    items: list[dict[str, Any]] = []
    for d in found:
        item: dict[str, Any] = {"id": d.public_id, "name": d.name, "type": d.type}
        if d.repository is not None:
            item.update(
                state=d.repository.state,
                description=d.repository.description,
                branch=d.repository.branch,
                files=d.repository.file_count,
            )
        elif d.workspace is not None:
            item.update(description=d.workspace.description, repositories=len(d.workspace.source_ids))
        items.append(item)
    if query:
        items = catalog.relevance_filter(items, query)
    lines = [f'<data_sources count="{len(items)}">']
    lines.extend(
        f'  <data_source name={quoteattr(i["name"])} type="{i["type"]}" id="{i["id"]}"'
        + (f' state="{i["state"]}"' if "state" in i else "")
        + "/>"
        for i in items
    )
    lines.append("</data_sources>")
    lines.append("<hint>Pass a name as data_sources to semantic_search or grep_search.</hint>")
    return ToolResult({"data_sources": items}, "\n".join(lines))


def _search_results_text(results: list[dict[str, Any]], tag: str) -> str:
    lines = [f'<{tag} count="{len(results)}">']
    for r in results:
        rng = r.get("location", {}).get("range") or {}
        start = rng.get("start", {}).get("line", "")
        end = rng.get("end", {}).get("line", "")
        attrs = f'identifier={quoteattr(r["identifier"])} kind="{r["kind"]}" lines="{start}-{end}"'
        body = r.get("description") or ""
        if "matches" in r:
            body = "\n".join(f"{m['lineNumber']}: {m['lineText'].strip()[:200]}" for m in r["matches"][:5])
        lines.append(f"  <result {attrs}>{_esc(body)}</result>")
    lines.append(f"</{tag}>")
    hint = (
        "Load the real source with fetch_artifacts or read_file before relying on a result."
        if results
        else "No results: try other words, fewer filters, or grep_search for exact text."
    )
    lines.append(f"<hint>{hint}</hint>")
    return "\n".join(lines)


def _search(services: Services, principal: Principal | None, request: operations.SearchRequest) -> ToolResult:
    data = operations.search(services, principal, request)
    return ToolResult(data, _search_results_text(data["results"], "search_results"))


def semantic_search(services: Services, principal: Principal | None, args: SemanticSearchArgs) -> ToolResult:
    """Search indexed code by meaning (hybrid: identifiers, text and embeddings). Returns
    identifiers with paths, line ranges and short descriptions; load the real source with
    fetch_artifacts."""
    return _search(
        services,
        principal,
        operations.SearchRequest(
            args.question,
            names=tuple(args.data_sources),
            paths=tuple(args.paths),
            extensions=tuple(args.extensions),
            limit=args.max_results,
            exclude_markdown=args.exclude_markdown,
        ),
    )


def codebase_search(services: Services, principal: Principal | None, args: CodebaseSearchArgs) -> ToolResult:
    """Deprecated alias of semantic_search, kept for prompts written for older CodeAlive servers."""
    return _search(
        services,
        principal,
        operations.SearchRequest(
            args.query,
            names=tuple(args.data_sources),
            mode=operations.search_mode(args.mode, param="mode"),
            detail=operations.description_detail(args.description_detail, param="description_detail"),
        ),
    )


def grep_search(services: Services, principal: Principal | None, args: GrepSearchArgs) -> ToolResult:
    """Exact literal or regex search over file contents, with matching lines and columns. Literal
    mode also matches file names and paths."""
    data = operations.grep(
        services,
        principal,
        args.query,
        names=tuple(args.data_sources),
        paths=tuple(args.paths),
        extensions=tuple(args.extensions),
        regex=args.regex,
        limit=args.max_results,
        exclude_markdown=args.exclude_markdown,
    )
    return ToolResult(data, _search_results_text(data["results"], "grep_results"))


def fetch_artifacts(services: Services, principal: Principal | None, args: FetchArtifactsArgs) -> ToolResult:
    """Full source of artifacts by identifier, with line numbers and a preview of their calls."""
    try:
        data = operations.fetch_artifacts(
            services, principal, args.identifiers, data_source=args.data_source, max_identifiers=MAX_TOOL_IDENTIFIERS
        )
    except Conflict as exc:
        raise ToolError(
            "ambiguous_identifier",
            f"{exc}: {', '.join(exc.candidates[:10])}",
            "Retry once with data_source set to the repository you mean.",
        ) from None
    lines = ["<artifacts>"]
    missing = []
    for a in data["artifacts"]:
        if not a["found"]:
            missing.append(a["identifier"])
            continue
        start = a.get("startLine") or 1
        body = a["content"].split("\n")
        width = len(str(start + len(body)))
        numbered = "\n".join(f"{start + i:>{width}} | {line}" for i, line in enumerate(body))
        lines.append(f'  <artifact identifier={quoteattr(a["identifier"])} contentByteSize="{a["contentByteSize"]}">')
        lines.append(f"    <content>\n{numbered}\n    </content>")
        rel = a.get("relationships")
        if rel:
            lines.append(
                f'    <relationships outgoing_calls="{rel["outgoingCallsCount"]}" '
                f'incoming_calls="{rel["incomingCallsCount"]}"/>'
            )
        lines.append("  </artifact>")
    if missing:
        lines.append(
            f'  <not_found count="{len(missing)}">'
            + "".join(f"<artifact identifier={quoteattr(m)}/>" for m in missing)
            + "</not_found>"
        )
        lines.append("  <hint>Identifiers come from search results; check the spelling or search again.</hint>")
    lines.append("</artifacts>")
    return ToolResult(data, "\n".join(lines))


def get_artifact_relationships(services: Services, principal: Principal | None, args: RelationshipsArgs) -> ToolResult:
    """Graph expansion, not search: callers and callees, ancestors and descendants, or references of
    one artifact. Each item says how its edge was linked: `resolved` (through the file's imports,
    self/this or a receiver type the code states) or `name match` (by bare name, in languages
    without a resolver); calls whose definition the code does not show are listed as `unresolved`."""
    identifier = args.identifier
    try:
        data = operations.relationships(
            services,
            principal,
            identifier,
            profile=args.profile,
            max_count=args.max_count_per_type,
            data_source=args.data_source,
        )
    except Conflict as exc:
        raise ToolError(
            "ambiguous_identifier",
            f"{exc}: {', '.join(exc.candidates[:10])}",
            "Retry once with data_source set to the repository you mean.",
        ) from None
    if not data["found"]:
        raise ToolError(
            "artifact_not_found", f"no artifact {identifier!r}", "Use an exact identifier from a search or fetch result."
        )
    lines = [f'<relationships identifier={quoteattr(data["sourceIdentifier"])} profile="{data["profile"]}">']
    for g in data["relationships"]:
        lines.append(f'  <{g["relationType"]} total="{g["totalCount"]}" returned="{g["returnedCount"]}">')
        lines.extend(
            f'    <item identifier={quoteattr(i["identifier"])} line="{i.get("startLine", "")}" '
            f'resolution="{i["resolution"]}"/>'
            for i in g["items"]
        )
        lines.extend(f'    <unresolved name={quoteattr(u["name"])} line="{u["line"]}"/>' for u in g.get("unresolved", []))
        lines.append(f"  </{g['relationType']}>")
    lines.append("</relationships>")
    return ToolResult(data, "\n".join(lines))


def _safe_path(raw: str) -> str:
    if "\0" in raw or "\\" in raw:
        raise ToolError("invalid_path", "path contains forbidden characters", "Pass a repository-relative path.")
    cleaned = posixpath.normpath(raw.strip().lstrip("/")) if raw.strip() else "."
    if cleaned.startswith("..") or posixpath.isabs(cleaned):
        raise ToolError(
            "invalid_path", "path must stay inside the repository", "Pass a repository-relative path such as src/app.py."
        )
    return "" if cleaned == "." else cleaned


def read_file(services: Services, principal: Principal | None, args: ReadFileArgs) -> ToolResult:
    """Read a file of an indexed repository, optionally a line range (at most 1000 lines per call)."""
    path = _safe_path(args.path)
    source = _one_repository(services, principal, args.data_source)
    rows = services.store.find_artifacts([source.id], path, "") if path else []
    if not rows:
        raise ToolError(
            "file_not_found",
            f"no file {path!r} in {source.name}",
            "Call get_file_tree or grep_search to find the right path.",
        )
    lines = services.store.file_content(rows[0].file_id).split("\n")
    start = args.start_line
    end = args.end_line or min(len(lines), start + MAX_READ_LINES - 1)
    if end < start:
        raise ToolError("invalid_tool_arguments", "end_line is before start_line", "Pass start_line <= end_line.")
    end = min(end, len(lines), start + MAX_READ_LINES - 1)
    chunk = lines[start - 1 : end]
    width = len(str(end))
    numbered = "\n".join(f"{start + i:>{width}} | {line}" for i, line in enumerate(chunk))
    more = end < len(lines)
    obj = {
        "dataSource": source.name,
        "path": path,
        "startLine": start,
        "endLine": end,
        "totalLines": len(lines),
        "content": "\n".join(chunk),
        "truncated": more,
        "commit": source.commit,
    }
    hint = f"\n<hint>{len(lines) - end} more lines: call read_file with start_line={end + 1}.</hint>" if more else ""
    rendered = (
        f'<file path={quoteattr(path)} data_source={quoteattr(source.name)} lines="{start}-{end}" '
        f'total_lines="{len(lines)}">\n{numbered}\n</file>{hint}'
    )
    return ToolResult(obj, rendered)


def get_file_tree(services: Services, principal: Principal | None, args: FileTreeArgs) -> ToolResult:
    """A bounded file tree of one repository."""
    source = _one_repository(services, principal, args.data_source)
    base = _safe_path(args.path or "")
    max_depth, max_nodes = args.max_depth, args.max_nodes
    prefix = f"{base}/" if base else ""
    paths = [f.path for f in services.store.files([source.id]) if not base or f.path == base or f.path.startswith(prefix)]
    if base and not paths:
        raise ToolError(
            "path_not_found",
            f"no folder or file {base!r} in {source.name}",
            "Call get_file_tree without path to see the top level.",
        )
    counts: Counter[str] = Counter()
    nodes: dict[str, str] = {}
    for p in paths:
        rel = p[len(prefix) :] if prefix else p
        parts = rel.split("/")
        for depth in range(1, min(len(parts), max_depth) + 1):
            node = "/".join(parts[:depth])
            is_file = depth == len(parts)
            nodes.setdefault(node, "file" if is_file else "dir")
            if not is_file:
                counts[node] += 1
    ordered = sorted(nodes)
    truncated = len(ordered) > max_nodes
    shown = ordered[:max_nodes]
    entries = [{"path": prefix + n, "type": nodes[n], **({"files": counts[n]} if nodes[n] == "dir" else {})} for n in shown]
    lines = [f'<file_tree data_source={quoteattr(source.name)} root={quoteattr(base or "/")} nodes="{len(shown)}">']
    for n in shown:
        depth = n.count("/")
        label = n.rsplit("/", 1)[-1] + ("/" if nodes[n] == "dir" else "")
        extra = f"  ({counts[n]} files)" if nodes[n] == "dir" else ""
        lines.append(f"{'  ' * depth}{label}{extra}")
    lines.append("</file_tree>")
    if truncated:
        lines.append(f"<hint>{len(ordered) - max_nodes} more nodes: pass path= a sub-folder, or raise max_nodes.</hint>")
    obj = {"dataSource": source.name, "root": base, "entries": entries, "truncated": truncated, "totalNodes": len(ordered)}
    return ToolResult(obj, "\n".join(lines))


def get_repository_ontology(services: Services, principal: Principal | None, args: RepositoryArgs) -> ToolResult:
    """Orientation for one repository: languages, top-level layout, main modules, entry points and
    the most referenced symbols."""
    source = _one_repository(services, principal, args.data_source)
    files = services.store.files([source.id])
    languages = Counter(f.language or "other" for f in files)
    top: Counter[str] = Counter(f.path.split("/", 1)[0] + ("/" if "/" in f.path else "") for f in files)
    modules: Counter[str] = Counter()
    for f in files:
        if f.language and "/" in f.path:
            modules[f.path.rsplit("/", 1)[0]] += f.n_lines
    entry_points = [f.path for f in files if f.path.rsplit("/", 1)[-1] in ENTRY_POINT_NAMES][:20]
    referenced = services.store.top_targets(source.id, ["calls", "inherits"], 15)
    obj = {
        "dataSource": source.name,
        "commit": source.commit,
        "description": source.description,
        "files": len(files),
        "languages": dict(languages.most_common(10)),
        "topLevel": dict(top.most_common(25)),
        "mainModules": [{"path": p, "lines": n} for p, n in modules.most_common(10)],
        "entryPoints": entry_points,
        "mostReferenced": [{"name": n, "references": c} for n, c in referenced],
    }
    lines = [
        f'<repository_ontology data_source={quoteattr(source.name)} files="{len(files)}" '
        f'commit="{short_commit(source.commit)}">'
    ]
    if source.description:
        lines.append(f"<description>{_esc(source.description)}</description>")
    lines.append("<languages>" + ", ".join(f"{k} ({v})" for k, v in languages.most_common(10)) + "</languages>")
    lines.append("<top_level>" + ", ".join(f"{k} ({v})" for k, v in top.most_common(25)) + "</top_level>")
    lines.append("<main_modules>" + ", ".join(f"{p} ({n} lines)" for p, n in modules.most_common(10)) + "</main_modules>")
    lines.append("<entry_points>" + ", ".join(entry_points) + "</entry_points>")
    lines.append("<most_referenced>" + ", ".join(f"{n} ({c})" for n, c in referenced) + "</most_referenced>")
    lines.append("</repository_ontology>")
    return ToolResult(obj, "\n".join(lines))


def chat(services: Services, principal: Principal | None, args: ChatArgs) -> ToolResult:
    """A synthesized answer about the code, citing the artifacts it used. Slower than searching: call
    it only when the user asks for an explanation. Pass the returned conversation_id for a follow-up."""
    import asyncio

    from repolens.chat.engine import ChatRequest

    if not args.question.strip():
        raise ToolError("invalid_tool_arguments", "question is required", "Provide question and retry.")
    request = ChatRequest(question=args.question, names=tuple(args.data_sources), conversation_id=args.conversation_id)
    # Tools run in a worker thread (MCP and the REST tool route both), which has no event loop.
    started, finished = asyncio.run(services.answers.complete(principal, request))
    obj = {
        "answer": finished.answer,
        "conversation_id": started.conversation_id,
        "mode": started.mode,
        "model": started.model,
        "citations": finished.citations,
    }
    cites = "\n".join(
        f'  <citation n="{c["n"]}" identifier={quoteattr(c["identifier"])} lines="{c["startLine"]}-{c["endLine"]}"/>'
        for c in finished.citations
    )
    rendered = (
        f'<answer conversation_id="{started.conversation_id}" mode="{started.mode}">\n'
        f"{_esc(finished.answer)}\n</answer>\n<citations>\n{cites}\n</citations>\n"
        "<hint>Fetch a citation with fetch_artifacts; pass conversation_id to ask a follow-up.</hint>"
    )
    return ToolResult(obj, rendered)


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its arguments, what runs it, and how it is shown to agents (MCP title and description)."""

    args: type[ToolArgs]
    run: Callable[[Services, Principal | None, Any], ToolResult]
    title: str
    description: str


def _tool(
    args: type[ToolArgs],
    run: Callable[[Services, Principal | None, Any], ToolResult],
    title: str,
    description: str | None = None,
) -> Tool:
    return Tool(args, run, title, " ".join((description or run.__doc__ or "").split()))


TOOLS: dict[str, Tool] = {
    "get_data_sources": _tool(GetDataSourcesArgs, get_data_sources, "List Data Sources"),
    "semantic_search": _tool(SemanticSearchArgs, semantic_search, "Semantic Search"),
    "grep_search": _tool(GrepSearchArgs, grep_search, "Grep Search"),
    "get_repository_ontology": _tool(RepositoryArgs, get_repository_ontology, "Get Repository Ontology"),
    "get_file_tree": _tool(FileTreeArgs, get_file_tree, "Get File Tree"),
    "read_file": _tool(ReadFileArgs, read_file, "Read File"),
    "fetch_artifacts": _tool(FetchArtifactsArgs, fetch_artifacts, "Fetch Artifacts"),
    "get_artifact_relationships": _tool(RelationshipsArgs, get_artifact_relationships, "Inspect Artifact Relationships"),
    "chat": _tool(ChatArgs, chat, "Chat About Codebase"),
    # legacy names
    "codebase_search": _tool(CodebaseSearchArgs, codebase_search, "Codebase Search (legacy name of semantic_search)"),
    "codebase_consultant": _tool(ChatArgs, chat, "Codebase Consultant (legacy name of chat)", "Deprecated alias of chat."),
}


def call_tool(services: Services, principal: Principal | None, name: str, args: dict[str, Any]) -> ToolResult:
    """Validate ``args`` with the tool's model and run it; repairable mistakes come back as an error result."""
    tool = TOOLS.get(name)
    if tool is None:
        raise NotFound(f"unknown tool {name!r}; available: {', '.join(TOOLS)}")
    try:
        try:
            parsed = tool.args.model_validate(args)
        except ValidationError as invalid:
            raise argument_error(invalid.errors(), tool.args.model_json_schema()) from None
        return tool.run(services, principal, parsed)
    except ToolError as exc:
        return error_result(name, exc)
    except (InvalidInput, NotFound) as exc:
        return error_result(
            name,
            ToolError(
                "invalid_tool_arguments" if isinstance(exc, InvalidInput) else "not_found",
                str(exc),
                "Repair the arguments and call the tool again.",
            ),
        )
