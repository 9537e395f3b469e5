"""Symbols and relations from tree-sitter grammars, driven by one query file per language.

Matching runs in C through tree-sitter queries (``queries/<language>.scm``); Python only
assembles the captures. Capture names are the contract between a query file and this module:

``@definition.<kind>`` + ``@name``
    a symbol of ``<kind>`` (a ``SymbolKind``); ``function`` becomes ``method`` inside a
    class-like parent. Optional in the same match: ``@doc`` (a docstring node) and
    ``@receiver`` (Go-style receiver type that becomes the parent of a method; several
    ``@receiver`` captures join into a dotted path, as for C++ ``ns::Foo::bar``).
``@scope`` + ``@scope.name``
    a block that is not a symbol but names the parent of what is inside it (Rust ``impl``).
``@call`` / ``@import`` / ``@inherit`` / ``@reference``
    a relation from the innermost enclosing symbol (or the file) to the captured name.
"""

from __future__ import annotations

import importlib
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, cast

from repolens.domain import (
    CALLABLE_KINDS,
    CONTAINER_KINDS,
    DECLARATION_MARK,
    NAME_MATCH,
    PYTHON_DECLARATION_MARK,
    SYMBOL_KINDS,
    UNRESOLVED,
    ParsedFile,
    Relation,
    RelationKind,
    Symbol,
    SymbolKind,
)
from repolens.parsing import resolve

if TYPE_CHECKING:
    import tree_sitter as ts

log = logging.getLogger(__name__)

# language -> (module, function returning the grammar pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "kotlin": ("tree_sitter_kotlin", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "swift": ("tree_sitter_swift", "language"),
    "elixir": ("tree_sitter_elixir", "language"),
    "haskell": ("tree_sitter_haskell", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "zig": ("tree_sitter_zig", "language"),
    "bash": ("tree_sitter_bash", "language"),
}
# The TSX grammar shares the TypeScript query file.
QUERY_FILE: dict[str, str] = {"tsx": "typescript"}

# Nodes that wrap a definition and own its decorators or leading comments.
_WRAPPERS = frozenset({"decorated_definition", "export_statement", "annotation", "template_declaration", "type_declaration"})
# Nodes that precede the definition they annotate as siblings, between it and its comments.
_ATTRIBUTE_SIBLINGS = frozenset({"attribute_item"})
_SIGNATURE_MAX_CHARS = 240  # a signature longer than this is a wall of parameters; cut it
_DOC_MAX_CHARS = 800  # the opening of a docstring says what it is; the body holds the rest anyway
_RELATION_KINDS: dict[str, RelationKind] = {
    "call": "calls",
    "import": "imports",
    "inherit": "inherits",
    "reference": "references",
}
_BODY_FIELDS = ("body", "class_body", "block", "declaration_list", "members")
# Comment nodes whose type does not say "comment" (Haskell's `-- |` doc comments).
_COMMENT_TYPES = frozenset({"haddock"})
# Line prefixes of comments, longest first among those that share a start.
_COMMENT_MARKERS = (
    "/**",
    "/*!",
    "/*",
    "*/",
    "///",
    "//!",
    "//",
    "--[[",
    "]]",
    "---",
    "-- |",
    "-- ^",
    "--",
    "{- |",
    "{-|",
    "{-",
    "#",
    "*",
)
# The first of them a line starts with, in one regex (alternatives are tried in order, as a loop would).
_COMMENT_MARKER = re.compile("|".join(re.escape(marker) for marker in _COMMENT_MARKERS))
# XML doc comments (C#'s `/// <summary>`): the wrapping tags are markup, not text
_XML_DOC_TAG = re.compile(r"</?(?:summary|remarks|returns|value|para)>")
# Query patterns run as a regex over the source instead of by the query engine, which evaluates a text
# predicate on every node of the type, and ``identifier`` is the commonest type there is: Python's and
# JavaScript's CamelCase references (sqlalchemy: ~350k identifiers tested for ~39k references, half of
# its query time). The pattern's line stays in the query file (its contract, and its fingerprint); it is
# left out of the compiled query, and ``_text_captures`` finds the same nodes. Only a regex of ASCII
# letter and digit classes qualifies: no letter or digit follows an identifier (the lexer would have
# taken it in), so the regex's longest match from an identifier's first character is the identifier
# (tests/unit/test_text_patterns.py compares both ways on real grammars).
_TEXT_PATTERN = re.compile(r'^\(\(identifier\) @(\w+) \(#match\? @\1 "\^((?:\[[A-Za-z0-9-]+\][*+]?)+)\$"\)\)[ \t]*$', re.M)

# Declarations: callables that say what exists without implementing it. Search ranks the
# implementation first and `fetch NAME` returns it, so the parser marks declarations where the
# grammar shows them, per node type:
# - always declarations: TypeScript overload, interface and abstract signatures, Rust trait
#   items without a default body, Go interface methods, Swift protocol requirements, Haskell
#   type signatures, C++ methods declared in a class body and C/C++ prototypes;
_DECLARATION_NODES = frozenset(
    {
        "function_signature",
        "method_signature",
        "abstract_method_signature",
        "function_signature_item",
        "method_elem",
        "protocol_function_declaration",
        "signature",
        "field_declaration",
        "declaration",
    }
)
# - declarations when they have no body: Java, C# and PHP interface and abstract methods,
#   Kotlin interface funs, Scala abstract defs (these grammars use the same node for both);
_BODILESS_DECLARATION_NODES = frozenset({"method_declaration", "function_declaration"})
# ...whose body, when there is one, is one of these (a field in some grammars, a child in others);
_BODY_NODES = frozenset({"block", "function_body", "constructor_body", "arrow_expression_clause", "compound_statement"})
# - Python: a function decorated as an overload stub or an abstract method whose body only
#   documents it (docstring, ``...``, ``pass``, ``raise NotImplementedError``).
_DECLARING_DECORATORS = frozenset(
    {
        "overload",
        "abstractmethod",
        "abstractproperty",
        "abstractclassmethod",
        "abstractstaticmethod",
    }
)
_TRIVIAL_STATEMENTS = frozenset({"pass_statement", "expression_statement", "raise_statement", "comment"})


# A relation capture: its start byte, what kind, the name as written, its number among the file's
# captures (ties sort in capture order, and nodes are never compared) and its node. A plain tuple: a
# large repository has ~100k of them, and tuples sort in C without a key function.
_Event = tuple[int, str, str, int, "ts.Node"]


@dataclass(slots=True)
class _Def:
    node: ts.Node
    start: int
    end: int
    kind: str  # a SymbolKind, or "scope"
    name: str
    doc_node: ts.Node | None
    receiver: str | None
    qualified: str = ""
    parent: _Def | None = None
    outer: ts.Node | None = None  # ``_outer(node)``, found once


def queries_fingerprint() -> str:
    """A hash of every query file: stored symbols are only valid for the queries that made them."""
    import hashlib

    digest = hashlib.sha1(usedforsecurity=False)
    folder = resources.files("repolens.parsing").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".scm"):
            digest.update(entry.name.encode())
            digest.update(entry.read_bytes())
    return digest.hexdigest()[:12]


@cache
def supported(language: str | None) -> bool:
    """Whether ``language`` has a grammar and a query file."""
    if language not in GRAMMARS:
        return False
    name = QUERY_FILE.get(language, language)
    return resources.files("repolens.parsing").joinpath(f"queries/{name}.scm").is_file()


@cache
def _language(language: str) -> ts.Language:
    import tree_sitter as ts

    module_name, func = GRAMMARS[language]
    module = importlib.import_module(module_name)
    return ts.Language(getattr(module, func)())


@cache
def _queries(language: str) -> tuple[ts.Query, tuple[tuple[RelationKind, re.Pattern[bytes]], ...], int]:
    """The language's compiled query; the relation patterns it leaves to ``_text_captures`` (see
    ``_TEXT_PATTERN``), each relation's kind and its regex; and the index of its first pattern that is
    not the query file's but the resolver's (``resolve.scan_patterns``, appended: one pass over the tree
    finds both)."""
    import tree_sitter as ts

    name = QUERY_FILE.get(language, language)
    text = resources.files("repolens.parsing").joinpath(f"queries/{name}.scm").read_text("utf-8")
    by_text = tuple(
        (_RELATION_KINDS[m[1]], re.compile(m[2].encode())) for m in _TEXT_PATTERN.finditer(text) if m[1] in _RELATION_KINDS
    )
    if by_text:
        text = _TEXT_PATTERN.sub(lambda m: "" if m[1] in _RELATION_KINDS else m[0], text)
    scan = resolve.scan_patterns(language, _language(language)) if language in resolve.RESOLVED_LANGUAGES else []
    query = ts.Query(_language(language), "\n".join([text, *scan]))
    return query, by_text, query.pattern_count - len(scan)


@cache
def _parser(language: str) -> ts.Parser:
    import tree_sitter as ts

    return ts.Parser(_language(language))


def prepare(languages: Iterable[str | None]) -> None:
    """Load the grammars and compile the queries of ``languages`` now, once: processes forked after
    (the parse workers) share them instead of each compiling its own (TypeScript's and Ruby's queries
    take ~80 ms to compile)."""
    for language in set(languages):
        if language is not None and supported(language):
            _parser(language)
            _queries(language)


def parse_code(text: str, language: str, path: str = "") -> ParsedFile:
    """Extract symbols and relations from source ``text`` in ``language`` (the file at ``path``,
    relative to the source root: relative imports resolve against it).

    Raises whatever tree-sitter raises; the caller falls back to line windows.
    """
    import tree_sitter as ts

    data = text.encode("utf-8")
    tree = _parser(language).parse(data)
    query, by_text, first_scan = _queries(language)
    matches = ts.QueryCursor(query).matches(tree.root_node)
    defs: list[_Def] = []
    seen: set[tuple[int, int, str]] = set()
    events: list[_Event] = []
    scanned: dict[str, list[ts.Node]] = {}  # what the resolver reads (``resolve.scan_patterns``)
    for pattern, captures in matches:
        if pattern < first_scan:
            _collect(captures, defs, seen, events)
        else:
            for capture, nodes in captures.items():
                scanned.setdefault(capture, []).extend(nodes)
    for relation, regex in by_text:
        for node in _text_captures(tree.root_node, data, regex):
            events.append((node.start_byte, relation, _text(node), len(events), node))
    defs.sort(key=lambda d: (d.start, -d.end))
    _nest(defs)
    symbols = tuple(_symbol(d, data) for d in defs if d.kind != "scope")
    resolver = None
    if language in resolve.RESOLVED_LANGUAGES:
        definitions = [
            resolve.Definition(d.node, d.name, d.qualified, d.kind, d.parent.node if d.parent is not None else None)
            for d in defs
        ]
        resolver = resolve.Resolver(language, path, tree.root_node, definitions, scanned)
    relations = _relations(defs, events, resolver)
    return ParsedFile(symbols=symbols, relations=relations, sections=(), parser="tree-sitter")


def _collect(
    captures: dict[str, list[ts.Node]],
    defs: list[_Def],
    seen: set[tuple[int, int, str]],
    events: list[_Event],
) -> None:
    def_key = None
    for name in captures:  # a loop, not next(genexpr): this runs once per match, 100k times a repository
        if name.startswith("definition."):
            def_key = name
            break
    if def_key is not None:
        node = captures[def_key][0]
        kind = def_key.split(".", 1)[1]
        names = captures.get("name")
        if kind not in SYMBOL_KINDS or not names:
            return
        name = _text(names[0]).strip()
        if name.startswith(":") and name[1:2].isidentifier():
            name = name[1:]  # a Ruby symbol naming a method (`define_method(:name)`)
        key = (node.start_byte, node.end_byte, name)
        doc = captures.get("doc")
        if not name:
            return
        if key in seen:
            # another pattern matched the same definition; it may be the one that finds its doc
            # (Elixir's `@doc` attribute before a `def`, matched only by a longer pattern)
            if doc:
                same = (d for d in reversed(defs) if (d.node.start_byte, d.node.end_byte, d.name) == key)
                first = next((d for d in same if d.kind != "scope"), None)
                if first is not None and first.doc_node is None:
                    first.doc_node = doc[0]
            return
        seen.add(key)
        receiver = captures.get("receiver")
        outer = _outer(node)
        defs.append(
            _Def(
                node=node,
                start=outer.start_byte,
                end=node.end_byte,
                kind=kind,
                name=name,
                doc_node=doc[0] if doc else None,
                receiver=".".join(_strip_generics(_text(r)) for r in receiver) if receiver else None,
                outer=outer,
            )
        )
        return
    if "scope" in captures:
        node = captures["scope"][0]
        scope_names = captures.get("scope.name")
        if scope_names:
            key = (node.start_byte, node.end_byte, "scope")
            if key not in seen:
                seen.add(key)
                defs.append(_Def(node, node.start_byte, node.end_byte, "scope", _text(scope_names[0]), None, None))
        return
    for capture, nodes in captures.items():
        relation = _RELATION_KINDS.get(capture)
        if relation is None:
            continue
        for node in nodes:
            target = _text(node).strip().strip("\"'`<>")
            if target:
                events.append((node.start_byte, relation, target, len(events), node))


def _text_captures(root: ts.Node, data: bytes, pattern: re.Pattern[bytes]) -> Iterator[ts.Node]:
    """The ``identifier`` nodes whose whole text ``pattern`` matches (see ``_TEXT_PATTERN``).

    A match that is not exactly an identifier is passed over: past the end of the leaf it lies in (a
    comment, a string, a longer identifier: no node starts inside a leaf), else one character at a
    time, not as a whole (an identifier may start inside it: ``0xAFoo``, a number then ``Foo``, in
    broken code)."""
    pos = 0
    search = pattern.search
    while (match := search(data, pos)) is not None:
        start, end = match.span()
        smallest = node = root.named_descendant_for_byte_range(start, end)
        # an identifier may wrap another node of the same span
        while node is not None and node.type != "identifier" and node.start_byte == start and node.end_byte == end:
            node = node.parent
        if node is not None and node.type == "identifier" and node.start_byte == start and node.end_byte == end:
            yield node
            pos = end
        elif smallest is not None and smallest.child_count == 0:
            pos = max(smallest.end_byte, start + 1)
        else:
            pos = start + 1


def _nest(defs: list[_Def]) -> None:
    stack: list[_Def] = []
    for d in defs:
        while stack and stack[-1].end <= d.start:
            stack.pop()
        parent = stack[-1] if stack else None
        if d.receiver:
            # a receiver is relative to the enclosing scope (C++ `void Foo::bar()` in `namespace ns`)
            if parent is not None:
                d.receiver = f"{parent.qualified}.{d.receiver}"
            d.qualified = f"{d.receiver}.{d.name}"
            if d.kind == "function":  # a type with a scope (Ruby `class A::B`) keeps its kind
                d.kind = "method"
        elif parent is not None:
            d.parent = parent
            d.qualified = f"{parent.qualified}.{d.name}"
            if d.kind == "function" and (parent.kind in CONTAINER_KINDS or parent.kind == "scope"):
                d.kind = "method"
        else:
            d.qualified = d.name
        stack.append(d)


def _strip_generics(name: str) -> str:
    return name.split("[", 1)[0].split("<", 1)[0].lstrip("*&").strip().replace("::", ".")


def _symbol(d: _Def, data: bytes) -> Symbol:
    node = d.node
    outer = d.outer or _outer(node)
    body = _body(node)  # once: each lookup tries up to five fields
    parent_name = d.receiver or (d.parent.qualified if d.parent is not None else None)
    return Symbol(
        name=d.name,
        qualified_name=d.qualified,
        kind=cast(SymbolKind, d.kind),
        start_line=outer.start_point[0] + 1,
        end_line=_end_line(node, data),
        signature=_marked_signature(d, _signature(node, data, body), body),
        doc=_doc(d.doc_node) if d.doc_node is not None else _leading_comment(outer),
        parent=parent_name,
        body_line=body.start_point[0] + 1 if body is not None else None,
    )


def _end_line(node: ts.Node, data: bytes) -> int:
    """The 1-based last line of ``node``, not counting trailing whitespace and comments: some
    grammars end a node at the next token (Scala's indented blocks, which then also hold the
    comments before that token) or after its newline (C's ``#define``)."""
    end = node.end_byte
    inner = node
    while inner.child_count:
        last: ts.Node | None = inner.child(inner.child_count - 1)
        while last is not None and _is_comment(last):
            last = last.prev_sibling
            if last is not None:
                end = last.end_byte
        if last is None:
            break
        inner = last
    while end > node.start_byte and data[end - 1] in b" \t\r\n":
        end -= 1
    return node.end_point[0] - data.count(b"\n", end, node.end_byte) + 1


def _outer(node: ts.Node) -> ts.Node:
    """The wrapper that owns a definition's decorators and comments, if it wraps only this one.

    A grouped declaration (Go ``type ( A ...; B ... )``) wraps several definitions; then
    each definition is its own outer node, so spans and doc comments stay per member.
    """
    parent = node.parent
    if parent is None or parent.type not in _WRAPPERS:
        return node
    same = sum(1 for child in parent.named_children if child.type == node.type)
    return parent if same == 1 else node


def _body(node: ts.Node) -> ts.Node | None:
    for field in _BODY_FIELDS:
        body = node.child_by_field_name(field)
        if body is not None:
            return body
    return None


def _signature(node: ts.Node, data: bytes, body: ts.Node | None) -> str:
    end = body.start_byte if body is not None and body.start_byte > node.start_byte else node.end_byte
    raw = data[node.start_byte : end].decode("utf-8", errors="replace")
    if body is None:
        raw = raw.split("\n", 1)[0]
    sig = " ".join(raw.split()).rstrip(" {:=").rstrip()
    if len(sig) > _SIGNATURE_MAX_CHARS:
        sig = sig[: _SIGNATURE_MAX_CHARS - 1] + "…"
    return sig


def _marked_signature(d: _Def, signature: str, body: ts.Node | None) -> str:
    """The signature, ending with the declaration mark exactly when ``d`` is a declaration (``body``:
    ``_body(d.node)``)."""
    signature = signature.removesuffix(DECLARATION_MARK).rstrip()
    if d.kind not in CALLABLE_KINDS:
        return signature
    if d.node.type == "function_definition" and _python_declaration(d.node):
        return signature + PYTHON_DECLARATION_MARK
    if _declares(d.node, body):
        return signature + DECLARATION_MARK
    return signature


def _declares(node: ts.Node, body: ts.Node | None) -> bool:
    """Whether ``node`` declares without implementing (``body``: ``_body(node)``, found by the caller)."""
    node_type = node.type
    if node_type in _DECLARATION_NODES:
        return any(child.type == "function_declarator" for child in _descendants(node, 2)) or node_type not in (
            "field_declaration",
            "declaration",
        )
    if node_type in _BODILESS_DECLARATION_NODES:
        return body is None and not any(child.type in _BODY_NODES for child in node.children)
    return False


def _descendants(node: ts.Node, depth: int) -> list[ts.Node]:
    out = list(node.children)
    if depth > 1:
        for child in node.children:
            out.extend(_descendants(child, depth - 1))
    return out


def _python_declaration(node: ts.Node) -> bool:
    parent = node.parent
    if parent is None or parent.type != "decorated_definition":
        return False
    decorators = {
        _text(dec).lstrip("@").split("(", 1)[0].strip().rsplit(".", 1)[-1]
        for dec in parent.children
        if dec.type == "decorator"
    }
    if not decorators & _DECLARING_DECORATORS:
        return False
    body = node.child_by_field_name("body")
    if body is None:
        return True
    for statement in body.named_children:
        if statement.type not in _TRIVIAL_STATEMENTS:
            return False
        if statement.type == "expression_statement" and not all(
            child.type in ("string", "ellipsis") for child in statement.named_children
        ):
            return False
        if statement.type == "raise_statement" and "NotImplementedError" not in _text(statement):
            return False
    return True


def _doc(node: ts.Node) -> str:
    if _is_comment(node):
        return _comment_text([_text(node)])
    raw = _text(node)
    for quote in ('"""', "'''", '"', "'"):
        prefix_len = 0
        while prefix_len < len(raw) and raw[prefix_len] in "rRbBuUfF":
            prefix_len += 1
        body = raw[prefix_len:]
        if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
            raw = body[len(quote) : -len(quote)]
            break
    return _clean_doc(raw)


def _clean_doc(raw: str) -> str:
    import inspect

    text = inspect.cleandoc(raw).strip()
    return text[:_DOC_MAX_CHARS]


def _is_comment(node: ts.Node) -> bool:
    kind = node.type  # read once: each read makes a new string
    return "comment" in kind or kind in _COMMENT_TYPES


def _preceding(node: ts.Node, column: int) -> ts.Node | None:
    """The node just before ``node`` that may hold its doc: the previous sibling, or a comment
    that a grammar filed elsewhere (at the end of the previous sibling, as Scala's indented
    blocks do, or at the end of the parent's previous sibling, as Haskell's import list does).
    A comment found elsewhere only counts if it is not indented deeper than ``column``."""
    sibling = node.prev_sibling
    if sibling is not None and (_is_comment(sibling) or sibling.type in _ATTRIBUTE_SIBLINGS):
        return sibling
    before = sibling
    while before is None and node.parent is not None:
        node = node.parent
        before = node.prev_sibling
    last = before
    while last is not None and not _is_comment(last) and last.child_count:
        last = last.child(last.child_count - 1)
    if last is not None and _is_comment(last) and last.start_point[1] <= column:
        return last
    return sibling


def _leading_comment(node: ts.Node) -> str:
    lines: list[str] = []
    expected_row, column = node.start_point
    sibling = _preceding(node, column)
    # attributes that stand beside their item (Rust `#[derive]`) sit between it and its doc
    while sibling is not None and sibling.type in _ATTRIBUTE_SIBLINGS and sibling.end_point[0] >= expected_row - 1:
        expected_row = sibling.start_point[0]
        sibling = _preceding(sibling, column)
    while sibling is not None and _is_comment(sibling) and sibling.end_point[0] >= expected_row - 1:
        lines.insert(0, _text(sibling))
        expected_row = sibling.start_point[0]
        sibling = _preceding(sibling, column)
    return _comment_text(lines) if lines else ""


def _comment_text(blocks: list[str]) -> str:
    """The text of comment blocks without their comment markers."""
    cleaned: list[str] = []
    for block in blocks:
        for line in block.splitlines():
            stripped = line.strip()
            marker = _COMMENT_MARKER.match(stripped)
            if marker is not None:
                stripped = stripped[marker.end() :]
            for suffix in ("*/", "-}"):
                stripped = stripped.removesuffix(suffix)
            cleaned.append(_XML_DOC_TAG.sub("", stripped.strip()).strip())
    return _clean_doc("\n".join(cleaned))


def _relations(defs: list[_Def], events: list[_Event], resolver: resolve.Resolver | None) -> tuple[Relation, ...]:
    symbols = [d for d in defs if d.kind != "scope"]
    starts = [d.start for d in symbols]
    holders = _holders(symbols)
    out: dict[tuple[str | None, str, str, str], Relation] = {}
    called: set[tuple[str | None, str]] = set()
    events.sort()  # by byte, kind, name, then capture order
    for byte, kind, target, _, node in events:
        owner: _Def | None = None
        # The latest-starting symbol that contains the byte, the innermost: the last one starting
        # before it, or the nearest of the symbols around that one that still holds it.
        index = bisect_right(starts, byte) - 1
        while index >= 0:
            candidate = symbols[index]
            if byte < candidate.end:
                owner = candidate
                break
            index = holders[index]
        source = owner.qualified if owner is not None else None
        if kind == "calls" or kind == "references":
            if "." in target or "::" in target or "->" in target:  # most names are bare: nothing to cut
                target = target.rsplit(".", 1)[-1].rsplit("::", 1)[-1].rsplit("->", 1)[-1]
            if owner is not None and kind == "references" and target == owner.name:
                continue
        if kind == "references" and (source, target) in called:
            continue  # `Foo()` is already a call edge; a reference edge would repeat it
        hint = NAME_MATCH
        try:
            if resolver is not None and kind == "calls":
                hint = resolver.call(node)
            elif resolver is not None and kind == "inherits":
                hint = resolver.inherit(node)
        except RecursionError:  # a pathological nesting: the edge stays, unplaced; the file still parses
            hint = UNRESOLVED
        if kind == "calls" and hint not in (NAME_MATCH, UNRESOLVED):
            # the definition's own name, not a local alias (`from m import helper as h; h()`,
            # `cls(...)`): callers of `helper` are found by the target name
            target = hint.split("|", 1)[0].rpartition("@")[0].rsplit(".", 1)[-1] or target
        key = (source, kind, target, hint)
        if kind == "calls":
            called.add((source, target))
        if key not in out:
            line = node.start_point[0] + 1
            out[key] = Relation(source=source, kind=cast(RelationKind, kind), target=target, line=line, hint=hint)
    return tuple(out.values())


def _holders(symbols: list[_Def]) -> list[int]:
    """For each symbol (sorted by start, outer first), the index of the nearest earlier symbol whose
    span holds it; -1 for none. Spans nest like the syntax tree, so the symbols holding a byte are
    one chain of holders: a search walks it instead of every symbol before the byte."""
    holders: list[int] = []
    stack: list[int] = []
    for index, d in enumerate(symbols):
        while stack and symbols[stack[-1]].end < d.end:
            stack.pop()
        holders.append(stack[-1] if stack else -1)
        stack.append(index)
    return holders


def _text(node: ts.Node) -> str:
    raw = node.text
    return raw.decode("utf-8", errors="replace") if raw is not None else ""
