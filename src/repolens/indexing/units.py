"""From a parsed file to the artifacts that get stored and the text each one indexes.

Every file becomes one ``File`` artifact. Every symbol becomes a ``Symbol`` artifact, and is
also a *search unit*: a leaf symbol (function, method, constant) indexes its whole text, a
container (class, interface, module, ...) indexes only its header (up to its first member)
plus its members' names, so a class does not win every query that one of its methods wins.
Whatever no top-level symbol covers (module code, imports, document sections, files without
a grammar) becomes ``Chunk`` artifacts of at most a window of lines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol

from repolens.domain import CONTAINER_KINDS, IMPORTS_CHUNK, ParsedFile, Section, SourceFile, Symbol, is_declaration
from repolens.parsing import docs
from repolens.parsing.tokens import identifier_tokens, path_tokens, tokens_by_line
from repolens.storage.base import FileTokens, NewArtifact, NewFile

_HEADER_MAX_LINES = 60  # a container header longer than this is mostly member code anyway
_UNIT_MAX_LINES = 400  # index at most this much of one huge function; its head says what it is
_MIN_CHUNK_CHARS = 24  # gaps with less text than this (a closing brace, a blank run) are noise
# A chunk is import-only when at least this share of its code lines belong to import statements:
# a ``package`` line, a logger or ``__all__`` beside twenty imports does not make it code.
_IMPORT_ONLY_SHARE = 0.8
_COMMENT_LINE = re.compile(r"^\s*(#(?!include)|//|/\*|\*|--)")
# Lines that belong to an import block without holding its target (Go's `import (`, closing brackets,
# re-export lists, `package`/`namespace` headers).
_IMPORT_SCAFFOLD = re.compile(
    r"^\s*(import\s*\(|[)\]}]+[;,]?|package\s|namespace\s|export\s*(\*|\{)|module\.exports\b|__all__\b)"
)


def build_file(file: SourceFile, parsed: ParsedFile) -> NewFile:
    """The rows to store for ``file``, with their lexical tokens."""
    return build_file_and_texts(file, parsed)[0]


def build_file_and_texts(file: SourceFile, parsed: ParsedFile) -> tuple[NewFile, list[str | None]]:
    """``build_file``, and each artifact's embedding text (None for those not worth a vector): the
    texts its embed keys address, for a caller that embeds them at once."""
    lines = file.text.split("\n")
    n_lines = len(lines)
    name = file.path.rsplit("/", 1)[-1]
    artifacts: list[NewArtifact] = [NewArtifact("File", "", name, file.path, "file", "", 1, n_lines, "", _file_doc(parsed))]
    artifacts.extend(
        NewArtifact(
            kind="Symbol",
            ident=ident,
            name=sym.name,
            qualified_name=sym.qualified_name,
            symbol_kind=sym.kind,
            parent=sym.parent or "",
            start_line=sym.start_line,
            end_line=sym.end_line,
            signature=sym.signature,
            doc=sym.doc,
        )
        for sym, ident in _implementation_first(parsed.symbols, symbol_idents(file.path, parsed.symbols))
    )
    import_lines = {r.line for r in parsed.relations if r.kind == "imports"}
    for index, section in enumerate(_chunk_sections(parsed, lines), start=1):
        kind = IMPORTS_CHUNK if not parsed.sections and import_only(lines, section, import_lines) else ""
        artifacts.append(
            NewArtifact(
                "Chunk", f"{index:04d}", section.title, section.title, kind, "", section.start_line, section.end_line, "", ""
            )
        )
    tokens = file_tokens(file.path, lines, artifacts)
    texts = [embedding_text_for(file.path, a, lines, artifacts) if worth_embedding(a) else None for a in artifacts]
    keys = [None if text is None else embed_key(text) for text in texts]
    new = NewFile(
        path=file.path,
        language=file.language,
        sha=file.sha,
        size=file.size,
        n_lines=n_lines,
        parser=parsed.parser,
        content=file.text,
        tokens=tokens,
        artifacts=artifacts,
        relations=parsed.relations,
        embed_keys=keys,
    )
    return new, texts


class UnitLike(Protocol):
    """The fields of an artifact that its search unit's tokens depend on."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def qualified_name(self) -> str: ...
    @property
    def symbol_kind(self) -> str: ...
    @property
    def parent(self) -> str: ...
    @property
    def start_line(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def signature(self) -> str: ...
    @property
    def doc(self) -> str: ...


def file_tokens(path: str, lines: list[str], artifacts: Sequence[UnitLike]) -> FileTokens:
    """Every lexical token of a file and its units, as a pure function of stored data.

    The store calls this again with the stored rows to delete exactly what was inserted
    (contentless FTS5 needs the original tokens), so it must depend only on fields that
    are stored, and in a fixed order.
    """
    members: dict[str, list[UnitLike]] = {}
    for art in artifacts:
        if art.kind == "Symbol" and art.parent:
            members.setdefault(art.parent, []).append(art)
    for group in members.values():
        group.sort(key=lambda a: (a.start_line, a.name))
    lines_tokens = _LineTokens(lines)
    units: list[tuple[str, str]] = []
    symbol_names: list[str] = []
    for art in artifacts:
        if art.kind == "File":
            units.append(("", ""))
            continue
        if art.kind == "Symbol":
            name_tokens, body_tokens = _symbol_tokens(art, lines_tokens, members.get(art.qualified_name, []))
            symbol_names.append(name_tokens)
        else:
            name_tokens = " ".join(identifier_tokens(art.name))
            body_tokens = " ".join(lines_tokens.span(art.start_line - 1, art.end_line))
        units.append((name_tokens, body_tokens))
    return FileTokens(
        path=" ".join(path_tokens(path)),
        symbols=" ".join(symbol_names),
        # Each token once per file: whole-file BM25 is evidence of topic, and term counts
        # are already in the unit index; this keeps the file index a third of the size.
        body=" ".join(dict.fromkeys(lines_tokens.tokens)),
        units=units,
    )


class _LineTokens:
    """A file's tokens, tokenized once; ``span(a, b)`` is ``identifier_tokens`` of ``lines[a:b]``."""

    __slots__ = ("n_lines", "starts", "tokens")

    def __init__(self, lines: list[str]) -> None:
        self.tokens, self.starts = tokens_by_line("\n".join(lines))
        self.n_lines = len(lines)

    def span(self, start: int, stop: int) -> list[str]:
        # the same bounds as the list slice lines[start:stop] (clamped, negative from the end)
        first, last, _ = slice(start, stop).indices(self.n_lines)
        return self.tokens[self.starts[first] : self.starts[max(first, last)]]


def symbol_idents(path: str, symbols: Sequence[Symbol]) -> list[str]:
    """The identifier of each symbol, aligned with ``symbols``.

    Overloads, getter/setter pairs and conditional definitions share a qualified name; all but
    one get a ``~N`` suffix so every identifier stays unique. The bare name goes to the first
    implementation (not the ``@overload`` stubs or signatures before it), so ``fetch NAME``
    returns the code that runs; the others are numbered 2, 3, ... in source order.
    """
    groups: dict[str, list[int]] = {}
    for i, sym in enumerate(symbols):
        groups.setdefault(sym.qualified_name, []).append(i)
    idents = [""] * len(symbols)
    for name, members in groups.items():
        first = next((i for i in members if not is_declaration(path, symbols[i].kind, symbols[i].signature)), members[0])
        idents[first] = name
        rest = (i for i in members if i != first)
        for number, i in enumerate(rest, start=2):
            idents[i] = f"{name}~{number}"
    return idents


def _implementation_first(symbols: Sequence[Symbol], idents: list[str]) -> list[tuple[Symbol, str]]:
    """Symbols with their identifiers, the implementation moved before the stubs that share its name.

    The store attributes a symbol's relations (its calls, by qualified name) to the first artifact
    of that name, and they belong to the code that makes them: the implementation.
    """
    pairs = list(zip(symbols, idents, strict=True))
    first_at: dict[str, int] = {}
    for index, (sym, _) in enumerate(pairs):
        first_at.setdefault(sym.qualified_name, index)
    order = sorted(
        range(len(pairs)),
        key=lambda i: (
            first_at[pairs[i][0].qualified_name] if pairs[i][1] == pairs[i][0].qualified_name else i,
            pairs[i][1] != pairs[i][0].qualified_name,
        ),
    )
    return [pairs[i] for i in order]


def import_only(lines: list[str], section: Section, import_lines: set[int]) -> bool:
    """Whether a stretch of code only imports or re-exports names (``import_lines``: 1-based lines of
    import statements, as the parser found them; their bracketed continuations count too)."""
    code = 0
    imported = 0
    depth = 0
    for number in range(section.start_line, section.end_line + 1):
        text = lines[number - 1]
        if not text.strip() or _COMMENT_LINE.match(text):
            continue
        code += 1
        if number in import_lines or depth > 0 or _IMPORT_SCAFFOLD.match(text):
            imported += 1
            depth = max(
                0,
                depth
                + text.count("(")
                + text.count("{")
                + text.count("[")
                - text.count(")")
                - text.count("}")
                - text.count("]"),
            )
    has_import = any(section.start_line <= n <= section.end_line for n in import_lines)
    return has_import and code > 0 and imported >= _IMPORT_ONLY_SHARE * code


def _symbol_tokens(art: UnitLike, lines: _LineTokens, members: list[UnitLike]) -> tuple[str, str]:
    start, end = art.start_line, art.end_line
    if art.symbol_kind in CONTAINER_KINDS and members:
        first_member = members[0].start_line
        unit_end = max(start, min(first_member - 1, start + _HEADER_MAX_LINES - 1))
    else:
        unit_end = min(end, start + _UNIT_MAX_LINES - 1)
    member_names = " ".join(m.name for m in members)
    name_tokens = identifier_tokens(art.qualified_name.replace(".", " ") + " " + art.name)
    # the tokens of f"{signature}\n{doc}\n{body}\n{member_names}": no token spans a newline
    body_tokens = [
        *identifier_tokens(art.signature),
        *identifier_tokens(art.doc),
        *lines.span(start - 1, unit_end),
        *identifier_tokens(member_names),
    ]
    return " ".join(dict.fromkeys(name_tokens)), " ".join(body_tokens)


def _file_doc(parsed: ParsedFile) -> str:
    for sym in parsed.symbols:
        if sym.kind == "module" and sym.doc:
            return sym.doc
    return ""


def _chunk_sections(parsed: ParsedFile, lines: list[str]) -> list[Section]:
    if parsed.sections:
        sections = list(parsed.sections)
    else:
        sections = []
        covered_until = 0
        top = sorted((s for s in parsed.symbols if s.parent is None), key=lambda s: s.start_line)
        gaps: list[tuple[int, int]] = []
        for sym in top:
            if sym.start_line > covered_until + 1:
                gaps.append((covered_until + 1, sym.start_line - 1))
            covered_until = max(covered_until, sym.end_line)
        if covered_until < len(lines):
            gaps.append((covered_until + 1, len(lines)))
        for start, end in gaps:
            sections.extend(docs.line_windows(start, end))
    return [s for s in sections if len("".join(lines[s.start_line - 1 : s.end_line]).strip()) >= _MIN_CHUNK_CHARS]


EMBED_BODY_LINES = 30  # the embedder reads ~128 tokens; more lines would only be cut off


def embedding_text_for(path: str, art: UnitLike, lines: list[str], siblings: Sequence[UnitLike]) -> str:
    """The text embedded for one artifact, from stored fields only.

    A File gets a summary (its path, module doc, then each top-level symbol's name and first
    doc line): file-shaped questions ("where is X configured") match files, not functions.
    """
    if art.kind == "File":
        return file_summary(path, art.doc, siblings)
    body = "\n".join(lines[art.start_line - 1 : min(art.end_line, art.start_line + EMBED_BODY_LINES - 1)])
    return embedding_text(
        path=path, kind=art.kind, qualified_name=art.qualified_name, signature=art.signature, doc=art.doc, body=body
    )


TRIVIAL_SYMBOL_LINES = 2  # a docless one- or two-liner says nothing its name does not


def worth_embedding(art: UnitLike) -> bool:
    """Whether a vector would add meaning that the lexical index lacks.

    Not embedded: short symbols without a docstring, which their tokens find as well.
    (Skipping the module-level stretches of code files too cost 0.01 NDCG@10 on the
    benchmark, so those keep their vectors.)
    """
    if art.kind == "Symbol":
        return bool(art.doc) or art.end_line - art.start_line + 1 > TRIVIAL_SYMBOL_LINES
    return True


def file_summary(path: str, doc: str, artifacts: Sequence[UnitLike]) -> str:
    """What a file is about, in the words its authors used for its top-level symbols."""
    parts = [path]
    if doc:
        parts.append(doc.split("\n\n", 1)[0])
    for art in artifacts:
        if art.kind == "Symbol" and not art.parent:
            first = art.doc.split("\n", 1)[0] if art.doc else ""
            parts.append(f"{art.qualified_name}: {first}" if first else art.qualified_name)
        elif art.kind == "Chunk" and art.name:
            parts.append(art.name)
    return "\n".join(parts)


def embed_key(text: str) -> int:
    """Content address of an embedding text: vectors are cached by it, across files and runs."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def embedding_text(*, path: str, kind: str, qualified_name: str, signature: str, doc: str, body: str) -> str:
    """What the embedder reads for one unit: where it is, what it is, then its code."""
    head = f"{path}: {qualified_name}" if qualified_name and kind != "Chunk" else path
    parts = [head]
    if signature:
        parts.append(signature)
    if doc:
        parts.append(doc)
    parts.append(body)
    return "\n".join(parts)
