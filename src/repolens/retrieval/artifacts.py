"""Artifact identifiers and fetching full artifacts by identifier."""

from __future__ import annotations

from dataclasses import dataclass

from repolens.domain import Artifact, Source
from repolens.errors import Conflict, InvalidInput, NotFound
from repolens.storage.base import Store

MAX_IDENTIFIER_CHARS = 2048  # longer than any real path plus symbol; refuse before parsing


@dataclass(frozen=True, slots=True)
class ParsedIdentifier:
    """``owner/repo::path[::ident]`` split into its parts."""

    source: str
    path: str
    ident: str  # '' for a file


@dataclass(frozen=True, slots=True)
class FetchedArtifact:
    """An artifact with its content, or a miss."""

    identifier: str
    found: bool
    artifact: Artifact | None = None
    source: Source | None = None
    content: str | None = None


def parse_identifier(identifier: str) -> ParsedIdentifier:
    """Split an identifier; a trailing ``(signature)`` on the symbol part is ignored."""
    if not identifier or len(identifier) > MAX_IDENTIFIER_CHARS:
        raise InvalidInput(f"identifier must be 1 to {MAX_IDENTIFIER_CHARS} characters")
    parts = identifier.strip().split("::", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise InvalidInput(f"identifier {identifier!r} is not of the form 'owner/repo::path[::Symbol.name]'")
    ident = parts[2] if len(parts) == 3 else ""
    if "(" in ident:
        ident = ident.split("(", 1)[0]
    return ParsedIdentifier(parts[0], parts[1].lstrip("/"), ident.strip())


def resolve_source(
    store: Store, name: str, *, data_source: str | None = None, visible: frozenset[int] | None = None
) -> Source:
    """The source an identifier names: exact name, id, or a unique ``repo`` suffix.

    Sources outside ``visible`` (a key's scope; None = all) do not exist for the caller.
    """
    if data_source:
        chosen = store.get_source(data_source)
        if chosen is None or (visible is not None and chosen.id not in visible):
            raise NotFound(f"unknown data source {data_source!r}")
        return chosen
    exact = store.get_source(name)
    if exact is not None and (visible is None or exact.id in visible):
        return exact
    tail = name.rsplit("/", 1)[-1].lower()
    matches = [
        s for s in store.list_sources() if s.name.lower().rsplit("/", 1)[-1] == tail and (visible is None or s.id in visible)
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise Conflict(f"identifier source {name!r} is ambiguous; pass a data source", [s.name for s in matches])
    raise NotFound(f"unknown source {name!r}")


def find_artifact(
    store: Store, identifier: str, *, data_source: str | None = None, visible: frozenset[int] | None = None
) -> tuple[Source, Artifact]:
    """Resolve one identifier to exactly one artifact (NotFound or Conflict otherwise)."""
    parsed = parse_identifier(identifier)
    source = resolve_source(store, parsed.source, data_source=data_source, visible=visible)
    rows = store.find_artifacts([source.id], parsed.path, parsed.ident)
    if not rows and parsed.ident:
        # Accept a plain name or a qualified name without the ~N suffix of duplicates.
        rows = [
            r
            for r in store.artifacts_in_path(source.id, parsed.path)
            if r.kind == "Symbol" and parsed.ident in (r.qualified_name, r.name)
        ]
    if not rows:
        raise NotFound(f"no artifact {identifier!r}")
    if len(rows) > 1:
        raise Conflict(
            f"identifier {identifier!r} matches {len(rows)} artifacts",
            [r.identifier(source.name) for r in rows],
        )
    return source, rows[0]


def fetch(
    store: Store, identifiers: list[str], *, data_source: str | None = None, visible: frozenset[int] | None = None
) -> list[FetchedArtifact]:
    """Full content of each identifier; unknown ones come back with ``found=False``.

    Malformed identifiers raise ``InvalidInput``; ambiguous ones raise ``Conflict``.
    """
    out: list[FetchedArtifact] = []
    contents: dict[int, list[str]] = {}
    for identifier in identifiers:
        try:
            source, row = find_artifact(store, identifier, data_source=data_source, visible=visible)
        except NotFound:
            out.append(FetchedArtifact(identifier, False))
            continue
        if row.file_id not in contents:
            contents[row.file_id] = store.file_content(row.file_id).split("\n")
        lines = contents[row.file_id]
        text = "\n".join(lines[row.start_line - 1 : row.end_line])
        out.append(FetchedArtifact(row.identifier(source.name), True, row, source, text))
    return out
