"""Asking the index: ``search``, ``grep``, ``fetch``, ``relations`` and ``ask``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from repolens.domain import MAX_RELATIONS_PER_TYPE, MAX_RESULTS
from repolens.errors import NotFound
from repolens.surfaces.cli.base import (
    cli,
    emit_json,
    handle_errors,
    json_option,
    open_services,
    search_filters,
    skip_teardown,
    source_option,
)

if TYPE_CHECKING:
    from repolens.services import Services


# -- search -----------------------------------------------------------------------------------


@cli.command()
@click.argument("query")
@source_option
@click.option("--path", "paths", multiple=True, help="Only paths under this prefix (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only files with this extension, e.g. py (repeatable).")
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, MAX_RESULTS))
@click.option("--mode", type=click.Choice(["auto", "lexical", "semantic", "hybrid"]), default="auto", show_default=True)
@click.option("--content", is_flag=True, help="Include full content in --json output.")
@json_option
@handle_errors
def search(
    query: str,
    sources: tuple[str, ...],
    paths: tuple[str, ...],
    exts: tuple[str, ...],
    limit: int,
    mode: str,
    content: bool,
    as_json: bool,
) -> None:
    """Hybrid code search: symbols, chunks and files ranked for QUERY."""
    from repolens import operations, views
    from repolens.retrieval.search import Mode

    skip_teardown()  # scripts call `repolens search` once per query: exit as soon as it has answered

    with open_services(index_only=True) as services:
        mode_value: Mode = mode  # type: ignore[assignment]  # click.Choice guarantees the literal
        request = operations.SearchRequest(
            query, names=sources, paths=paths, extensions=exts, limit=limit, mode=mode_value, include_content=content
        )
        outcome, contents = operations.search_with_contents(services, None, request)
        if as_json:
            emit_json(views.search_response(outcome, contents, include_content=content))
            return
        if not outcome.hits:
            click.echo("no results")
        for i, hit in enumerate(outcome.hits, start=1):
            row = hit.artifact
            label = row.qualified_name if row.kind == "Symbol" else row.name or row.kind.lower()
            click.echo(
                click.style(f"{i:>2}. {row.path}:{row.start_line}-{row.end_line}", bold=True)
                + f"  {row.kind}{' ' + row.symbol_kind if row.kind == 'Symbol' else ''} {label}"
                + click.style(f"  [{hit.source.name}]", dim=True)
            )
            desc = views.description(row).split("\n")
            for line in desc[:2]:
                click.echo(f"      {line[:160]}")
        note = f"{outcome.mode} search, {outcome.elapsed_ms:.0f} ms"
        if outcome.vectors_total and outcome.vectors_ready < outcome.vectors_total:
            note += f"; vectors {outcome.vectors_ready}/{outcome.vectors_total} ready (lexical fills in the rest)"
        elif services.embedder is None:
            note += "; no embedder configured"
        click.echo(click.style(note, dim=True), err=True)


# -- grep -------------------------------------------------------------------------------------


@cli.command()
@click.argument("pattern")
@click.option("--regex", "-e", is_flag=True, help="PATTERN is a regular expression (default: literal).")
@source_option
@click.option("--path", "paths", multiple=True, help="Only paths under this prefix (repeatable).")
@click.option("--ext", "exts", multiple=True, help="Only files with this extension (repeatable).")
@click.option("--limit", "-k", default=50, show_default=True, type=click.IntRange(1, MAX_RESULTS), help="Maximum files.")
@click.option("--case-sensitive/--ignore-case", default=None, help="Default: smart case.")
@json_option
@handle_errors
def grep(
    pattern: str,
    regex: bool,
    sources: tuple[str, ...],
    paths: tuple[str, ...],
    exts: tuple[str, ...],
    limit: int,
    case_sensitive: bool | None,
    as_json: bool,
) -> None:
    """Literal (or regex) search in file contents; literal patterns also match file names."""
    from repolens import catalog, views
    from repolens.retrieval.grep import grep as run_grep

    with open_services() as services:
        chosen = catalog.resolve_scope(services.store, None, list(sources))
        hits = run_grep(
            services.store,
            chosen,
            pattern,
            regex=regex,
            filters=search_filters((), paths, exts),
            limit=limit,
            case_sensitive=case_sensitive,
        )
        if as_json:
            emit_json(views.grep_response(hits))
            return
        for h in hits:
            if h.by_name:
                click.echo(f"{h.source.name}::{h.file.path}  (file name)")
            for m in h.matches:
                click.echo(f"{h.file.path}:{m.line}:{m.start_column}: {m.text.strip()[:200]}")
            if h.match_count > len(h.matches):
                click.echo(click.style(f"{h.file.path}: {h.match_count - len(h.matches)} more matches", dim=True))
        if not hits:
            click.echo("no matches")


# -- fetch ------------------------------------------------------------------------------------


@cli.command()
@click.argument("identifiers", nargs=-1, required=True)
@click.option("--source", "data_source", help="Data source name or id to resolve identifiers in.")
@json_option
@handle_errors
def fetch(identifiers: tuple[str, ...], data_source: str | None, as_json: bool) -> None:
    """Full content of artifacts by identifier (owner/repo::path[::Symbol])."""
    from repolens import operations

    with open_services() as services:
        if as_json:
            response = operations.fetch_artifacts(
                services, None, list(identifiers), data_source=data_source, max_identifiers=operations.MAX_IDENTIFIERS_HARD
            )
            emit_json(response)
            missing = [a["identifier"] for a in response["artifacts"] if not a.get("found", True)]
        else:
            missing = _print_artifacts(services, list(identifiers), data_source)
        if missing:
            raise NotFound(
                f"not found: {', '.join(missing)} (identifiers look like owner/repo::path[::Symbol]; "
                "`repolens search` lists them)"
            )


def _print_artifacts(services: Services, identifiers: list[str], data_source: str | None) -> list[str]:
    """Print each found artifact with line numbers; the identifiers that were not found."""
    from repolens import operations

    missing: list[str] = []
    items = operations.fetch_items(
        services, None, identifiers, data_source=data_source, max_identifiers=operations.MAX_IDENTIFIERS_HARD
    )
    for item in items:
        if not item.found or item.artifact is None or item.content is None:
            missing.append(item.identifier)
            continue
        click.echo(
            click.style(f"# {item.identifier}  (lines {item.artifact.start_line}-{item.artifact.end_line})", bold=True)
        )
        width = len(str(item.artifact.end_line))
        for offset, line in enumerate(item.content.split("\n")):
            click.echo(f"{item.artifact.start_line + offset:>{width}}  {line}")
    return missing


# -- relations --------------------------------------------------------------------------------


@cli.command()
@click.argument("identifier")
@click.option(
    "--profile", type=click.Choice(["calls", "inheritance", "references", "all"]), default="calls", show_default=True
)
@click.option(
    "--max",
    "max_count",
    default=50,
    show_default=True,
    type=click.IntRange(1, MAX_RELATIONS_PER_TYPE),
    help="Per relation type.",
)
@click.option("--source", "data_source", help="Data source name or id to resolve the identifier in.")
@json_option
@handle_errors
def relations(identifier: str, profile: str, max_count: int, data_source: str | None, as_json: bool) -> None:
    """Callers, callees, ancestors, descendants or references of a symbol."""
    from repolens import operations
    from repolens.retrieval import graph
    from repolens.retrieval.artifacts import find_artifact

    with open_services() as services:
        if as_json:
            emit_json(
                operations.relationships(
                    services, None, identifier, profile=profile, max_count=max_count, data_source=data_source
                )
            )
            return
        source, artifact = find_artifact(services.store, identifier, data_source=data_source)
        groups = graph.relations(
            services.store, source, artifact, profile=operations.parse_profile(profile), max_per_type=max_count
        )
        click.echo(click.style(artifact.identifier(source.name), bold=True))
        for g in groups:
            suffix = f" (showing {len(g.items)})" if g.total > len(g.items) else ""
            click.echo(f"  {g.direction}: {g.total}{suffix}")
            for row, line in g.items:
                how = g.resolution.get(row.id, "name match")
                click.echo(f"    {row.identifier(source.name)}  ({row.path}:{row.start_line}; edge at line {line}; {how})")
            for name, line in g.unresolved:
                click.echo(f"    unresolved: {name}  (edge at line {line})")


@cli.command()
@click.argument("question")
@click.option("--source", "-s", "sources", multiple=True, help="Answer from this data source (repeatable).")
@click.option("--conversation", "conversation_id", help="Continue this conversation (the id a previous answer printed).")
@click.option("--new", "forget", is_flag=True, help="Do not keep this question in a conversation.")
@json_option
@handle_errors
def ask(question: str, sources: tuple[str, ...], conversation_id: str | None, forget: bool, as_json: bool) -> None:
    """Ask QUESTION about the indexed code: a streamed answer that cites what it used.

    Uses the model configured by REPOLENS_LLM_* settings; without one, a labelled retrieval-only
    answer lists the most relevant code instead.
    """
    import asyncio

    from repolens.chat.engine import ChatRequest, Delta, Finished, Started

    request = ChatRequest(question=question, names=sources, conversation_id=conversation_id, remember=not forget)

    async def run(services: Services) -> None:
        started: Started | None = None
        async for event in services.answers.answer(None, request):
            if isinstance(event, Started):
                started = event
            elif isinstance(event, Delta) and not as_json:
                click.echo(event.text, nl=False)
            elif isinstance(event, Finished):
                assert started is not None
                if as_json:
                    emit_json(
                        {
                            "content": event.answer,
                            "conversationId": started.conversation_id,
                            "messageId": started.message_id,
                            "model": started.model,
                            "mode": started.mode,
                            "citations": event.citations,
                            "finishReason": event.finish_reason,
                            "usage": {"promptTokens": event.prompt_tokens, "completionTokens": event.completion_tokens},
                        }
                    )
                    return
                if not event.answer.endswith("\n"):
                    click.echo()
                for c in event.citations:
                    click.echo(
                        click.style(f"[{c['n']}] {c['identifier']}  ({c['path']}:{c['startLine']}-{c['endLine']})", dim=True)
                    )
                if started.conversation_id:
                    click.echo(
                        click.style(
                            f"conversation {started.conversation_id} ({started.model}); "
                            f"follow up with --conversation {started.conversation_id}",
                            dim=True,
                        ),
                        err=True,
                    )

    with open_services() as services:
        asyncio.run(run(services))
