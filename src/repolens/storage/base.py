"""The storage seam: what indexing and retrieval need from a database.

Rows cross this seam as the small dataclasses below, never as backend row objects. Scores
returned by the lexical searches are "higher is better" and mean nothing across backends or
across calls; only their order within one answer matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from repolens.domain import ArtifactKind, Relation

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SourceRow:
    """A data source (a repository) as stored."""

    id: int
    public_id: str  # 24-hex, the id that APIs show
    name: str  # owner/repo
    location: str  # local path or git URL
    branch: str | None
    commit: str
    state: str  # New | Processing | Ready | Failed
    state_reason: str
    description: str
    created_at: float
    indexed_at: float | None
    file_count: int
    artifact_count: int


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file as stored (content included only when asked for)."""

    id: int
    source_id: int
    path: str
    language: str | None
    sha: str
    size: int
    n_lines: int
    parser: str


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """A Symbol, File or Chunk artifact as stored."""

    id: int
    source_id: int
    file_id: int
    path: str
    kind: ArtifactKind
    ident: str  # '' for files; qualified name for symbols; 'NNNN' for chunks
    name: str
    qualified_name: str
    symbol_kind: str
    parent: str
    start_line: int
    end_line: int
    signature: str
    doc: str
    language: str | None

    def identifier(self, source_name: str) -> str:
        """The public identifier ``owner/repo::path[::ident]``."""
        return f"{source_name}::{self.path}::{self.ident}" if self.ident else f"{source_name}::{self.path}"


@dataclass(frozen=True, slots=True)
class NewArtifact:
    """An artifact about to be written, with the text its search unit indexes."""

    kind: ArtifactKind
    ident: str
    name: str
    qualified_name: str
    symbol_kind: str
    parent: str
    start_line: int
    end_line: int
    signature: str
    doc: str


@dataclass(frozen=True, slots=True)
class FileTokens:
    """The lexical tokens of a file: file-level columns and one (name, body) per artifact."""

    path: str
    symbols: str
    body: str
    units: list[tuple[str, str]]  # aligned with the file's artifacts; ('', '') for the File row


# Recomputes a file's tokens from its stored path, lines and artifact rows (in stored order).
Tokenize = Callable[[str, list[str], Sequence["ArtifactRow"]], FileTokens]


@dataclass(frozen=True, slots=True)
class NewFile:
    """A parsed file about to be written."""

    path: str
    language: str | None
    sha: str
    size: int
    n_lines: int
    parser: str
    content: str
    tokens: FileTokens
    artifacts: Sequence[NewArtifact]
    relations: Sequence[Relation]
    embed_keys: Sequence[int | None]  # per artifact: content address of its embedding text


class Store(Protocol):
    """Everything persisted: sources, files, artifacts, relations, lexical and vector data."""

    def close(self) -> None:
        """Release connections."""

    # sources
    def get_source(self, name_or_id: str) -> SourceRow | None:
        """A source by name (case-insensitive) or public id."""

    def list_sources(self) -> list[SourceRow]:
        """All sources, by name."""

    def create_source(self, *, name: str, location: str, branch: str | None, description: str) -> SourceRow:
        """Register a new source in state New."""

    def update_source(self, source_id: int, **fields: object) -> None:
        """Set columns of a source (state, commit, counts, ...)."""

    def delete_source(self, source_id: int) -> None:
        """Remove a source and everything derived from it."""

    # files
    def file_hashes(self, source_id: int) -> dict[str, str]:
        """path -> content hash of every stored file of a source."""

    def replace_files(self, source_id: int, *, upserts: Iterable[NewFile], deletes: Iterable[str]) -> int:
        """Atomically write new/changed files and drop deleted ones; return files written."""

    def file_content(self, file_id: int) -> str:
        """The stored text of a file."""

    def files(self, source_ids: Sequence[int]) -> list[FileRow]:
        """All files of the given sources."""

    # artifacts and search
    def artifacts_by_id(self, ids: Sequence[int]) -> dict[int, ArtifactRow]:
        """Artifacts by row id."""

    def lexical_units(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(artifact id, score) of symbol and chunk units matching any term."""

    def lexical_files(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(file id, score) of whole files matching any term."""

    def symbols_named(self, names: Sequence[str], source_ids: Sequence[int]) -> list[ArtifactRow]:
        """Symbol artifacts whose name or qualified name is one of ``names`` (case-insensitive)."""

    def vectors(self, source_ids: Sequence[int], model: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(artifact ids, unit vectors) stored for ``model``."""
