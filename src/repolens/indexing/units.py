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
from collections.abc import Sequence
from typing import Protocol

from repolens.domain import CONTAINER_KINDS, ParsedFile, Section, SourceFile
from repolens.parsing import docs
from repolens.parsing.tokens import identifier_tokens, path_tokens
from repolens.storage.base import FileTokens, NewArtifact, NewFile

_HEADER_MAX_LINES = 60  # a container header longer than this is mostly member code anyway
_UNIT_MAX_LINES = 400  # index at most this much of one huge function; its head says what it is
_MIN_CHUNK_CHARS = 24  # gaps with less text than this (a closing brace, a blank run) are noise


def build_file(file: SourceFile, parsed: ParsedFile) -> NewFile:
    """The rows to store for ``file``, with their lexical tokens."""
    lines = file.text.split("\n")
    n_lines = len(lines)
    name = file.path.rsplit("/", 1)[-1]
    artifacts: list[NewArtifact] = [NewArtifact("File", "", name, file.path, "file", "", 1, n_lines, "", _file_doc(parsed))]
    used: dict[str, int] = {}
    artifacts.extend(
        NewArtifact(
            kind="Symbol",
            ident=_unique(sym.qualified_name, used),
            name=sym.name,
            qualified_name=sym.qualified_name,
            symbol_kind=sym.kind,
            parent=sym.parent or "",
            start_line=sym.start_line,
            end_line=sym.end_line,
            signature=sym.signature,
            doc=sym.doc,
        )
        for sym in parsed.symbols  # in order: _unique numbers repeated names by position
    )
    for index, section in enumerate(_chunk_sections(parsed, lines), start=1):
        artifacts.append(
            NewArtifact("Chunk", f"{index:04d}", section.title, section.title, "", "",
                        section.start_line, section.end_line, "", "")
        )  # fmt: skip
    tokens = file_tokens(file.path, lines, artifacts)
    keys = [embed_key(embedding_text_for(file.path, a, lines, artifacts)) if worth_embedding(a) else None for a in artifacts]
    return NewFile(
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
    units: list[tuple[str, str]] = []
    symbol_names: list[str] = []
    for art in artifacts:
        if art.kind == "File":
            units.append(("", ""))
            continue
        if art.kind == "Symbol":
            name_tokens, body_tokens = _symbol_tokens(art, lines, members.get(art.qualified_name, []))
            symbol_names.append(name_tokens)
        else:
            name_tokens = " ".join(identifier_tokens(art.name))
            body_tokens = " ".join(identifier_tokens("\n".join(lines[art.start_line - 1 : art.end_line])))
        units.append((name_tokens, body_tokens))
    return FileTokens(
        path=" ".join(path_tokens(path)),
        symbols=" ".join(symbol_names),
        # Each token once per file: whole-file BM25 is evidence of topic, and term counts
        # are already in the unit index; this keeps the file index a third of the size.
        body=" ".join(dict.fromkeys(identifier_tokens("\n".join(lines)))),
        units=units,
    )


def _unique(ident: str, used: dict[str, int]) -> str:
    # Overloads, getter/setter pairs and conditional definitions share a qualified name;
    # the second and later ones get a ``~N`` suffix so every identifier stays unique.
    count = used.get(ident, 0) + 1
    used[ident] = count
    return ident if count == 1 else f"{ident}~{count}"


def _symbol_tokens(art: UnitLike, lines: list[str], members: list[UnitLike]) -> tuple[str, str]:
    start, end = art.start_line, art.end_line
    if art.symbol_kind in CONTAINER_KINDS and members:
        first_member = members[0].start_line
        unit_end = max(start, min(first_member - 1, start + _HEADER_MAX_LINES - 1))
    else:
        unit_end = min(end, start + _UNIT_MAX_LINES - 1)
    body_text = "\n".join(lines[start - 1 : unit_end])
    member_names = " ".join(m.name for m in members)
    name_tokens = identifier_tokens(art.qualified_name.replace(".", " ") + " " + art.name)
    body_tokens = identifier_tokens(f"{art.signature}\n{art.doc}\n{body_text}\n{member_names}")
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
