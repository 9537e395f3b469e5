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

from repolens.domain import (
    ApiKey,
    Artifact,
    ArtifactKind,
    Conversation,
    IndexedFile,
    Job,
    KeyRole,
    Message,
    MessageRole,
    Relation,
    RelationKind,
    Source,
    Upload,
    Usage,
    User,
    WebSession,
    Workspace,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    # The whole backend's protocol lives beside the stores of the agents, chats, knowledge bases,
    # workflows, batches and evaluations (``storage/database.py``): importing them costs a search
    # from the shell ~70 ms, so it is loaded on first use (``__getattr__`` below).
    from repolens.storage.database import Database as Database


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
Tokenize = Callable[[str, list[str], Sequence[Artifact]], FileTokens]


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
    # ``content`` in its stored form (``relational.pack``) when a parse worker compressed it already: the
    # writer, which runs while the workers parse, is then spared the compression (else it packs ``content``)
    packed: bytes | None = None

    def __reduce__(self) -> tuple[Callable[..., NewFile], tuple[object, ...]]:
        """Pickled as plain tuples. The parse workers send every file they parse to the writer, and a
        frozen dataclass's own pickling (its field list read per object, each field set one by one on
        load) cost more than all the rest of the transfer: for sqlalchemy's 15k artifacts and 64k
        relations 1.9 s of CPU there and back, against 0.5 s for tuples rebuilt into objects."""
        t = self.tokens
        return (
            _new_file,
            (
                self.path,
                self.language,
                self.sha,
                self.size,
                self.n_lines,
                self.parser,
                self.content,
                (t.path, t.symbols, t.body, t.units),
                [
                    (
                        a.kind,
                        a.ident,
                        a.name,
                        a.qualified_name,
                        a.symbol_kind,
                        a.parent,
                        a.start_line,
                        a.end_line,
                        a.signature,
                        a.doc,
                    )
                    for a in self.artifacts
                ],
                tuple((r.source, r.kind, r.target, r.line, r.hint) for r in self.relations),
                self.embed_keys,
                self.packed,
            ),
        )


def _new_file(
    path: str,
    language: str | None,
    sha: str,
    size: int,
    n_lines: int,
    parser: str,
    content: str,
    tokens: tuple[str, str, str, list[tuple[str, str]]],
    artifacts: list[tuple[ArtifactKind, str, str, str, str, str, int, int, str, str]],
    relations: tuple[tuple[str | None, RelationKind, str, int, str], ...],
    embed_keys: Sequence[int | None],
    packed: bytes | None,
) -> NewFile:
    """``NewFile.__reduce__``'s inverse."""
    return NewFile(
        path,
        language,
        sha,
        size,
        n_lines,
        parser,
        content,
        FileTokens(*tokens),
        [NewArtifact(*a) for a in artifacts],
        tuple(Relation(*r) for r in relations),
        embed_keys,
        packed,
    )


class SourceCatalog(Protocol):
    """The registered sources: what may be indexed, where it lives and how far indexing got."""

    def get_source(self, name_or_id: str) -> Source | None:
        """A source by name (case-insensitive) or public id."""
        ...

    def list_sources(self) -> list[Source]:
        """All sources, by name."""
        ...

    def create_source(self, *, name: str, location: str, branch: str | None, description: str = "") -> Source:
        """Register a new source in state New."""
        ...

    def update_source(self, source_id: int, **fields: object) -> None:
        """Set columns of a source (state, commit_sha, counts, ...)."""
        ...

    def delete_source(self, source_id: int, *, tokenize: Tokenize) -> None:
        """Remove a source and everything derived from it."""
        ...


class IndexStore(Protocol):
    """What indexing wrote: files, artifacts, relations, lexical and vector data.

    Writes are transactional per call: ``replace_files`` leaves readers with either the old
    or the new state of a source. Lexical scores are "higher is better" within one answer.
    """

    def close(self) -> None:
        """Release connections."""
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

    def files(self, source_ids: Sequence[int]) -> list[IndexedFile]:
        """All files of the given sources."""
        ...

    def iter_contents(self, source_ids: Sequence[int]) -> Iterator[tuple[IndexedFile, str]]:
        """Every file of the given sources with its text."""
        ...

    def artifacts_by_id(self, ids: Sequence[int]) -> dict[int, Artifact]:
        """Artifacts by row id (missing ids are absent)."""
        ...

    def artifacts_in_path(self, source_id: int, path: str) -> list[Artifact]:
        """Every artifact of one file, in line order."""
        ...

    def artifacts_in_file_by_id(self, file_id: int) -> list[Artifact]:
        """Every artifact of one file, in insertion order."""
        ...

    def find_artifacts(self, source_ids: Sequence[int], path: str, ident: str) -> list[Artifact]:
        """Artifacts at ``path`` with ``ident`` ('' for the file itself)."""
        ...

    def symbols_named(self, names: Sequence[str], source_ids: Sequence[int]) -> list[Artifact]:
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

    def vector_models(self, source_id: int) -> list[tuple[str, int]]:
        """(model, units with a vector from it) for every model that embedded some of a source's units."""
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


class Store(SourceCatalog, IndexStore, Protocol):
    """The index with the catalog of its sources: what indexing and retrieval need."""


@runtime_checkable
class VectorMatrices(Protocol):
    """A store that keeps each source's decoded vector matrix ready to load (SQLite: memory-mapped
    files beside the database); others are decoded from ``Store.vectors`` by the searcher."""

    def vector_matrix(self, source_id: int, model: str, dim: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(artifact ids, unit-length float32 rows) of the source's vectors from ``model``."""
        ...


@runtime_checkable
class NativeVectorSearch(Protocol):
    """A store with its own nearest-neighbour index (pgvector); others are searched exactly in
    memory by the searcher, from ``Store.vectors``."""

    def nearest_units(
        self, source_ids: Sequence[int], model: str, query: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """(artifact id, cosine similarity) of the units nearest to ``query``, nearest first."""
        ...


# -- the registry: who may ask, what groups exist, what work is queued ---------------------


class KeyStore(Protocol):
    """API keys (digests only) and the install's organization."""

    def create_key(
        self,
        *,
        key_id: str,
        digest: str,
        name: str,
        role: KeyRole,
        plan: str,
        requests_per_hour: int,
        concurrency: int,
        scopes: Sequence[str],
        expires_at: float | None,
    ) -> ApiKey:
        """Store a new key."""
        ...

    def get_key(self, key_id: str) -> ApiKey | None:
        """A key by its public id (revoked ones included)."""
        ...

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key."""
        ...

    def organization(self, default_name: str) -> tuple[str, str, bool]:
        """(public id, name, created now) of the install's organization, created on first call."""
        ...


class WorkspaceStore(Protocol):
    """Named groups of sources."""

    def create_workspace(self, *, name: str, description: str, source_ids: Sequence[int]) -> Workspace:
        """A new workspace (Conflict if the name is taken)."""
        ...

    def get_workspace(self, name_or_id: str) -> Workspace | None:
        """A workspace by name (case-insensitive) or public id."""
        ...

    def list_workspaces(self) -> list[Workspace]:
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


class JobQueue(Protocol):
    """Durable background jobs. Claiming is atomic: two workers never get the same job."""

    def enqueue_job(self, *, kind: str, source_id: int) -> Job:
        """A new job in state New, or the source's unfinished job of that kind if there is one."""
        ...

    def get_job(self, job_id: str) -> Job | None:
        """A job by public id."""
        ...

    def jobs_for_source(self, source_id: int, limit: int = 20) -> list[Job]:
        """The source's jobs, newest first."""
        ...

    def claim_job(self, worker: str, *, kinds: Sequence[str] | None = None, exclude_kinds: Sequence[str] = ()) -> Job | None:
        """Atomically move the oldest New job (of ``kinds``, if given, and not of ``exclude_kinds``)
        to Processing for ``worker``."""
        ...

    def update_job(self, job_id: int, **fields: object) -> None:
        """Set state, reason, phase, done, total, percent, heartbeat_at or finished_at."""
        ...

    def requeue_stale_jobs(self, older_than: float) -> int:
        """Put Processing jobs whose heartbeat is older than ``older_than`` back to New."""
        ...


class ConversationStore(Protocol):
    """Chat conversations owned by keys, and each key's chat usage."""

    def create_conversation(self, *, key_id: str, title: str, scope: Sequence[str]) -> Conversation:
        """A new, empty conversation."""
        ...

    def get_conversation(self, public_id: str) -> Conversation | None:
        """A conversation by its public id."""
        ...

    def list_conversations(self, key_id: str, limit: int = 100) -> list[Conversation]:
        """The key's conversations, most recently updated first."""
        ...

    def delete_conversation(self, conversation_id: int) -> None:
        """Remove a conversation and its messages."""
        ...

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Give a conversation a new title."""
        ...

    def add_message(
        self, conversation_id: int, *, message_id: str, role: MessageRole, content: str, citations: str = "[]"
    ) -> None:
        """Append a turn (and touch the conversation's ``updated_at``)."""
        ...

    def messages(self, conversation_id: int) -> list[Message]:
        """Every turn of a conversation, oldest first."""
        ...

    def truncate_messages(self, conversation_id: int, keep: int) -> None:
        """Drop every message after the first ``keep`` (and what was kept about them)."""
        ...

    def record_usage(self, key_id: str, *, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one chat request and its tokens against the key."""
        ...

    def usage(self, key_id: str) -> Usage:
        """The key's chat use so far (zeros if none)."""
        ...


class SessionStore(Protocol):
    """Web UI sign-ins (the digest of each cookie's secret, never the secret)."""

    def create_session(self, *, digest: str, principal: str, csrf: str, expires_at: float) -> WebSession:
        """Store a web sign-in (and drop expired ones)."""
        ...

    def get_session(self, digest: str) -> WebSession | None:
        """A web sign-in by the digest of its cookie secret (expired ones included)."""
        ...

    def delete_session(self, digest: str) -> None:
        """Sign a web session out."""
        ...


class UserStore(Protocol):
    """Local users (password hashes only) and the install's secrets that sign their tokens."""

    def create_user(self, *, email: str, name: str, password_hash: str, role: KeyRole, scopes: Sequence[str]) -> User:
        """Store a new user (Conflict if the email is taken, whatever its case)."""
        ...

    def get_user(self, email_or_id: str) -> User | None:
        """A user by public id, else by email (case-insensitive); disabled ones included."""
        ...

    def list_users(self) -> list[User]:
        """Every user, oldest first."""
        ...

    def update_user(self, user_id: int, **fields: object) -> None:
        """Change ``password_hash``, ``name``, ``role``, ``scopes``, ``disabled_at`` or ``last_login_at``."""
        ...

    def install_secret(self, name: str) -> str:
        """A random secret of this install (the key that signs sign-in tokens), made on first
        use and shared by every replica of the database."""
        ...


class UploadStore(Protocol):
    """Files clients upload, each owned by the account that sent it."""

    def create_upload(self, *, owner: str, name: str, content_type: str, data: bytes) -> Upload:
        """Store an uploaded file."""
        ...

    def get_upload(self, public_id: str) -> Upload | None:
        """An uploaded file by its public id."""
        ...


class Registry(KeyStore, WorkspaceStore, JobQueue, ConversationStore, UserStore, UploadStore, SessionStore, Protocol):
    """Keys, users, uploads, web sessions, workspaces, jobs, conversations and usage: the control data
    beside the index."""


class IndexDatabase(Store, Registry, Protocol):
    """The index and the control data without the agents', chats', knowledge bases', workflows',
    batches' and evaluations' stores: what a search needs, scopes and names included."""


def __getattr__(name: str) -> object:
    # PEP 562: ``Database`` (storage/database.py) loads with the stores it is made of, when asked for.
    if name == "Database":
        from repolens.storage.database import Database

        return Database
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
