"""The vocabulary of repolens: what a repository becomes once indexed.

Plain frozen dataclasses with no I/O. Every other module speaks in these terms:

* a ``SourceFile`` is a text file the walk accepted;
* parsing turns it into ``Symbol`` records and ``Relation`` edges;
* indexing turns those into ``Artifact`` rows (kinds ``Symbol``, ``File``, ``Chunk``);
* retrieval answers with ``Hit`` objects that point at artifacts.

Lines are 1-based and inclusive everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ArtifactKind = Literal["Symbol", "File", "Chunk"]
SymbolKind = Literal[
    "class",
    "function",
    "method",
    "interface",
    "struct",
    "enum",
    "trait",
    "module",
    "type",
    "constant",
]
RelationKind = Literal["calls", "references", "imports", "inherits"]
SkipReason = Literal[
    "ignored",
    "vendored",
    "too_large",
    "binary",
    "minified",
    "generated",
    "not_utf8",
    "symlink_outside",
    "unreadable",
]

SYMBOL_KINDS: tuple[SymbolKind, ...] = (
    "class",
    "function",
    "method",
    "interface",
    "struct",
    "enum",
    "trait",
    "module",
    "type",
    "constant",
)
# A local work tree with uncommitted changes is indexed as it is on disk, so the commit it
# reports is marked the way `git describe --dirty` marks it: the index is not that commit.
DIRTY_SUFFIX = "-dirty"
SHORT_COMMIT_CHARS = 12  # what people read; full ids stay in JSON
# Bounds of the result counts every surface accepts (search limit, relations per type).
MAX_RESULTS = 500
MAX_RELATIONS_PER_TYPE = 1000


def short_commit(commit: str) -> str:
    """The first characters of a commit id, keeping the modified-work-tree mark."""
    dirty = commit.endswith(DIRTY_SUFFIX)
    sha = commit.removesuffix(DIRTY_SUFFIX)[:SHORT_COMMIT_CHARS]
    return sha + DIRTY_SUFFIX if dirty and sha else sha


# Kinds whose members are indexed separately, so the container's own search unit is its header.
CONTAINER_KINDS: frozenset[str] = frozenset({"class", "interface", "struct", "enum", "trait", "module", "type"})
CALLABLE_KINDS: frozenset[str] = frozenset({"function", "method"})

# The mark a declaration's signature ends with: the form the languages themselves give a
# declaration without a body (`int f(int);`, a stub's `def f(x) -> int: ...`). Implementation
# signatures never end with it (they stop where the body starts), so it is the stored flag.
# (Here, not in the parser, so ranking reads stored symbols without importing tree-sitter.)
DECLARATION_MARK = ";"
PYTHON_DECLARATION_MARK = ": ..."
DECLARATION_FILES = (".pyi", ".d.ts")  # files that hold only declarations

# The ``symbol_kind`` of a chunk that only imports or re-exports names: it names definitions
# that live elsewhere, so search ranks it below them (retrieval/rerank.py).
IMPORTS_CHUNK = "imports"

# What a call edge's stored target hint says (parsing/resolve.py writes them, the graph reads them).
NAME_MATCH = ""  # no resolver: link every definition of the name
UNRESOLVED = "?"  # looked, found nothing the syntax vouches for: keep the name, link nothing
SAME_FILE = "."


def is_declaration(path: str, kind: str, signature: str) -> bool:
    """Whether a stored symbol declares a callable without implementing it (see the marks above)."""
    if kind not in CALLABLE_KINDS:
        return False
    return path.endswith(DECLARATION_FILES) or signature.endswith((DECLARATION_MARK, PYTHON_DECLARATION_MARK))


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A text file accepted by the walk, with its content decoded."""

    path: str  # repository-relative, '/'-separated
    text: str
    size: int  # bytes on disk
    sha: str  # content hash (hex), the key of incremental indexing
    language: str | None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file the walk refused, and why."""

    path: str
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Symbol:
    """A named definition found by the parser."""

    name: str
    qualified_name: str
    kind: SymbolKind
    start_line: int
    end_line: int
    signature: str
    doc: str
    parent: str | None  # qualified name of the enclosing symbol
    # Line where the body starts; a container's header is start_line..body_line-1.
    body_line: int | None = None


@dataclass(frozen=True, slots=True)
class Relation:
    """An edge from a symbol (or the file itself when ``source`` is None) to a name."""

    source: str | None  # qualified name of the symbol the edge starts in
    kind: RelationKind
    target: str  # the name as written (last segment for calls; module path for imports)
    line: int
    # Where the target is defined, as far as the file shows it (``parsing/resolve.py``):
    # "" a name match, "?" unresolved, else ``QUAL@LOCATORS`` alternatives.
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Section:
    """A non-symbol stretch of a file: a document section or a window of lines."""

    start_line: int
    end_line: int
    title: str = ""


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """What parsing learned about one file."""

    symbols: tuple[Symbol, ...]
    relations: tuple[Relation, ...]
    sections: tuple[Section, ...]
    parser: Literal["tree-sitter", "markdown", "rst", "lines"]
    error: str = ""  # why a grammar failed and lines were used instead


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: an artifact and why it ranked where it did."""

    identifier: str
    kind: ArtifactKind
    source: str
    path: str
    start_line: int
    end_line: int
    score: float
    name: str = ""
    symbol_kind: str = ""
    description: str = ""
    signature: str = ""
    commit: str = ""
    content: str | None = None
    byte_size: int = 0
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions a caller puts on a search; empty tuples mean no restriction."""

    sources: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # repository-relative prefixes
    extensions: tuple[str, ...] = ()  # without the dot, lower case

    def accepts(self, path: str) -> bool:
        """Whether a repository-relative path passes the path and extension filters."""
        if self.paths and not any(path.startswith(p.lstrip("/")) for p in self.paths):
            return False
        if self.extensions:
            name = path.rsplit("/", 1)[-1]
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            if ext not in self.extensions:
                return False
        return True


# -- what the stores hold -----------------------------------------------------------------
# The index and the control data as every layer above storage sees them. The backends map
# their rows onto these types (storage/relational.py, storage/registry.py) and nothing else
# crosses the storage seam.

# The lifecycle of a source and of the job that indexes it (CodeAlive's names).
State = Literal["New", "Processing", "Ready", "Failed"]
KeyRole = Literal["admin", "member"]
MessageRole = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Source:
    """A data source (a repository) as stored."""

    id: int
    public_id: str  # 24-hex, the id that APIs show
    name: str  # owner/repo
    location: str  # local path or git URL
    branch: str | None
    commit: str
    state: State
    state_reason: str
    description: str
    created_at: float
    indexed_at: float | None
    file_count: int
    artifact_count: int


@dataclass(frozen=True, slots=True)
class IndexedFile:
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
class Artifact:
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
class ApiKey:
    """An API key as stored: never the secret, only a digest of it."""

    id: int
    key_id: str  # the public digits of the key (``ca_<key_id>_<secret>``): listed, revoked by
    digest: str  # sha256 of the secret part
    name: str
    role: KeyRole
    plan: str
    requests_per_hour: int
    concurrency: int
    scopes: tuple[str, ...]  # data source public ids; empty = every data source
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class Workspace:
    """A named group of repositories."""

    id: int
    public_id: str
    name: str
    description: str
    created_at: float
    source_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Job:
    """A durable background job (indexing a source)."""

    id: int
    public_id: str
    source_id: int | None
    kind: str
    state: State
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
class Conversation:
    """A chat conversation, owned by the key that started it."""

    id: int
    public_id: str  # 24-hex, CodeAlive's conversationId
    key_id: str
    title: str
    scope: tuple[str, ...]  # the data source names or ids the first message asked for
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation; ``citations`` is the JSON list the answer carried."""

    message_id: str  # 24-hex
    role: MessageRole
    content: str
    citations: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Usage:
    """Chat use of one key since it was created."""

    key_id: str
    chat_requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class User:
    """A local user as stored: never the password, only its Argon2id hash."""

    id: int
    public_id: str  # 24-hex: what tokens and APIs name the user by
    email: str
    name: str
    password_hash: str
    role: KeyRole  # what a key's role means: an admin may manage data sources
    scopes: tuple[str, ...]  # data source public ids; empty = every data source, as a key's
    created_at: float
    disabled_at: float | None
    last_login_at: float | None


@dataclass(frozen=True, slots=True)
class Upload:
    """A file a client uploaded, owned by the account (key or person) that sent it."""

    id: int
    public_id: str
    owner: str  # the uploader's account id (``Principal.key.key_id``)
    name: str
    content_type: str
    size: int
    data: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class WebSession:
    """A web UI sign-in: ``principal`` is ``key:<key id>`` (or, once local users exist, ``user:<id>``)."""

    digest: str  # sha256 of the cookie's secret, never the secret
    principal: str
    csrf: str  # the token every form of the session carries
    created_at: float
    expires_at: float


# -- knowledge bases: uploaded files and crawled pages, indexed like any source -------------

NodeKind = Literal["folder", "file"]
# Where a file came from: uploaded over the API, or fetched by a website crawl.
FileOrigin = Literal["upload", "crawl"]
CrawlState = Literal["idle", "queued", "running", "completed", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class KnowledgeNode:
    """A knowledge base root, a folder in one, or a file in one.

    A root owns a ``Source`` (``source_id``) whose location is a folder under the data dir; its
    files sit there at ``path`` and are indexed by the ordinary pipeline. ``id`` is also the
    file's content object: an uploaded file's bytes never change, so one id names both.
    """

    id: int
    public_id: str  # a UUID, as knowledge-base clients expect
    root_id: int  # the root node's id (its own id for a root)
    parent_id: int | None
    workspace_id: int  # the workspace whose keys see it
    source_id: int  # the root's data source, shared by every node of the base
    kind: NodeKind
    name: str
    path: str  # '/'-separated, relative to the base's folder; '' for a root
    description: str
    size: int  # bytes of a file; 0 for a folder
    sha256: str  # of a file's bytes; '' for a folder
    index_sha: str  # the content key the index stores for the file (``filters.content_hash``)
    origin: FileOrigin
    origin_url: str  # the page a crawled file came from
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Faq:
    """A question a knowledge-base file answers, with the line ranges that answer it."""

    id: int
    node_id: int  # the file (its content object)
    question: str
    ranges: str  # JSON list of {start_line, start_column, end_line, end_column}
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class CrawlTarget:
    """A website crawled into a knowledge-base folder, and its latest run."""

    id: int
    folder_id: int  # the node the pages go into
    start_url: str
    config: str  # JSON object: limit, maxDepth, includePaths, excludePaths, allowSubdomains
    state: CrawlState
    runs: int  # runs so far; the latest one is the target's crawl job
    pages: int  # pages stored by the latest run
    failures: str  # JSON list of {url, status, reason} from the latest run
    created_at: float
    updated_at: float
