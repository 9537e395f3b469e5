"""The relation graph: calls, inheritance and references between symbols.

Edges are stored with the target as written (``helper``, ``Base``) and the parser's hint of
where it is defined (``parsing/resolve.py``); they are linked here, at query time, against the
current symbol table, so an incremental re-index never leaves an edge pointing at a deleted row.
Every linked edge says how it was linked:

``resolved``
    the hint named the definition (qualified name in a module the file imports, the class of
    ``self``/``this``, a typed receiver, the same file or package) and it exists.
``name match``
    the language has no resolver (or the index predates hints): the edge links a definition in
    the same file, else every definition of the name in the source (none if there are more
    than ``MAX_RESOLUTIONS``: that would connect everything to everything).

A call whose hint finds nothing (an untyped receiver, a builtin, another package) is kept,
named, as ``unresolved``: reported, linked to nothing.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Literal

from repolens.domain import NAME_MATCH, SAME_FILE, UNRESOLVED, Artifact, Source
from repolens.errors import InvalidInput
from repolens.storage.base import Store

Profile = Literal["calls", "inheritance", "references", "all"]
Direction = Literal["OutgoingCalls", "IncomingCalls", "Ancestors", "Descendants", "References"]
Resolution = Literal["resolved", "name match"]
PROFILES: dict[str, tuple[Direction, ...]] = {
    "calls": ("OutgoingCalls", "IncomingCalls"),
    "inheritance": ("Ancestors", "Descendants"),
    "references": ("References",),
    "all": ("OutgoingCalls", "IncomingCalls", "Ancestors", "Descendants"),
}
MAX_RESOLUTIONS = 5  # a call to a name defined in more places than this is left unresolved
# How far a member is looked up through base classes (``self.x()`` defined three classes up);
# deeper hierarchies exist, but each level is a query and the answer is rarely that far.
MAX_BASE_DEPTH = 4
_CALLABLE = frozenset({"function", "method", "class", "struct"})
_TYPES = frozenset({"class", "interface", "struct", "trait", "enum", "type"})
# Module files that stand for their directory (a package, a barrel) and may re-export names
# defined in the files below them.
_PACKAGE_STEMS = ("__init__", "index", "mod")


@dataclass(slots=True)
class RelationGroup:
    """One direction of relations for an artifact."""

    direction: Direction
    items: list[tuple[Artifact, int]] = field(default_factory=list)  # (related artifact, line)
    total: int = 0
    resolution: dict[int, Resolution] = field(default_factory=dict)  # related artifact id -> how linked
    unresolved: list[tuple[str, int]] = field(default_factory=list)  # (name, line): outgoing calls linked to nothing


def _stem(path: str) -> str:
    base = path.removesuffix(".d.ts")
    head, tail = posixpath.split(base)
    if "." in tail:
        tail = tail.rsplit(".", 1)[0]
    return posixpath.join(head, tail) if head else tail


def _ends_with(stem: str, module: str) -> bool:
    return stem == module or stem.endswith("/" + module)


def matches(locator: str, row: Artifact, near: Artifact, *, under_package: bool = False) -> bool:
    """Whether ``row``'s file is one the ``locator`` of a hint names (see ``parsing/resolve.py``);
    ``near`` is the artifact the edge starts in. ``under_package`` also accepts files below a
    module's package directory (names a package re-exports)."""
    if locator == SAME_FILE:
        return row.file_id == near.file_id
    kind, _, value = locator.partition(":")
    directory = posixpath.dirname(row.path)
    if kind == "d":
        return directory == value
    if kind == "g":
        return bool(directory) and (value == directory or value.endswith("/" + directory))
    if kind == "p":
        stem = _stem(row.path)
        if _ends_with(stem, value) or any(_ends_with(stem, f"{value}/{s}") for s in _PACKAGE_STEMS):
            return True
        return under_package and (directory.startswith(value + "/") or f"/{value}/" in f"/{directory}/")
    return False


def _after_parameters(signature: str, name: str) -> str:
    """What follows the parameter list that comes after ``name`` in ``signature``."""
    start = signature.find(name + "(")
    if start < 0:
        start = signature.find(name + "<")
    if start < 0:
        return ""
    depth = 0
    for i in range(start + len(name), len(signature)):
        char = signature[i]
        if char in "(<[":
            depth += 1
        elif char in ")>]":
            depth -= 1
            if depth == 0 and char == ")":
                return signature[i + 1 :].strip()
    return ""


def _bare_type(written: str) -> str:
    text = written.strip().strip("\"'").lstrip("*&?").strip()
    for wrapper in ("Optional[", "t.Optional[", "typing.Optional[", "Promise<"):
        if text.startswith(wrapper):
            text = text[len(wrapper) :]
    text = text.split("[", 1)[0].split("<", 1)[0].split("|", 1)[0].strip().rstrip(";").strip()
    return text if text.replace("_", "a").isalnum() else ""


def result_type(fn: Artifact) -> str:
    """The bare type name a function's signature says it returns ('' when it does not say, or
    names a type of another package)."""
    signature, language = fn.signature, fn.language
    if language == "python":
        _, arrow, written = signature.rpartition("->")
        return _bare_type(written.removesuffix(": ...")) if arrow else ""
    rest = _after_parameters(signature, fn.name)
    if language == "go":
        if rest.startswith("("):
            rest = rest[1:].split(",", 1)[0].split(")", 1)[0]
        return "" if "." in rest else _bare_type(rest)
    if language in ("typescript", "tsx", "javascript"):
        return _bare_type(rest[1:]) if rest.startswith(":") else ""
    if language == "java":
        words = signature.split(fn.name + "(", 1)[0].split()
        return _bare_type(words[-1]) if words else ""
    return ""


class Linker:
    """Links edges to definitions for one source, with the lookups of one request cached."""

    def __init__(self, store: Store, source: Source) -> None:
        self.store = store
        self.source = source
        self._named: dict[str, list[Artifact]] = {}
        self._links: dict[tuple[str, str, int, frozenset[str]], tuple[list[Artifact], Resolution | None]] = {}

    def named(self, name: str) -> list[Artifact]:
        rows = self._named.get(name)
        if rows is None:
            rows = [r for r in self.store.symbols_named([name], [self.source.id]) if r.name == name]
            self._named[name] = rows
        return rows

    def link(
        self, name: str, hint: str, near: Artifact, kinds: frozenset[str], *, names_only: bool = False
    ) -> tuple[list[Artifact], Resolution | None]:
        """The definitions an edge to ``name`` with ``hint`` links, and how; ``names_only`` ignores
        the hint (the bare-name rule every edge followed before hints)."""
        if names_only or hint == NAME_MATCH:
            rows = [r for r in self.named(name) if r.symbol_kind in kinds]
            same_file = [r for r in rows if r.file_id == near.file_id]
            linked = same_file[:1] if same_file else rows if len(rows) <= MAX_RESOLUTIONS else []
            return linked, "name match" if linked else None
        if hint == UNRESOLVED:
            return [], None
        key = (name, hint, near.file_id if SAME_FILE in hint else 0, kinds)
        cached = self._links.get(key)
        if cached is None:
            cached = self._resolve(hint, near, kinds)
            self._links[key] = cached
        return cached

    def _resolve(self, hint: str, near: Artifact, kinds: frozenset[str]) -> tuple[list[Artifact], Resolution | None]:
        for alternative in hint.split("|"):
            qual, _, where = alternative.rpartition("@")
            rows = self._place(qual, where.split(";"), near, kinds, depth=0)
            if rows:
                return rows[:MAX_RESOLUTIONS], "resolved"
        return [], None

    def _place(self, qual: str, locators: list[str], near: Artifact, kinds: frozenset[str], depth: int) -> list[Artifact]:
        if not qual:
            return []
        if "()." in qual:
            return self._result_member(qual, locators, near, kinds, depth)
        last = qual.rsplit(".", 1)[-1]
        for under_package in (False, True):
            rows = [
                r
                for r in self.named(last)
                if r.qualified_name == qual
                and r.symbol_kind in kinds
                and any(matches(loc, r, near, under_package=under_package) for loc in locators)
            ]
            if rows:
                return rows
        owner, _, member = qual.rpartition(".")
        if not owner:
            return []
        types = [
            r
            for r in self.named(owner.rsplit(".", 1)[-1])
            if r.qualified_name == owner and r.symbol_kind in _TYPES and any(matches(loc, r, near) for loc in locators)
        ]
        for row in types:
            found = self._member(row, member, kinds, depth)
            if found:
                return found
        return []

    def _result_member(
        self, qual: str, locators: list[str], near: Artifact, kinds: frozenset[str], depth: int
    ) -> list[Artifact]:
        """``f().m``: member ``m`` of the type callee ``f`` declares it returns (a class called as a
        constructor returns itself). The result type is a bare name read from ``f``'s signature,
        so it is looked up beside ``f``: its file, then its directory (its Go or Java package),
        else the one type of that name in the source."""
        function, _, member = qual.rpartition("().")
        if depth >= MAX_BASE_DEPTH:
            return []
        for fn in self._place(function, locators, near, _CALLABLE, depth + 1):
            result = fn.name if fn.symbol_kind in ("class", "struct") else result_type(fn)
            if not result:
                continue
            directory = posixpath.dirname(fn.path)
            named = [r for r in self.named(result) if r.symbol_kind in _TYPES and r.qualified_name == result]
            types = [r for r in named if r.file_id == fn.file_id or posixpath.dirname(r.path) == directory]
            types.sort(key=lambda r: r.file_id != fn.file_id)
            if not types and len(named) == 1:
                # imported into f's file from elsewhere (the graph does not keep f's imports):
                # a type name defined once in the source can only be that one
                types = named
            for row in types:
                found = self._member(row, member, kinds, depth)
                if found:
                    return found
        return []

    def _member(self, owner: Artifact, member: str, kinds: frozenset[str], depth: int) -> list[Artifact]:
        """``member`` of the type ``owner``: in its file or package, else in its base classes."""
        qual = f"{owner.qualified_name}.{member}"
        directory = posixpath.dirname(owner.path)
        rows = [
            r
            for r in self.named(member)
            if r.qualified_name == qual
            and r.symbol_kind in kinds
            and (r.file_id == owner.file_id or posixpath.dirname(r.path) == directory)
        ]
        if rows or depth >= MAX_BASE_DEPTH:
            return rows
        for _, edge in self.store.relations_from([owner.id], ["inherits"]):
            bases, how = self.link(edge.target, edge.hint, owner, _TYPES)
            for base in bases if how == "resolved" or len(bases) == 1 else []:
                if base.id != owner.id:
                    found = self._member(base, member, kinds, depth + 1)
                    if found:
                        return found
        return []


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
    linker = Linker(store, source)
    found: dict[int, tuple[Artifact, int]] = {}
    if direction in ("OutgoingCalls", "Ancestors"):
        kind = "calls" if direction == "OutgoingCalls" else "inherits"
        targets = _TYPES if kind == "inherits" else _CALLABLE
        for _, rel in store.relations_from([art.id], [kind]):
            rows, how = linker.link(rel.target, rel.hint, art, targets)
            rows = [r for r in rows if r.id != art.id]
            if how is None and kind == "calls" and rel.hint != NAME_MATCH:
                group.unresolved.append((rel.target, rel.line))
            for row in rows:
                if row.id not in found:
                    found[row.id] = (row, rel.line)
                    group.resolution[row.id] = how or "name match"
    else:
        if art.kind != "Symbol":
            return group
        kinds = {"IncomingCalls": ["calls"], "Descendants": ["inherits"], "References": ["references", "calls"]}[direction]
        targets = _TYPES if direction == "Descendants" else _CALLABLE
        edges = store.relations_to([source.id], [art.name], kinds)
        froms = store.artifacts_by_id([f for f, _ in edges])
        for from_id, rel in edges:
            caller = froms.get(from_id)
            if caller is None or caller.id == art.id or caller.id in found:
                continue
            if rel.kind == "references":
                # A reference is a name: it counts unless a same-file definition shadows it.
                if caller.file_id != art.file_id:
                    local = [
                        r
                        for r in store.artifacts_in_path(caller.source_id, caller.path)
                        if r.name == art.name and r.kind == "Symbol"
                    ]
                    if local:
                        continue
                group.resolution[caller.id] = "name match"
            else:
                rows, linked = linker.link(rel.target, rel.hint, caller, targets)
                if art.id not in {r.id for r in rows}:
                    continue
                group.resolution[caller.id] = linked or "name match"
            found[caller.id] = (caller, rel.line)
    items = sorted(found.values(), key=lambda t: (t[0].path, t[0].start_line))
    group.total = len(items)
    group.items = items[:limit]
    group.unresolved.sort(key=lambda t: (t[1], t[0]))
    return group
