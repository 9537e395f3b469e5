"""Where a call or a base class is defined, as far as one file's syntax shows it.

Calls used to be matched by bare name, so ``ctx.params.update()`` linked to every ``update``
in the repository. For the languages below the parser now works out, per call, *where* the
callee must be defined, from what the file itself says:

- the file's imports (``from a.b import C``, ``import {x} from './m'``, Go import paths,
  Java single-type, static and on-demand imports);
- ``self``/``cls``/``this``/``super`` and the class of the enclosing method (Go: the receiver);
- receiver types the syntax states: annotated parameters and variables, constructors assigned
  to locals (``x = Foo()``, ``const x = new Foo()``, ``x := &Foo{}``, ``var x = new Foo()``),
  typed fields of the enclosing class (``self.x = Foo()``, ``private Foo x;``, struct fields);
- same-module definitions (Go and Java: the same package, which is the same directory).

The answer is a *hint* stored with the edge and resolved against the symbol table at query
time (``retrieval/graph.py``), so an incremental re-index never leaves an edge pointing at a
deleted row. A hint is one of:

``""``
    no resolver for this language: the edge is a name match (every definition of the name).
``"?"``
    the resolver looked and the syntax does not say where the callee is (an untyped receiver,
    a builtin, a global): the call is kept, named, and linked to nothing.
``"QUAL@LOC;LOC|QUAL@LOC"``
    alternatives tried in order: the definition whose qualified name is ``QUAL`` in a file
    that one of the locators matches (see ``graph.matches``). ``f().m`` in ``QUAL`` is member
    ``m`` of the type ``f``'s signature declares it returns (``c := MakeCluster(); c.Close()``).
    Locators: ``.`` the same file, ``d:DIR`` a file directly in DIR, ``p:MOD`` a module path
    (``a/b`` matches ``a/b.py``, ``src/a/b/__init__.py``, ``a/b/index.ts``), ``g:IMPORT`` a Go
    import path (a directory it ends with). A member ``Type.m`` not found where ``Type`` lives is looked up through
    ``Type``'s base classes (their edges carry hints too).
"""

from __future__ import annotations

import posixpath
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from repolens.domain import NAME_MATCH, SAME_FILE, UNRESOLVED  # noqa: F401 - the labels this module writes

if TYPE_CHECKING:
    import tree_sitter as ts

# Bump when hints change in a way stored edges must not outlive (part of the index fingerprint).
RESOLVER_VERSION = 1
RESOLVED_LANGUAGES = frozenset({"python", "javascript", "typescript", "tsx", "go", "java"})
_TYPE_KINDS = frozenset({"class", "struct", "interface", "enum", "trait", "type"})
# Type wrappers whose argument is the type a value really has (``Optional[Foo]`` is a Foo or None).
_PY_WRAPPERS = frozenset({"Optional", "Final", "ClassVar", "Annotated", "t.Optional", "typing.Optional"})
_GENERICS = re.compile(r"[\[<].*$", re.DOTALL)
_IDENTIFIER_CHAIN = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")

_FUNCTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "lambda"}),
    "javascript": frozenset(
        {
            "function_declaration",
            "function_expression",
            "arrow_function",
            "method_definition",
            "generator_function_declaration",
        }
    ),
    "go": frozenset({"function_declaration", "method_declaration", "func_literal"}),
    "java": frozenset(
        {"method_declaration", "constructor_declaration", "lambda_expression", "compact_constructor_declaration"}
    ),
}
_CLASSES: dict[str, frozenset[str]] = {
    "python": frozenset({"class_definition"}),
    "javascript": frozenset({"class_declaration", "class", "abstract_class_declaration"}),
    "go": frozenset(),
    "java": frozenset({"class_declaration", "enum_declaration", "record_declaration", "interface_declaration"}),
}
# What holds fields besides classes: Go's struct types (``type S struct {...}``).
_FIELD_OWNERS: dict[str, frozenset[str]] = {"go": frozenset({"type_spec"})}
_FAMILY = {"typescript": "javascript", "tsx": "javascript"}
# The nodes the resolver reads declarations and imports from, found by query patterns (in C: walking
# every node from Python doubled the parse time). A type a grammar lacks is left out.
_SCANNED: dict[str, tuple[str, ...]] = {
    "python": ("typed_parameter", "typed_default_parameter", "assignment", "import_statement", "import_from_statement"),
    "javascript": (
        "required_parameter",
        "optional_parameter",
        "variable_declarator",
        "assignment_expression",
        "public_field_definition",
        "import_statement",
    ),
    "go": ("parameter_declaration", "var_spec", "short_var_declaration", "field_declaration", "import_spec"),
    "java": (
        "formal_parameter",
        "catch_formal_parameter",
        "enhanced_for_statement",
        "spread_parameter",
        "local_variable_declaration",
        "field_declaration",
        "import_declaration",
    ),
}
# The captures of ``scan_patterns``, which the parser runs in its own query: one pass over the tree for
# both (a query of the resolver's own was a second pass, a third of all the query time).
DECLARATION_CAPTURE = "resolve.declaration"  # the nodes declarations and imports are read from
SCOPE_CAPTURE = "resolve.scope"  # the function and class nodes that enclose them (see ``_Scopes``)


def _scope_kinds(family: str) -> frozenset[str]:
    """The node types the resolver asks a node's ancestors about: functions, classes, field owners."""
    return _FUNCTIONS[family] | _CLASSES[family] | _FIELD_OWNERS.get(family, frozenset())


def scan_patterns(language: str, grammar: ts.Language) -> list[str]:
    """The query patterns that capture what the resolver reads (``DECLARATION_CAPTURE``, ``SCOPE_CAPTURE``),
    each node type only where ``grammar`` has it (JavaScript has no typed parameters)."""
    import tree_sitter as ts

    family = _FAMILY.get(language, language)
    patterns = []
    for capture, kinds in ((DECLARATION_CAPTURE, _SCANNED[family]), (SCOPE_CAPTURE, sorted(_scope_kinds(family)))):
        valid = []
        for kind in kinds:
            try:
                ts.Query(grammar, f"({kind}) @{capture}")
            except ts.QueryError:  # this grammar has no such node
                continue
            valid.append(f"({kind})")
        if valid:
            patterns.append(f"[{' '.join(valid)}] @{capture}")
    return patterns


@dataclass(slots=True)
class _Scopes:
    """A file's function and class nodes (``_scope_kinds``), nested by their byte ranges.

    What the resolver asks of a node's ancestors (its enclosing functions, its class) is answered
    here from integers: walking ``node.parent`` creates a Node object per step, and doing it for
    every call and declaration was a third of the resolver's time. In a syntax tree a node whose
    range holds another's is its ancestor, so the ranges give the same answers.
    """

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    nodes: list[ts.Node] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # the innermost scope holding each one; -1: none

    @classmethod
    def of(cls, nodes: list[ts.Node]) -> _Scopes:
        # outer first among equal starts; a stable sort keeps document order for equal ranges
        ordered = sorted(nodes, key=lambda n: (n.start_byte, -n.end_byte))
        out = cls()
        stack: list[int] = []
        for index, node in enumerate(ordered):
            start, end = node.start_byte, node.end_byte
            while stack and out.ends[stack[-1]] < end:
                stack.pop()
            out.starts.append(start)
            out.ends.append(end)
            out.types.append(node.type)
            out.nodes.append(node)
            out.parents.append(stack[-1] if stack else -1)
            stack.append(index)
        return out

    def innermost(self, node: ts.Node) -> int:
        """The index of the innermost scope holding ``node``; -1 for none. The scopes holding it are
        that one and its parents, so what depends only on them can be remembered by this index."""
        start, end = node.start_byte, node.end_byte
        index = bisect_right(self.starts, start) - 1
        while index >= 0 and self.ends[index] < end:
            index = self.parents[index]
        return index

    def outward(self, index: int) -> Iterator[int]:
        """``index`` and the indexes of the scopes around it, innermost first (none for -1)."""
        while index >= 0:
            yield index
            index = self.parents[index]

    def around(self, node: ts.Node) -> Iterator[int]:
        """Indexes of the scopes holding ``node``, innermost first."""
        return self.outward(self.innermost(node))

    def key(self, index: int) -> tuple[int, int]:
        return self.starts[index], self.ends[index]


# What a variable holds, as written: a type name, or the call whose result it is (its type is
# the callee's declared result type, looked up at query time: the callee may be in another file).
Written: TypeAlias = "str | ts.Node"
_CALLS = frozenset({"call", "call_expression", "method_invocation"})
# Receivers typed through one another (``a.b().c().d()``, a local holding a call on a local...):
# past this depth the answer is a guess anyway, and recursion must stay bounded.
_MAX_CHAIN = 12


@dataclass(frozen=True, slots=True)
class Place:
    """Where a name is defined: its qualified name in a module and the locators of that module."""

    qual: str  # "" for a module itself
    where: str

    def member(self, name: str) -> Place:
        return Place(f"{self.qual}.{name}" if self.qual else name, self.where)

    def hint(self) -> str:
        return f"{self.qual}@{self.where}"


@dataclass(slots=True)
class Definition:
    """What the resolver needs of a definition the parser found in this file."""

    node: ts.Node
    name: str
    qualified: str
    kind: str
    parent_node: ts.Node | None


@dataclass(slots=True)
class Resolver:
    """Hints for the calls and base classes of one file (see the module docstring)."""

    language: str
    path: str
    root: ts.Node
    definitions: list[Definition]
    scanned: dict[str, list[ts.Node]]  # the nodes of ``scan_patterns``' captures in the file, by capture
    family: str = ""
    directory: str = ""
    imports: dict[str, Place] = field(default_factory=dict)
    wildcards: list[str] = field(default_factory=list)  # Java on-demand imports, as module paths
    _by_node: dict[tuple[int, int], Definition] = field(default_factory=dict)
    _locals: dict[tuple[int, int], dict[str, Written]] = field(default_factory=dict)
    _fields: dict[tuple[int, int], dict[str, Written]] = field(default_factory=dict)
    _named: dict[str, list[Definition]] = field(default_factory=dict)
    _qualified: dict[str, list[Definition]] = field(default_factory=dict)
    _busy: set[tuple[int, int]] = field(default_factory=set)  # receivers being typed, outermost first
    # scanned nodes by the (start, end) of their innermost enclosing function or class (the root's
    # key for the top level), and by their innermost enclosing class
    _by_scope: dict[tuple[int, int], list[ts.Node]] = field(default_factory=dict)
    _by_class: dict[tuple[int, int], list[ts.Node]] = field(default_factory=dict)
    _scopes: _Scopes = field(default_factory=_Scopes)
    _type_places: dict[str, Place | None] = field(default_factory=dict)  # ``_type_place``'s answers
    # ``_enclosing_class`` and ``_local_type``'s answers by the innermost scope of the node asked about
    _classes_at: dict[int, Definition | None] = field(default_factory=dict)
    _local_types: dict[tuple[str, int], Written | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.family = _FAMILY.get(self.language, self.language)
        self.directory = posixpath.dirname(self.path)
        self._by_node = {(d.node.start_byte, d.node.end_byte): d for d in self.definitions}
        for d in self.definitions:
            self._named.setdefault(d.name, []).append(d)
            self._qualified.setdefault(d.qualified, []).append(d)
        self._scan()
        {
            "python": self._python_imports,
            "javascript": self._js_imports,
            "go": self._go_imports,
            "java": self._java_imports,
        }[self.family]()

    # -- public -------------------------------------------------------------------------------

    def call(self, name_node: ts.Node) -> str:
        """The hint for the call whose callee name is ``name_node``."""
        places = self._call_places(name_node)
        return "|".join(p.hint() for p in places) if places else UNRESOLVED

    def inherit(self, node: ts.Node) -> str:
        """The hint for a base class or embedded type written as ``node``."""
        place = self._type_place(_text(node))
        return place.hint() if place is not None else UNRESOLVED

    def _scan(self) -> None:
        classes = _CLASSES[self.family] | _FIELD_OWNERS.get(self.family, frozenset())
        root_key = (self.root.start_byte, self.root.end_byte)
        self._scopes = scopes = _Scopes.of(self.scanned.get(SCOPE_CAPTURE, []))
        for node in self.scanned.get(DECLARATION_CAPTURE, []):
            # the innermost enclosing function or class, and the innermost enclosing class
            inner = scopes.innermost(node)
            self._by_scope.setdefault(scopes.key(inner) if inner >= 0 else root_key, []).append(node)
            klass = next((i for i in scopes.outward(inner) if scopes.types[i] in classes), -1)
            if klass >= 0:
                self._by_class.setdefault(scopes.key(klass), []).append(node)
        for bucket in (*self._by_scope.values(), *self._by_class.values()):
            bucket.sort(key=lambda n: n.start_byte)

    def _top(self, *kinds: str) -> list[ts.Node]:
        return [n for n in self._by_scope.get((self.root.start_byte, self.root.end_byte), []) if n.type in kinds]

    # -- imports ------------------------------------------------------------------------------

    def _python_imports(self) -> None:
        package = self.directory
        for node in self._top("import_statement", "import_from_statement"):
            if node.type == "import_statement":
                for item in node.named_children:
                    dotted, alias = _aliased(item)
                    module = dotted.replace(".", "/")
                    if alias:
                        self.imports[alias] = Place("", f"p:{module}")
                    else:
                        parts = dotted.split(".")
                        for i in range(1, len(parts) + 1):
                            self.imports[".".join(parts[:i])] = Place("", f"p:{'/'.join(parts[:i])}")
            elif node.type == "import_from_statement":
                module_node = node.child_by_field_name("module_name")
                if module_node is None:
                    continue
                module = _python_module(_text(module_node), package)
                for item in node.children_by_field_name("name"):
                    dotted, alias = _aliased(item)
                    local = alias or dotted
                    # `from pkg import name`: a definition in pkg, or the submodule pkg/name
                    self.imports[local] = Place(dotted, f"p:{module}")
                    self.imports.setdefault(f"{local}\0module", Place("", f"p:{module}/{dotted.replace('.', '/')}"))

    def _js_imports(self) -> None:
        for node in self._top("import_statement", "variable_declarator"):
            if node.type == "import_statement":
                source = node.child_by_field_name("source")
                module = self._js_module(_string(source))
                if module is None:
                    continue
                for clause in (c for c in node.named_children if c.type == "import_clause"):
                    for part in clause.named_children:
                        if part.type == "identifier":  # default import: usually named as defined
                            self.imports[_text(part)] = Place(_text(part), module)
                        elif part.type == "namespace_import":
                            for ident in part.named_children:
                                self.imports[_text(ident)] = Place("", module)
                        elif part.type == "named_imports":
                            for spec in part.named_children:
                                name = spec.child_by_field_name("name")
                                alias = spec.child_by_field_name("alias")
                                if name is not None:
                                    self.imports[_text(alias or name)] = Place(_text(name), module)
            elif node.type == "variable_declarator":
                value = node.child_by_field_name("value")
                target = node.child_by_field_name("name")
                if value is None or target is None or value.type != "call_expression":
                    continue
                callee = value.child_by_field_name("function")
                args = value.child_by_field_name("arguments")
                if callee is None or _text(callee) != "require" or args is None or not args.named_children:
                    continue
                module = self._js_module(_string(args.named_children[0]))
                if module is None:
                    continue
                if target.type == "identifier":  # const m = require('./m')
                    self.imports[_text(target)] = Place("", module)
                elif target.type == "object_pattern":  # const {a, b: c} = require('./m')
                    for prop in target.named_children:
                        if prop.type == "shorthand_property_identifier_pattern":
                            self.imports[_text(prop)] = Place(_text(prop), module)
                        elif prop.type == "pair_pattern":
                            key, value_node = prop.child_by_field_name("key"), prop.child_by_field_name("value")
                            if key is not None and value_node is not None:
                                self.imports[_text(value_node)] = Place(_text(key), module)

    def _js_module(self, spec: str) -> str | None:
        """Locators for an import specifier; None for a package (outside the repository)."""
        if not spec.startswith("."):
            return None
        joined = posixpath.normpath(posixpath.join(self.directory, spec))
        joined = re.sub(r"\.(m|c)?[jt]sx?$", "", joined)
        return f"p:{joined.lstrip('./') or joined}"

    def _go_imports(self) -> None:
        for node in self._top("import_spec"):
            if node.type == "import_spec":
                path_node = node.child_by_field_name("path")
                alias = node.child_by_field_name("name")
                path = _string(path_node)
                if not path:
                    continue
                local = _text(alias) if alias is not None else path.rsplit("/", 1)[-1]
                if local in ("_", "."):
                    continue
                self.imports[local] = Place("", f"g:{path}")

    def _java_imports(self) -> None:
        for node in self._top("import_declaration"):
            is_static = any(c.type == "static" for c in node.children)
            wildcard = any(c.type == "asterisk" for c in node.children)
            name_node = next((c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None)
            if name_node is None:
                continue
            parts = _text(name_node).split(".")
            if wildcard:
                if not is_static:
                    self.wildcards.append("/".join(parts))
                continue
            if is_static:  # import static a.b.C.m: m is C.m
                self.imports[parts[-1]] = Place(f"{parts[-2]}.{parts[-1]}", f"p:{'/'.join(parts[:-1])}")
            else:
                self.imports[parts[-1]] = Place(parts[-1], f"p:{'/'.join(parts)}")

    # -- calls --------------------------------------------------------------------------------

    def _call_places(self, name_node: ts.Node) -> list[Place]:
        name = _text(name_node)
        parent = name_node.parent
        if parent is None:
            return []
        parent_type = parent.type
        if parent_type in ("new_expression", "object_creation_expression") or (
            self.family == "java" and parent_type == "generic_type"
        ):
            place = self._type_place(name)
            return [place] if place is not None else []
        receiver = _receiver(parent, parent_type)
        if receiver is None:
            return self._bare_places(name, name_node)
        grand = parent.parent if parent_type == "member_expression" else None
        if grand is not None and grand.type == "new_expression":  # new ns.Foo()
            place = self._type_place(_text(parent))
            return [place] if place is not None else []
        return [p.member(name) for p in self._value_places(receiver, name_node)]

    def _bare_places(self, name: str, at: ts.Node) -> list[Place]:
        local = self._visible_definition(name, at)
        if local is not None:
            return [Place(local.qualified, SAME_FILE)]
        if self.family == "java":  # a method of this class or an outer one shadows a static import
            for index in self._scopes.around(at):
                kind = self._scopes.types[index]
                owner = self._by_node.get(self._scopes.key(index)) if kind in _CLASSES["java"] else None
                if owner is not None and f"{owner.qualified}.{name}" in self._qualified:
                    return [Place(owner.qualified, SAME_FILE).member(name)]
        imported = self.imports.get(name)
        if imported is not None and imported.qual:
            return [imported]
        if self.family == "python" and name == "cls":  # cls(...) in a classmethod constructs its class
            owner = self._enclosing_class(at)
            return [Place(owner.qualified, SAME_FILE)] if owner is not None else []
        if self.family == "go":
            return [Place(name, f"d:{self.directory}")]  # same package
        if self.family == "java":
            owner = self._enclosing_class(at)
            if owner is not None:
                return [Place(owner.qualified, SAME_FILE).member(name)]
        return []

    def _visible_definition(self, name: str, at: ts.Node) -> Definition | None:
        """A definition of ``name`` at the top of the file or in a function enclosing ``at``
        (a method is not visible by its bare name, except in Java, handled by the caller)."""
        candidates = self._named.get(name, [])
        if not candidates:
            return None
        enclosing = {self._scopes.key(index) for index in self._scopes.around(at)}
        best: Definition | None = None
        for d in candidates:
            if d.kind in ("method", "constant"):
                continue
            if d.parent_node is None:
                best = best or d
            elif (d.parent_node.start_byte, d.parent_node.end_byte) in enclosing and d.parent_node.type in _FUNCTIONS[
                self.family
            ]:
                return d
        return best

    def _value_places(self, receiver: ts.Node, at: ts.Node) -> list[Place]:
        """Where the type (or module) of the value ``receiver`` is defined."""
        key = (receiver.start_byte, receiver.end_byte)
        if key in self._busy or len(self._busy) >= _MAX_CHAIN:
            return []  # `x = x.next()`: the type of x depends on itself; `a.b().c().d()...`: too deep
        self._busy.add(key)
        try:
            return self._value_places_of(receiver, at)
        finally:
            self._busy.discard(key)

    def _value_places_of(self, receiver: ts.Node, at: ts.Node) -> list[Place]:
        kind = receiver.type
        text = _text(receiver)
        if kind in ("this", "self") or (self.family == "python" and text in ("self", "cls")):
            owner = self._enclosing_class(at)
            return [Place(owner.qualified, SAME_FILE)] if owner is not None else []
        if kind == "super" or (self.family == "python" and text.startswith("super(")):
            owner = self._enclosing_class(at)
            base = self._first_base(owner) if owner is not None else None
            place = self._type_place(base) if base else None
            return [place] if place is not None else []
        if kind in ("identifier", "field_identifier"):
            declared = self._local_type(text, at)
            if declared is not None:
                return self._written_places(declared)
            if self.family == "java":
                owner = self._enclosing_class(at)
                typed = self._field_type(owner, text) if owner is not None else None
                if typed is not None:
                    return self._written_places(typed)
            return self._name_places(text)
        if kind in ("attribute", "member_expression", "field_access", "selector_expression"):
            obj, prop = _object_and_property(receiver)
            if obj is not None and prop is not None:
                owners = self._value_places(obj, at) if obj.type not in ("identifier",) or not self._is_module(obj) else []
                for owner_place in owners:
                    typed = self._member_type(owner_place, prop)
                    if typed is not None:
                        return self._written_places(typed)
            if _IDENTIFIER_CHAIN.match(text):
                return self._name_places(text)
            return []
        if kind in ("new_expression", "object_creation_expression") or (
            kind == "call" and _looks_like_type(_text(receiver.child_by_field_name("function")))
        ):
            callee = receiver.child_by_field_name("function") or receiver.child_by_field_name("constructor")
            if callee is None:
                callee = receiver.child_by_field_name("type")
            place = self._type_place(_text(callee)) if callee is not None else None
            return [place] if place is not None else []
        if kind in _CALLS:
            return self._result_places(receiver)
        if kind == "await_expression" and receiver.named_children:
            return self._value_places(receiver.named_children[0], at)
        if kind in ("parenthesized_expression", "non_null_expression") and receiver.named_children:
            return self._value_places(receiver.named_children[0], at)
        return []

    def _written_places(self, written: Written) -> list[Place]:
        if isinstance(written, str):
            place = self._type_place(written)
            return [place] if place is not None else []
        return self._result_places(written)

    def _result_places(self, call: ts.Node) -> list[Place]:
        """Where the type of ``call``'s result is: the callee's places, marked ``()`` (the graph
        reads the callee's declared result type from its signature)."""
        if call.type == "method_invocation":
            name_node = call.child_by_field_name("name")
        else:
            callee = call.child_by_field_name("function")
            name_node = callee
            if callee is not None and callee.type in ("attribute", "member_expression", "selector_expression"):
                name_node = callee.child_by_field_name("attribute") or callee.child_by_field_name("property")
                name_node = name_node or callee.child_by_field_name("field")
        if name_node is None or name_node.type not in ("identifier", "property_identifier", "field_identifier"):
            return []
        return [Place(f"{p.qual}()", p.where) for p in self._call_places(name_node) if p.qual]

    def _is_module(self, node: ts.Node) -> bool:
        place = self.imports.get(_text(node))
        return place is not None and not place.qual

    def _name_places(self, text: str) -> list[Place]:
        """A receiver written as a (dotted) name: a module, or a type (static call)."""
        module = self.imports.get(text)
        if module is not None and not module.qual:
            return [module]
        alt = self.imports.get(f"{text}\0module")
        place = self._type_place(text)
        out = [place] if place is not None else []
        if alt is not None:
            out.append(alt)
        return out

    # -- types --------------------------------------------------------------------------------

    def _type_place(self, written: str) -> Place | None:
        """Where the type (or class, or module member) written as ``written`` is defined (remembered per
        text: a file names the same types over and over, and the answer depends only on the file)."""
        try:
            return self._type_places[written]
        except KeyError:
            place = self._type_places[written] = self._find_type_place(written)
            return place

    def _find_type_place(self, written: str) -> Place | None:
        name = _clean_type(written, self.family)
        if not name or not _IDENTIFIER_CHAIN.match(name):
            return None
        head, _, rest = name.partition(".")
        if rest:
            bound = self.imports.get(head)
            if bound is not None:
                return bound.member(rest)
            if name in self._qualified:  # Outer.Inner in this file
                return Place(name, SAME_FILE)
            if self.family == "java":  # a fully qualified name
                parts = name.split(".")
                return Place(parts[-1], f"p:{'/'.join(parts)}")
            return None
        local = self._named.get(name, [])
        for d in local:
            if d.kind in _TYPE_KINDS | {"function"} and d.parent_node is None:
                return Place(d.qualified, SAME_FILE)
        for d in local:
            if d.kind in _TYPE_KINDS:
                return Place(d.qualified, SAME_FILE)
        bound = self.imports.get(name)
        if bound is not None and not bound.qual and self.family == "javascript":
            # `const Foo = require('./foo')` used as a type: the module exports the class
            # (`module.exports = Foo`), by CommonJS convention under the name it is bound to
            return Place(name, bound.where)
        if bound is not None:
            return bound if bound.qual else None
        if self.family == "go":
            return Place(name, f"d:{self.directory}")
        if self.family == "java":
            where = [f"d:{self.directory}", *(f"p:{w}/{name}" for w in self.wildcards)]
            return Place(name, ";".join(where))
        return None

    def _enclosing_class(self, at: ts.Node) -> Definition | None:
        inner = self._scopes.innermost(at)
        try:
            return self._classes_at[inner]
        except KeyError:
            pass
        wanted = frozenset({"method_declaration"}) if self.family == "go" else _CLASSES[self.family]
        found = None
        for index in self._scopes.outward(inner):
            if self._scopes.types[index] in wanted:
                found = self._by_node.get(self._scopes.key(index))
                break
        self._classes_at[inner] = found
        return found

    def _first_base(self, owner: Definition) -> str | None:
        node = owner.node
        if self.family == "python":
            bases = node.child_by_field_name("superclasses")
            first = next((c for c in bases.named_children if c.type in ("identifier", "attribute")), None) if bases else None
            return _text(first) if first is not None else None
        for child in node.named_children:
            if child.type in ("class_heritage", "superclass"):
                for n in _walk(child):
                    if n.type in ("identifier", "type_identifier", "member_expression", "scoped_type_identifier"):
                        return _text(n)
        return None

    def _local_type(self, name: str, at: ts.Node) -> Written | None:
        """The declared or constructed type of the local ``name`` in a function enclosing ``at``
        (or at the top of the file)."""
        key = (name, self._scopes.innermost(at))
        try:
            return self._local_types[key]
        except KeyError:
            written = self._local_types[key] = self._find_local_type(name, key[1])
            return written

    def _find_local_type(self, name: str, inner: int) -> Written | None:
        functions = _FUNCTIONS[self.family]
        known = self._scopes
        scopes = [i for i in known.outward(inner) if known.types[i] in functions]
        if self.family == "go":
            # Go's receiver variable: the method's owner (a Definition's qualified name).
            for a in (known.nodes[i] for i in scopes):
                if a.type == "method_declaration":
                    receiver = a.child_by_field_name("receiver")
                    for param in receiver.named_children if receiver is not None else []:
                        if any(_text(n) == name for n in param.children_by_field_name("name")):
                            kind = param.child_by_field_name("type")
                            return _text(kind) if kind is not None else None
        for key in [*(known.key(i) for i in scopes), (self.root.start_byte, self.root.end_byte)]:
            table = self._locals.get(key)
            if table is None:
                table = self._locals[key] = self._declarations(key)
            if name in table:
                return table[name]
        return None

    def _declarations(self, scope: tuple[int, int]) -> dict[str, Written]:
        """name -> written type (or the call whose result it holds) of the locals in the function (or
        file) whose byte range is ``scope``."""
        out: dict[str, Written] = {}
        for node in self._by_scope.get(scope, []):
            self._declaration(node, out)
        return out

    def _declaration(self, node: ts.Node, out: dict[str, Written]) -> None:
        kind = node.type
        if self.family == "python":
            if kind in ("typed_parameter", "typed_default_parameter"):
                ident = node.child_by_field_name("name") or next(
                    (c for c in node.named_children if c.type == "identifier"), None
                )
                written = node.child_by_field_name("type")
                if ident is not None and written is not None:
                    out.setdefault(_text(ident), _text(written))
            elif kind == "assignment":
                left, written, right = (node.child_by_field_name(f) for f in ("left", "type", "right"))
                if left is None or left.type != "identifier":
                    return
                if written is not None:
                    out.setdefault(_text(left), _text(written))
                elif right is not None and right.type == "call":
                    callee = right.child_by_field_name("function")
                    if callee is not None and _looks_like_type(_text(callee)):
                        out.setdefault(_text(left), _text(callee))
                    else:
                        out.setdefault(_text(left), right)
        elif self.family == "javascript":
            if kind in ("required_parameter", "optional_parameter"):
                pattern, written = node.child_by_field_name("pattern"), node.child_by_field_name("type")
                if pattern is not None and pattern.type == "identifier" and written is not None:
                    out.setdefault(_text(pattern), _text(written).lstrip(": "))
            elif kind == "variable_declarator":
                ident, written, value = (node.child_by_field_name(f) for f in ("name", "type", "value"))
                if ident is None or ident.type != "identifier":
                    return
                if value is not None and value.type == "await_expression" and value.named_children:
                    value = value.named_children[0]
                if written is not None:
                    out.setdefault(_text(ident), _text(written).lstrip(": "))
                elif value is not None and value.type == "new_expression":
                    ctor = value.child_by_field_name("constructor")
                    if ctor is not None:
                        out.setdefault(_text(ident), _text(ctor))
                elif value is not None and value.type == "call_expression":
                    out.setdefault(_text(ident), value)
            elif kind == "assignment_expression":  # `join = new JoinClause()` after `let join;`
                left, value = node.child_by_field_name("left"), node.child_by_field_name("right")
                if left is not None and left.type == "identifier" and value is not None and value.type == "new_expression":
                    ctor = value.child_by_field_name("constructor")
                    if ctor is not None:
                        out.setdefault(_text(left), _text(ctor))
        elif self.family == "go":
            if kind in ("parameter_declaration", "var_spec"):
                written = node.child_by_field_name("type")
                if written is not None:
                    for ident in node.children_by_field_name("name"):
                        out.setdefault(_text(ident), _text(written))
            elif kind == "short_var_declaration":
                left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
                if left is None or right is None:
                    return
                for ident, value in zip(left.named_children, right.named_children, strict=False):
                    if value.type == "unary_expression" and value.named_children:
                        value = value.named_children[-1]
                    if value.type == "composite_literal":
                        written = value.child_by_field_name("type")
                        if written is not None:
                            out.setdefault(_text(ident), _text(written))
                    elif value.type == "call_expression":  # x, err := NewX(): the first result
                        out.setdefault(_text(ident), value)
        elif self.family == "java":
            if kind in ("formal_parameter", "catch_formal_parameter", "enhanced_for_statement", "spread_parameter"):
                written = node.child_by_field_name("type") or next(
                    (c for c in node.named_children if c.type.endswith("type") or c.type == "type_identifier"), None
                )
                ident = node.child_by_field_name("name") or next(
                    (c for c in node.named_children if c.type in ("identifier", "variable_declarator")), None
                )
                if written is not None and ident is not None:
                    out.setdefault(_text(ident.child_by_field_name("name") or ident), _text(written))
            elif kind == "local_variable_declaration":
                written = node.child_by_field_name("type")
                for declarator in node.children_by_field_name("declarator"):
                    ident, value = declarator.child_by_field_name("name"), declarator.child_by_field_name("value")
                    if ident is None or written is None:
                        continue
                    if _text(written) == "var":
                        if value is not None and value.type == "object_creation_expression":
                            ctor = value.child_by_field_name("type")
                            if ctor is not None:
                                out.setdefault(_text(ident), _text(ctor))
                        elif value is not None and value.type == "method_invocation":
                            out.setdefault(_text(ident), value)
                    else:
                        out.setdefault(_text(ident), _text(written))

    def _member_type(self, owner: Place, member: str) -> Written | None:
        """The written type of field ``member`` of the type at ``owner``, if this file defines it."""
        for d in self._qualified.get(owner.qual, []):
            if d.kind in _TYPE_KINDS and (SAME_FILE in owner.where.split(";") or self.family == "go"):
                return self._field_type(d, member)
        return None

    def _field_type(self, owner: Definition, member: str) -> Written | None:
        key = (owner.node.start_byte, owner.node.end_byte)
        table = self._fields.get(key)
        if table is None:
            table = self._fields[key] = self._class_fields(owner.node)
        return table.get(member)

    def _class_fields(self, node: ts.Node) -> dict[str, Written]:
        out: dict[str, Written] = {}
        for n in self._by_class.get((node.start_byte, node.end_byte), []):
            kind = n.type
            if self.family == "python":
                if kind == "assignment":
                    left, written, right = (n.child_by_field_name(f) for f in ("left", "type", "right"))
                    target = None
                    if left is not None and left.type == "identifier" and n.parent is not None:
                        if n.parent.parent is not None and n.parent.parent.parent == node:
                            target = _text(left)  # a class-level annotated attribute
                    elif left is not None and left.type == "attribute":
                        obj, prop = _object_and_property(left)
                        if obj is not None and prop is not None and _text(obj) == "self":
                            target = prop
                    if target is None:
                        continue
                    if written is not None:
                        out.setdefault(target, _text(written))
                    elif right is not None and right.type == "call":
                        callee = right.child_by_field_name("function")
                        if callee is not None and _looks_like_type(_text(callee)):
                            out.setdefault(target, _text(callee))
                        else:
                            out.setdefault(target, right)
                    elif right is not None and right.type == "identifier":
                        declared = self._local_type(_text(right), right)
                        if declared is not None:
                            out.setdefault(target, declared)
            elif self.family == "javascript":
                if kind == "public_field_definition":
                    ident, written, value = (n.child_by_field_name(f) for f in ("name", "type", "value"))
                    if ident is None:
                        continue
                    if written is not None:
                        out.setdefault(_text(ident), _text(written).lstrip(": "))
                    elif value is not None and value.type == "new_expression":
                        ctor = value.child_by_field_name("constructor")
                        if ctor is not None:
                            out.setdefault(_text(ident), _text(ctor))
                elif kind == "required_parameter" and any(c.type == "accessibility_modifier" for c in n.children):
                    pattern, written = n.child_by_field_name("pattern"), n.child_by_field_name("type")
                    if pattern is not None and written is not None:
                        out.setdefault(_text(pattern), _text(written).lstrip(": "))
                elif kind == "assignment_expression":
                    left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
                    if left is not None and left.type == "member_expression" and right is not None:
                        obj, prop = _object_and_property(left)
                        if obj is not None and obj.type == "this" and prop and right.type == "new_expression":
                            ctor = right.child_by_field_name("constructor")
                            if ctor is not None:
                                out.setdefault(prop, _text(ctor))
                        elif obj is not None and obj.type == "this" and prop and right.type == "identifier":
                            declared = self._local_type(_text(right), right)  # this.x = x, x a typed local
                            if declared is not None:
                                out.setdefault(prop, declared)
            elif self.family == "java":
                if kind == "field_declaration":
                    written = n.child_by_field_name("type")
                    for declarator in n.children_by_field_name("declarator"):
                        ident = declarator.child_by_field_name("name")
                        if ident is not None and written is not None:
                            out.setdefault(_text(ident), _text(written))
            elif self.family == "go" and kind == "field_declaration":
                written = n.child_by_field_name("type")
                for ident in n.children_by_field_name("name"):
                    if written is not None:
                        out.setdefault(_text(ident), _text(written))
        return out


# -- helpers ----------------------------------------------------------------------------------


def _text(node: ts.Node | None) -> str:
    raw = node.text if node is not None else None  # read once: each read copies the bytes
    return raw.decode("utf-8", errors="replace") if raw is not None else ""


def _string(node: ts.Node | None) -> str:
    return _text(node).strip().strip("\"'`")


def _walk(node: ts.Node, *, stop: frozenset[str] = frozenset(), skip_root: bool = False) -> list[ts.Node]:
    """``node`` and its named descendants, not entering nodes of a ``stop`` type (but listing them)."""
    out: list[ts.Node] = []
    stack = list(reversed(node.named_children)) if skip_root else [node]
    first = True
    while stack:
        current = stack.pop()
        out.append(current)
        descend = (first and not skip_root) or current.type not in stop
        first = False
        if descend:
            stack.extend(reversed(current.named_children))
    return out


def _aliased(item: ts.Node) -> tuple[str, str]:
    if item.type == "aliased_import":
        return _text(item.child_by_field_name("name")), _text(item.child_by_field_name("alias"))
    return _text(item), ""


def _python_module(written: str, package: str) -> str:
    """``a.b`` -> ``a/b``; ``..c`` from ``pkg/sub`` -> ``pkg/c``."""
    dots = len(written) - len(written.lstrip("."))
    rest = written[dots:].replace(".", "/")
    if not dots:
        return rest
    base = package
    for _ in range(dots - 1):
        base = posixpath.dirname(base)
    return posixpath.join(base, rest) if rest else base


def _receiver(parent: ts.Node, parent_type: str) -> ts.Node | None:
    """The object a method is called on (``a.b`` in ``a.b.m()``, given the parent of the callee's name
    ``m`` and its type), None for a bare call."""
    if parent_type in ("attribute", "member_expression", "selector_expression"):
        return _member_parts(parent)[0]
    if parent_type == "method_invocation":
        return parent.child_by_field_name("object")
    return None


_MEMBER_FIELDS = (("object", "attribute"), ("object", "property"), ("operand", "field"), ("object", "field"))


def _member_parts(node: ts.Node) -> tuple[ts.Node | None, ts.Node | None]:
    """The object and the property nodes of a member access (``a.b``), or None and None."""
    for obj_field, prop_field in _MEMBER_FIELDS:
        obj, prop = node.child_by_field_name(obj_field), node.child_by_field_name(prop_field)
        if obj is not None and prop is not None:
            return obj, prop
    return None, None


def _object_and_property(node: ts.Node) -> tuple[ts.Node | None, str | None]:
    obj, prop = _member_parts(node)
    return (obj, _text(prop)) if prop is not None else (None, None)


def _looks_like_type(written: str) -> bool:
    """A constructor call by convention: ``Foo(...)``, ``mod.Foo(...)``."""
    last = written.rsplit(".", 1)[-1]
    return bool(last) and last[0].isupper() and not last.isupper()


def _clean_type(written: str, family: str) -> str:
    text = written.strip().lstrip(":").strip().strip("\"'")
    if family == "python":
        for wrapper in _PY_WRAPPERS:
            if text.startswith(wrapper + "[") and text.endswith("]"):
                text = text[len(wrapper) + 1 : -1].split(",", 1)[0].strip().strip("\"'")
                break
        if "|" in text:
            text = next((p.strip() for p in text.split("|") if p.strip() not in ("None", "")), "")
    text = text.lstrip("*&").strip()
    if text.startswith("[]") or text.startswith("map["):
        return ""
    return _GENERICS.sub("", text).strip()
