"""The relation graph: calls, inheritance and references between symbols, resolved by name.

Edges are stored with the target as written (``helper``, ``Base``); they are resolved here,
at query time, against the current symbol table, so an incremental re-index never leaves an
edge pointing at a deleted row. Resolution prefers a definition in the same file, then any
definition in the same source; a name defined too many times is not resolved (it would
connect everything to everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repolens.domain import Artifact, Source
from repolens.errors import InvalidInput
from repolens.storage.base import Store

Profile = Literal["calls", "inheritance", "references", "all"]
Direction = Literal["OutgoingCalls", "IncomingCalls", "Ancestors", "Descendants", "References"]
PROFILES: dict[str, tuple[Direction, ...]] = {
    "calls": ("OutgoingCalls", "IncomingCalls"),
    "inheritance": ("Ancestors", "Descendants"),
    "references": ("References",),
    "all": ("OutgoingCalls", "IncomingCalls", "Ancestors", "Descendants"),
}
MAX_RESOLUTIONS = 5  # a call to a name defined in more places than this is left unresolved
_CALLABLE = frozenset({"function", "method", "class", "struct"})
_TYPES = frozenset({"class", "interface", "struct", "trait", "enum", "type"})


@dataclass(slots=True)
class RelationGroup:
    """One direction of relations for an artifact."""

    direction: Direction
    items: list[tuple[Artifact, int]] = field(default_factory=list)  # (related artifact, line)
    total: int = 0


def _resolve(store: Store, source: Source, name: str, near: Artifact, kinds: frozenset[str]) -> list[Artifact]:
    rows = [r for r in store.symbols_named([name], [source.id]) if r.name == name and r.symbol_kind in kinds]
    same_file = [r for r in rows if r.file_id == near.file_id]
    if same_file:
        return same_file[:1]
    return rows if len(rows) <= MAX_RESOLUTIONS else []


def relations(
    store: Store, source: Source, artifact: Artifact, *, profile: Profile, max_per_type: int
) -> list[RelationGroup]:
    """Related artifacts in each direction of ``profile``, at most ``max_per_type`` each."""
    if profile not in PROFILES:
        raise InvalidInput(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if not 1 <= max_per_type <= 1000:
        raise InvalidInput("max count per type must be between 1 and 1000")
    return [_direction(store, source, artifact, d, max_per_type) for d in PROFILES[profile]]


def counts(store: Store, source: Source, artifact: Artifact) -> dict[str, int]:
    """How many related artifacts exist in every direction."""
    pairs: tuple[tuple[str, Direction], ...] = (
        ("outgoingCalls", "OutgoingCalls"),
        ("incomingCalls", "IncomingCalls"),
        ("ancestors", "Ancestors"),
        ("descendants", "Descendants"),
        ("references", "References"),
    )
    return {key: _direction(store, source, artifact, direction, 1_000_000).total for key, direction in pairs}


def _direction(store: Store, source: Source, art: Artifact, direction: Direction, limit: int) -> RelationGroup:
    group = RelationGroup(direction)
    found: dict[int, tuple[Artifact, int]] = {}
    if direction in ("OutgoingCalls", "Ancestors"):
        kind = "calls" if direction == "OutgoingCalls" else "inherits"
        targets = _TYPES if kind == "inherits" else _CALLABLE
        for _, rel in store.relations_from([art.id], [kind]):
            for row in _resolve(store, source, rel.target, art, targets):
                if row.id != art.id:
                    found.setdefault(row.id, (row, rel.line))
    else:
        if art.kind != "Symbol":
            return group
        kinds = {"IncomingCalls": ["calls"], "Descendants": ["inherits"], "References": ["references", "calls"]}[direction]
        edges = store.relations_to([source.id], [art.name], kinds)
        froms = store.artifacts_by_id([f for f, _ in edges])
        for from_id, rel in edges:
            caller = froms.get(from_id)
            if caller is None or caller.id == art.id:
                continue
            row = caller
            # A call to `name` resolves to this artifact only if no same-file definition of
            # the name shadows it (same rule as outgoing resolution).
            if row.file_id != art.file_id:
                local = [
                    r for r in store.artifacts_in_path(row.source_id, row.path) if r.name == art.name and r.kind == "Symbol"
                ]
                if local:
                    continue
            found.setdefault(row.id, (row, rel.line))
    items = sorted(found.values(), key=lambda t: (t[0].path, t[0].start_line))
    group.total = len(items)
    group.items = items[:limit]
    return group
