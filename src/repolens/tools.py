"""The agent tool set (CodeAlive's Tool API v3, §3.7; the MCP server serves the same tools).

Each tool takes snake_case arguments, runs one core operation within the caller's scope and
returns ``ToolResult(obj, rendered)``: ``obj`` is the structured answer, ``rendered`` a compact
text for a language model. A mistake the caller can repair (a missing argument, an unknown
identifier, a path outside the repository) is a ``ToolError`` that comes back as a result
(``obj.error``) saying what to do, not as an HTTP failure.

List arguments accept an array, a JSON-array string or a single string, as CodeAlive's own
MCP server does.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from repolens import catalog, operations
from repolens.domain import short_commit
from repolens.errors import Conflict, InvalidInput, NotFound, ToolError

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.services import Services
    from repolens.storage.base import SourceRow

MAX_READ_LINES = 1000  # per read_file call, as CodeAlive's tool documents
MAX_TREE_NODES = 300
MAX_TREE_DEPTH = 8
MAX_TOOL_IDENTIFIERS = 50  # the MCP tool's cap (the REST route's default is 20)
ENTRY_POINT_NAMES = frozenset({
    "main.py", "__main__.py", "cli.py", "app.py", "server.py", "manage.py", "wsgi.py", "asgi.py", "main.go",
    "main.rs", "lib.rs", "index.js", "index.ts", "main.ts", "main.js", "server.js", "server.ts", "app.js", "app.ts",
    "Program.cs", "Main.java", "Application.java", "main.c", "main.cpp", "main.swift", "main.kt", "main.zig",
})  # fmt: skip


# The HTTP status each repairable error code stands for: MCP's error text names it (specs/codealive.md §5.4).
@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's structured answer and its text rendering."""

    obj: dict[str, Any]
    rendered: str


def error_result(tool: str, exc: ToolError) -> ToolResult:
    """The repairable-error envelope (HTTP 200, ``obj.error``)."""
    retry = "yes - repair the tool arguments and call the tool again"
    obj = {"error": {"code": exc.code, "message": str(exc), "retry": retry, "try": exc.try_}}
    rendered = (f"<tool_error tool={quoteattr(tool)}><code>{exc.code}</code><message>{_esc(str(exc))}</message>"
                f"<try>{_esc(exc.try_)}</try></tool_error>")  # fmt: skip
    return ToolResult(obj, rendered)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- argument coercion -----------------------------------------------------------------------


def as_list(value: Any, name: str) -> list[str]:
    """An array, a JSON-array string or one string, as a list of strings."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise ToolError("invalid_tool_arguments", f"{name} is not a valid JSON array",
                                f"Pass {name} as an array of strings.") from None  # fmt: skip
            return as_list(parsed, name)
        return [text]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise ToolError("invalid_tool_arguments", f"{name} must be a string or an array of strings",
                    f"Pass {name} as an array of strings.")  # fmt: skip


def as_str(args: dict[str, Any], name: str, *, required: bool = False, max_len: int = 10_000) -> str | None:
    """A string argument."""
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise ToolError("invalid_tool_arguments", f"{name} is required", f"Provide {name} and retry.")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ToolError("invalid_tool_arguments", f"{name} must be a string of at most {max_len} characters",
                        f"Provide {name} as a string.")  # fmt: skip
    return value


def as_int(args: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer argument within bounds."""
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ToolError("invalid_tool_arguments", f"{name} must be an integer", f"Provide {name} between {low} and {high}.")
    try:
        number = int(value)
    except ValueError:
        raise ToolError("invalid_tool_arguments", f"{name} must be an integer",
                        f"Provide {name} between {low} and {high}.") from None  # fmt: skip
    if not low <= number <= high:
        raise ToolError("invalid_tool_arguments", f"{name} must be between {low} and {high}",
                        f"Provide {name} between {low} and {high}.")  # fmt: skip
    return number


def as_bool(args: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean argument (``true``/``false`` strings accepted)."""
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ToolError("invalid_tool_arguments", f"{name} must be true or false", f"Provide {name} as a boolean.")


# -- the tools ----------------------------------------------------------------------------------


def _one_repository(services: Services, principal: Principal | None, name: str | None) -> SourceRow:
    db = services.store
    if name:
        try:
            return catalog.get_repository(db, principal, name)
        except NotFound:
            raise ToolError("data_source_not_found", f"no repository named {name!r} is visible to this key",
                            "Call get_data_sources and pass one of the listed names.") from None  # fmt: skip
    visible = catalog.list_data_sources(db, principal, type_filter="Repository")
    if len(visible) == 1 and visible[0].repository is not None:
        return visible[0].repository
    raise ToolError("data_source_required", "data_source is required when the key sees several repositories",
                    "Call get_data_sources and pass one repository name as data_source.")  # fmt: skip


def get_data_sources(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Visible repositories and workspaces."""
    ready_only = as_bool(args, "ready_only", True)
    query = as_str(args, "query", max_len=2000)
    found = catalog.list_data_sources(services.store, principal, ready_only=ready_only)
    items: list[dict[str, Any]] = []
    for d in found:
        item: dict[str, Any] = {"id": d.public_id, "name": d.name, "type": d.type}
        if d.repository is not None:
            item.update(state=d.repository.state, description=d.repository.description, branch=d.repository.branch,
                        files=d.repository.file_count)  # fmt: skip
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
    hint = ("Load the real source with fetch_artifacts or read_file before relying on a result."
            if results else "No results: try other words, fewer filters, or grep_search for exact text.")  # fmt: skip
    lines.append(f"<hint>{hint}</hint>")
    return "\n".join(lines)


def semantic_search(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Search by meaning."""
    question = as_str(args, "question", max_len=10_000) or as_str(args, "query", max_len=10_000)
    if not question or not question.strip():
        raise ToolError("invalid_tool_arguments", "question is required", "Provide question and retry.")
    request = operations.SearchRequest(
        question,
        names=tuple(as_list(args.get("data_sources"), "data_sources")),
        paths=tuple(as_list(args.get("paths"), "paths")),
        extensions=tuple(as_list(args.get("extensions"), "extensions")),
        limit=as_int(args, "max_results", 10, 1, 500) or 10,
        exclude_markdown=as_bool(args, "exclude_markdown", False),
        # The legacy codebase_search's own arguments.
        mode=operations.search_mode(as_str(args, "mode", max_len=20), param="mode"),
        detail=operations.description_detail(as_str(args, "description_detail", max_len=10), param="description_detail"),
    )
    data = operations.search(services, principal, request)
    return ToolResult(data, _search_results_text(data["results"], "search_results"))


def grep_search(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Literal or regex search."""
    query = as_str(args, "query", required=True, max_len=1000)
    assert query is not None
    data = operations.grep(services, principal, query, names=tuple(as_list(args.get("data_sources"), "data_sources")),
                           paths=tuple(as_list(args.get("paths"), "paths")),
                           extensions=tuple(as_list(args.get("extensions"), "extensions")),
                           regex=as_bool(args, "regex", False), limit=as_int(args, "max_results", 50, 1, 500) or 50,
                           exclude_markdown=as_bool(args, "exclude_markdown", False))  # fmt: skip
    return ToolResult(data, _search_results_text(data["results"], "grep_results"))


def fetch_artifacts(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Full artifacts by identifier, numbered from their first line."""
    identifiers = as_list(args.get("identifiers"), "identifiers")
    if not identifiers:
        raise ToolError("invalid_tool_arguments", "identifiers is required", "Pass identifiers from a search result.")
    if len(identifiers) > MAX_TOOL_IDENTIFIERS:
        raise ToolError("invalid_tool_arguments", f"Maximum {MAX_TOOL_IDENTIFIERS} identifiers per request",
                        "Split the identifiers over several calls.")  # fmt: skip
    try:
        data = operations.fetch_artifacts(services, principal, identifiers, data_source=as_str(args, "data_source"),
                                          max_identifiers=MAX_TOOL_IDENTIFIERS)  # fmt: skip
    except Conflict as exc:
        raise ToolError("ambiguous_identifier", f"{exc}: {', '.join(exc.candidates[:10])}",
                        "Retry once with data_source set to the repository you mean.") from None  # fmt: skip
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
            lines.append(f"    <relationships outgoing_calls=\"{rel['outgoingCallsCount']}\" "
                         f"incoming_calls=\"{rel['incomingCallsCount']}\"/>")  # fmt: skip
        lines.append("  </artifact>")
    if missing:
        lines.append(f"  <not_found count=\"{len(missing)}\">"
                     + "".join(f"<artifact identifier={quoteattr(m)}/>" for m in missing) + "</not_found>")  # fmt: skip
        lines.append("  <hint>Identifiers come from search results; check the spelling or search again.</hint>")
    lines.append("</artifacts>")
    return ToolResult(data, "\n".join(lines))


def get_artifact_relationships(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Graph expansion around one artifact."""
    identifier = as_str(args, "identifier", required=True, max_len=4096)
    assert identifier is not None
    max_count = as_int(args, "max_count_per_type", 50, 1, 1000) or 50
    try:
        data = operations.relationships(services, principal, identifier, profile=as_str(args, "profile"),
                                        max_count=max_count, data_source=as_str(args, "data_source"))  # fmt: skip
    except Conflict as exc:
        raise ToolError("ambiguous_identifier", f"{exc}: {', '.join(exc.candidates[:10])}",
                        "Retry once with data_source set to the repository you mean.") from None  # fmt: skip
    if not data["found"]:
        raise ToolError("artifact_not_found", f"no artifact {identifier!r}",
                        "Use an exact identifier from a search or fetch result.")  # fmt: skip
    lines = [f'<relationships identifier={quoteattr(data["sourceIdentifier"])} profile="{data["profile"]}">']
    for g in data["relationships"]:
        lines.append(f'  <{g["relationType"]} total="{g["totalCount"]}" returned="{g["returnedCount"]}">')
        lines.extend(f"    <item identifier={quoteattr(i['identifier'])} line=\"{i.get('startLine', '')}\"/>"
                     for i in g["items"])  # fmt: skip
        lines.append(f"  </{g['relationType']}>")
    lines.append("</relationships>")
    return ToolResult(data, "\n".join(lines))


def _safe_path(raw: str) -> str:
    if "\0" in raw or "\\" in raw:
        raise ToolError("invalid_path", "path contains forbidden characters", "Pass a repository-relative path.")
    cleaned = posixpath.normpath(raw.strip().lstrip("/")) if raw.strip() else "."
    if cleaned.startswith("..") or posixpath.isabs(cleaned):
        raise ToolError("invalid_path", "path must stay inside the repository",
                        "Pass a repository-relative path such as src/app.py.")  # fmt: skip
    return "" if cleaned == "." else cleaned


def read_file(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """A file, or a line range of it (at most 1000 lines per call)."""
    raw = as_str(args, "path", required=True, max_len=4096)
    assert raw is not None
    path = _safe_path(raw)
    source = _one_repository(services, principal, as_str(args, "data_source"))
    rows = services.store.find_artifacts([source.id], path, "") if path else []
    if not rows:
        raise ToolError("file_not_found", f"no file {path!r} in {source.name}",
                        "Call get_file_tree or grep_search to find the right path.")  # fmt: skip
    lines = services.store.file_content(rows[0].file_id).split("\n")
    start = as_int(args, "start_line", 1, 1, 10_000_000) or 1
    end = as_int(args, "end_line", None, 1, 10_000_000) or min(len(lines), start + MAX_READ_LINES - 1)
    if end < start:
        raise ToolError("invalid_tool_arguments", "end_line is before start_line", "Pass start_line <= end_line.")
    end = min(end, len(lines), start + MAX_READ_LINES - 1)
    chunk = lines[start - 1 : end]
    width = len(str(end))
    numbered = "\n".join(f"{start + i:>{width}} | {line}" for i, line in enumerate(chunk))
    more = end < len(lines)
    obj = {"dataSource": source.name, "path": path, "startLine": start, "endLine": end, "totalLines": len(lines),
           "content": "\n".join(chunk), "truncated": more, "commit": source.commit}  # fmt: skip
    hint = f"\n<hint>{len(lines) - end} more lines: call read_file with start_line={end + 1}.</hint>" if more else ""
    rendered = (f"<file path={quoteattr(path)} data_source={quoteattr(source.name)} lines=\"{start}-{end}\" "
                f"total_lines=\"{len(lines)}\">\n{numbered}\n</file>{hint}")  # fmt: skip
    return ToolResult(obj, rendered)


def get_file_tree(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """A bounded directory tree of one repository."""
    source = _one_repository(services, principal, as_str(args, "data_source"))
    base = _safe_path(as_str(args, "path", max_len=4096) or "")
    max_depth = as_int(args, "max_depth", 3, 1, MAX_TREE_DEPTH) or 3
    max_nodes = as_int(args, "max_nodes", 200, 1, MAX_TREE_NODES) or 200
    prefix = f"{base}/" if base else ""
    paths = [f.path for f in services.store.files([source.id]) if not base or f.path == base or f.path.startswith(prefix)]
    if base and not paths:
        raise ToolError("path_not_found", f"no folder or file {base!r} in {source.name}",
                        "Call get_file_tree without path to see the top level.")  # fmt: skip
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


def get_repository_ontology(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """Orientation: languages, top-level layout, main modules, entry points, most-referenced symbols."""
    source = _one_repository(services, principal, as_str(args, "data_source"))
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
    lines = [f"<repository_ontology data_source={quoteattr(source.name)} files=\"{len(files)}\" "
             f"commit=\"{short_commit(source.commit)}\">"]  # fmt: skip
    if source.description:
        lines.append(f"<description>{_esc(source.description)}</description>")
    lines.append("<languages>" + ", ".join(f"{k} ({v})" for k, v in languages.most_common(10)) + "</languages>")
    lines.append("<top_level>" + ", ".join(f"{k} ({v})" for k, v in top.most_common(25)) + "</top_level>")
    lines.append("<main_modules>" + ", ".join(f"{p} ({n} lines)" for p, n in modules.most_common(10)) + "</main_modules>")
    lines.append("<entry_points>" + ", ".join(entry_points) + "</entry_points>")
    lines.append("<most_referenced>" + ", ".join(f"{n} ({c})" for n, c in referenced) + "</most_referenced>")
    lines.append("</repository_ontology>")
    return ToolResult(obj, "\n".join(lines))


def chat(services: Services, principal: Principal | None, args: dict[str, Any]) -> ToolResult:
    """A grounded answer with citations, from the answer engine (retrieval-only without a model)."""
    import asyncio

    from repolens.chat.engine import ChatRequest

    question = as_str(args, "question") or as_str(args, "query")  # query: as semantic_search takes it
    if not question or not question.strip():
        raise ToolError("invalid_tool_arguments", "question is required", "Provide question and retry.")
    names = as_list(args.get("data_sources"), "data_sources")
    conversation = as_str(args, "conversation_id", max_len=64)
    request = ChatRequest(question=question, names=tuple(names), conversation_id=conversation)
    # Tools run in a worker thread (MCP and the REST tool route both), which has no event loop.
    started, finished = asyncio.run(services.answers.complete(principal, request))
    obj = {"answer": finished.answer, "conversation_id": started.conversation_id, "mode": started.mode,
           "model": started.model, "citations": finished.citations}  # fmt: skip
    cites = "\n".join(f"  <citation n=\"{c['n']}\" identifier={quoteattr(c['identifier'])} "
                      f"lines=\"{c['startLine']}-{c['endLine']}\"/>" for c in finished.citations)  # fmt: skip
    rendered = (f"<answer conversation_id=\"{started.conversation_id}\" mode=\"{started.mode}\">\n"
                f"{_esc(finished.answer)}\n</answer>\n<citations>\n{cites}\n</citations>\n"
                "<hint>Fetch a citation with fetch_artifacts; pass conversation_id to ask a follow-up.</hint>")  # fmt: skip
    return ToolResult(obj, rendered)


Tool = Callable[["Services", "Principal | None", dict[str, Any]], ToolResult]
TOOLS: dict[str, Tool] = {
    "get_data_sources": get_data_sources,
    "semantic_search": semantic_search,
    "grep_search": grep_search,
    "get_repository_ontology": get_repository_ontology,
    "get_file_tree": get_file_tree,
    "read_file": read_file,
    "fetch_artifacts": fetch_artifacts,
    "get_artifact_relationships": get_artifact_relationships,
    "chat": chat,
    "codebase_search": semantic_search,  # legacy names
    "codebase_consultant": chat,
}


def call_tool(services: Services, principal: Principal | None, name: str, args: dict[str, Any]) -> ToolResult:
    """Run a tool; repairable mistakes come back as an error result."""
    tool = TOOLS.get(name)
    if tool is None:
        raise NotFound(f"unknown tool {name!r}; available: {', '.join(TOOLS)}")
    try:
        return tool(services, principal, args)
    except ToolError as exc:
        return error_result(name, exc)
    except (InvalidInput, NotFound) as exc:
        return error_result(name, ToolError("invalid_tool_arguments" if isinstance(exc, InvalidInput) else "not_found",
                                            str(exc), "Repair the arguments and call the tool again."))  # fmt: skip
