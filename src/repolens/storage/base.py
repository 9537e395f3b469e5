"""The storage seam: what indexing and retrieval need from a database.

Rows cross this seam as the small dataclasses below, never as backend row objects. Scores
returned by the lexical searches are "higher is better" and mean nothing across backends or
across calls; only their order within one answer matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from repolens.domain import ArtifactKind, Relation
from repolens.storage.agents import AgentRegistry

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
    """Everything persisted: sources, files, artifacts, relations, lexical and vector data.

    Writes are transactional per call: ``replace_files`` leaves readers with either the old
    or the new state of a source. Lexical scores are "higher is better" within one answer.
    """

    def close(self) -> None:
        """Release connections."""
        ...

    # sources
    def get_source(self, name_or_id: str) -> SourceRow | None:
        """A source by name (case-insensitive) or public id."""
        ...

    def list_sources(self) -> list[SourceRow]:
        """All sources, by name."""
        ...

    def create_source(self, *, name: str, location: str, branch: str | None, description: str = "") -> SourceRow:
        """Register a new source in state New."""
        ...

    def update_source(self, source_id: int, **fields: object) -> None:
        """Set columns of a source (state, commit_sha, counts, ...)."""
        ...

    def delete_source(self, source_id: int, *, tokenize: Tokenize) -> None:
        """Remove a source and everything derived from it."""
        ...

    # files and artifacts
    def ensure_index_version(self, version: str) -> bool:
        """Forget every file if the index fingerprint changed; True if it did."""
        ...

    def file_hashes(self, source_id: int) -> dict[str, str]:
        """path -> content hash of every stored file of a source."""
        ...

    def replace_files(
        self, source_id: int, *, upserts: Iterable[NewFile], deletes: Iterable[str], tokenize: Tokenize
    ) -> int:
        """Write changed files and drop deleted ones in one transaction; return files written."""
        ...

    def file_content(self, file_id: int) -> str:
        """The stored text of a file."""
        ...

    def files(self, source_ids: Sequence[int]) -> list[FileRow]:
        """All files of the given sources."""
        ...

    def iter_contents(self, source_ids: Sequence[int]) -> Iterator[tuple[FileRow, str]]:
        """Every file of the given sources with its text."""
        ...

    def artifacts_by_id(self, ids: Sequence[int]) -> dict[int, ArtifactRow]:
        """Artifacts by row id (missing ids are absent)."""
        ...

    def artifacts_in_path(self, source_id: int, path: str) -> list[ArtifactRow]:
        """Every artifact of one file, in line order."""
        ...

    def artifacts_in_file_by_id(self, file_id: int) -> list[ArtifactRow]:
        """Every artifact of one file, in insertion order."""
        ...

    def find_artifacts(self, source_ids: Sequence[int], path: str, ident: str) -> list[ArtifactRow]:
        """Artifacts at ``path`` with ``ident`` ('' for the file itself)."""
        ...

    def symbols_named(self, names: Sequence[str], source_ids: Sequence[int]) -> list[ArtifactRow]:
        """Symbols whose name or qualified name is one of ``names`` (case-insensitive)."""
        ...

    # search
    def lexical_units(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(artifact id, score) of symbol and chunk units matching any term, best first."""
        ...

    def lexical_files(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(file id, score) of whole files matching any term, best first."""
        ...

    def relations_from(self, artifact_ids: Sequence[int], kinds: Sequence[str]) -> list[tuple[int, Relation]]:
        """(artifact id, edge) for edges that start in the given artifacts."""
        ...

    def relations_to(
        self, source_ids: Sequence[int], targets: Sequence[str], kinds: Sequence[str]
    ) -> list[tuple[int, Relation]]:
        """(artifact id the edge starts in, edge) for edges whose target is one of ``targets``."""
        ...

    def top_targets(self, source_id: int, kinds: Sequence[str], limit: int) -> list[tuple[str, int]]:
        """(target name, edge count) of the most referenced names in a source, most first."""
        ...

    # vectors
    def units_missing_vectors(self, source_id: int, model: str, limit: int) -> list[tuple[int, int]]:
        """(artifact id, embed key) of one unit per embedding text still lacking a vector."""
        ...

    def vector_counts(self, source_id: int, model: str) -> tuple[int, int]:
        """(units with a vector for ``model``, all embeddable units) of a source."""
        ...

    def vector_counts_cached(self, source_id: int, model: str) -> tuple[int, int]:
        """``vector_counts``, recomputed only when the database changed."""
        ...

    def put_vectors(self, model: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Store encoded vectors by embed key."""
        ...

    def vectors(self, source_ids: Sequence[int], model: str) -> tuple[npt.NDArray[np.int64], list[bytes]]:
        """(artifact ids, encoded vectors) for ``model`` of every unit in the given sources."""
        ...

    # housekeeping
    def snapshot(self) -> AbstractContextManager[None]:
        """Reads of this thread inside the block all see one committed state, whatever a
        concurrent index run commits meanwhile (a search reads ids, rows and file text in turn)."""
        ...

    def generation(self) -> tuple[int, int]:
        """Changes whenever anything commits (cache key)."""
        ...

    def compact(self) -> None:
        """Drop orphaned vectors and return freed space."""
        ...

    def size_bytes(self) -> int:
        """Bytes on disk."""
        ...


# -- the registry: who may ask, what groups exist, what work is queued ---------------------


@runtime_checkable
class NativeVectorSearch(Protocol):
    """A store with its own nearest-neighbour index (pgvector); others are searched exactly in
    memory by the searcher, from ``Store.vectors``."""

    def nearest_units(
        self, source_ids: Sequence[int], model: str, query: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """(artifact id, cosine similarity) of the units nearest to ``query``, nearest first."""
        ...


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An API key as stored: never the secret, only a digest of it."""

    id: int
    key_id: str  # the public digits of the key (``ca_<key_id>_<secret>``): listed, revoked by
    digest: str  # sha256 of the secret part
    name: str
    role: str  # admin | member
    plan: str
    requests_per_hour: int
    concurrency: int
    scopes: tuple[str, ...]  # data source public ids; empty = every data source
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class WorkspaceRow:
    """A named group of repositories."""

    id: int
    public_id: str
    name: str
    description: str
    created_at: float
    source_ids: tuple[int, ...]


JobState = str  # New | Processing | Ready | Failed


@dataclass(frozen=True, slots=True)
class JobRow:
    """A durable background job (indexing a source)."""

    id: int
    public_id: str
    source_id: int | None
    kind: str
    state: JobState
    reason: str
    phase: str
    done: int
    total: int
    percent: float
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """A chat conversation, owned by the key that started it."""

    id: int
    public_id: str  # 24-hex, CodeAlive's conversationId
    key_id: str
    title: str
    scope: tuple[str, ...]  # the data source names or ids the first message asked for
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One turn of a conversation; ``citations`` is the JSON list the answer carried."""

    message_id: str  # 24-hex
    role: str  # user | assistant
    content: str
    citations: str
    created_at: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Chat use of one key since it was created."""

    key_id: str
    chat_requests: int
    prompt_tokens: int
    completion_tokens: int


class Registry(Protocol):
    """Keys, workspaces, jobs, conversations and usage: the control data beside the index.

    Job claiming is atomic: two workers calling ``claim_job`` never get the same job.
    """

    # keys
    def create_key(
        self,
        *,
        key_id: str,
        digest: str,
        name: str,
        role: str,
        plan: str,
        requests_per_hour: int,
        concurrency: int,
        scopes: Sequence[str],
        expires_at: float | None,
    ) -> KeyRow:
        """Store a new key."""
        ...

    def get_key(self, key_id: str) -> KeyRow | None:
        """A key by its public id (revoked ones included)."""
        ...

    def list_keys(self) -> list[KeyRow]:
        """Every key, oldest first."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key."""
        ...

    def organization(self, default_name: str) -> tuple[str, str, bool]:
        """(public id, name, created now) of the install's organization, created on first call."""
        ...

    # workspaces
    def create_workspace(self, *, name: str, description: str, source_ids: Sequence[int]) -> WorkspaceRow:
        """A new workspace (Conflict if the name is taken)."""
        ...

    def get_workspace(self, name_or_id: str) -> WorkspaceRow | None:
        """A workspace by name (case-insensitive) or public id."""
        ...

    def list_workspaces(self) -> list[WorkspaceRow]:
        """All workspaces, by name."""
        ...

    def update_workspace(
        self,
        workspace_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        source_ids: Sequence[int] | None = None,
    ) -> None:
        """Change a workspace."""
        ...

    def delete_workspace(self, workspace_id: int) -> None:
        """Remove a workspace (its repositories stay)."""
        ...

    # jobs
    def enqueue_job(self, *, kind: str, source_id: int) -> JobRow:
        """A new job in state New, or the source's unfinished job of that kind if there is one."""
        ...

    def get_job(self, job_id: str) -> JobRow | None:
        """A job by public id."""
        ...

    def jobs_for_source(self, source_id: int, limit: int = 20) -> list[JobRow]:
        """The source's jobs, newest first."""
        ...

    def claim_job(self, worker: str) -> JobRow | None:
        """Atomically move the oldest New job to Processing for ``worker``."""
        ...

    def update_job(self, job_id: int, **fields: object) -> None:
        """Set state, reason, phase, done, total, percent, heartbeat_at or finished_at."""
        ...

    def requeue_stale_jobs(self, older_than: float) -> int:
        """Put Processing jobs whose heartbeat is older than ``older_than`` back to New."""
        ...

    # conversations and usage
    def create_conversation(self, *, key_id: str, title: str, scope: Sequence[str]) -> ConversationRow:
        """A new, empty conversation."""
        ...

    def get_conversation(self, public_id: str) -> ConversationRow | None:
        """A conversation by its public id."""
        ...

    def list_conversations(self, key_id: str, limit: int = 100) -> list[ConversationRow]:
        """The key's conversations, most recently updated first."""
        ...

    def delete_conversation(self, conversation_id: int) -> None:
        """Remove a conversation and its messages."""
        ...

    def add_message(self, conversation_id: int, *, message_id: str, role: str, content: str, citations: str = "[]") -> None:
        """Append a turn (and touch the conversation's ``updated_at``)."""
        ...

    def messages(self, conversation_id: int) -> list[MessageRow]:
        """Every turn of a conversation, oldest first."""
        ...

    def record_usage(self, key_id: str, *, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one chat request and its tokens against the key."""
        ...

    def usage(self, key_id: str) -> UsageRow:
        """The key's chat use so far (zeros if none)."""
        ...


class Database(Store, Registry, AgentRegistry, Protocol):
    """A backend: the index (``Store``) and the control data (``Registry``, ``AgentRegistry``) in one database."""
