"""Request bodies and documented response shapes (pydantic only at this edge).

Response models document the OpenAPI; handlers return plain dicts built by ``views`` (no
second validation pass on the hot path). Extra fields are allowed everywhere: CodeAlive's
clients ignore what they do not know, and we add a few (``commit``, ``index``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=100_000)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors --------------------------------------------------------------------------------


class ErrorInfo(_Out):
    code: str
    message: str


class Problem(_Out):
    """RFC 9457 problem details plus ``error{code,message}``."""

    type: str
    title: str
    status: int
    detail: str
    message: str | None = None
    error: ErrorInfo
    requestId: str | None = None
    errors: dict[str, list[str]] | None = None
    candidates: list[str] | None = None


class DifyError(_Out):
    error_code: int
    error_msg: str


class CodeerError(_Out):
    """Codeer's envelope on an error: ``data`` is null and ``error_code`` non-zero."""

    data: None = None
    message: str
    error_code: int
    pagination: None = None


# -- data sources -------------------------------------------------------------------------


class JobOut(_Out):
    id: str
    state: Literal["New", "Processing", "Ready", "Failed"]
    reason: str | None = None
    phase: str
    filesDone: int | None = None
    filesTotal: int | None = None
    unitsDone: int | None = None
    unitsTotal: int | None = None
    percent: float
    attempts: int
    createdAt: str
    startedAt: str | None = None
    finishedAt: str | None = None


class VectorsOut(_Out):
    """Where a repository's vectors stand: the configured model's coverage, and every model that
    embedded some of its units (the previous embedder's, until a switch finishes re-embedding)."""

    model: str
    ready: int
    total: int
    byModel: dict[str, int]


class DataSourceOut(_Out):
    id: str
    name: str
    type: Literal["Repository", "Workspace"]
    url: str | None = None
    branch: str | None = None
    repositoryIds: list[str] | None = None
    description: str | None = None
    state: str
    stateReason: str | None = None
    job: JobOut | None = None
    vectors: VectorsOut | None = None


class DataSourceCreate(_In):
    """A repository (``url`` or ``path``) or, with ``type: Workspace``, a workspace."""

    type: Literal["Repository", "Workspace"] = "Repository"
    name: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2048)
    path: str | None = Field(default=None, max_length=4096)
    branch: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=4000)
    repositoryIds: list[str] | None = Field(default=None, alias="repositoryIds", max_length=1000)


class DataSourceUpdate(_In):
    name: str | None = Field(default=None, max_length=200)
    branch: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=4000)
    repositoryIds: list[str] | None = Field(default=None, max_length=1000)


class CreatedOut(_Out):
    dataSource: DataSourceOut
    job: JobOut | None = None


# -- search -------------------------------------------------------------------------------


class Position(_Out):
    line: int
    character: int | None = None


class Range(_Out):
    start: Position
    end: Position


class Location(_Out):
    path: str
    range: Range | None = None


class DataSourceRef(_Out):
    type: str
    id: str
    name: str


class SearchResult(_Out):
    kind: str
    identifier: str
    dataSource: DataSourceRef
    location: Location
    score: float | None = None
    description: str | None = None
    contentByteSize: int | None = None
    snippet: str | None = None
    content: str | None = None


class SearchResponse(_Out):
    results: list[SearchResult]


class SearchBody(_In):
    """``POST /api/search``: the JSON alias of ``GET /api/search``."""

    query: str = Field(min_length=1, max_length=10_000)
    datasource_ids: list[str] | None = Field(default=None, max_length=100)
    dataSourceIds: list[str] | None = Field(default=None, max_length=100)
    names: list[str] | None = Field(default=None, max_length=100)
    mode: str | None = None
    include_content: bool | None = None
    includeContent: bool | None = None
    description_detail: str | None = None
    descriptionDetail: str | None = None
    max_results: int | None = None
    maxResults: int | None = None


class GrepMatch(_Out):
    lineNumber: int
    startColumn: int
    endColumn: int
    lineText: str


class GrepResult(SearchResult):
    matchCount: int
    matches: list[GrepMatch]
    matchedByName: bool | None = None


class GrepResponse(_Out):
    results: list[GrepResult]


class ArtifactsBody(_In):
    identifiers: list[str] = Field(min_length=1, max_length=10_000)
    dataSource: str | None = Field(default=None, max_length=200)


class ArtifactOut(_Out):
    identifier: str
    found: bool
    content: str | None = None
    contentByteSize: int | None = None
    startLine: int | None = None
    relationships: dict[str, Any] | None = None


class ArtifactsResponse(_Out):
    artifacts: list[ArtifactOut]


class RelationshipsBody(_In):
    identifier: str = Field(min_length=1, max_length=4096)
    profile: str | None = Field(default="CallsOnly", max_length=50)
    maxCountPerType: int = Field(default=50, ge=1, le=1000)
    dataSource: str | None = Field(default=None, max_length=200)


class RelationItem(_Out):
    identifier: str
    filePath: str | None = None
    startLine: int | None = None
    shortSummary: str | None = None
    line: int | None = Field(None, description="The line of the edge (the call, the base class).")
    resolution: Literal["resolved", "name match"] | None = Field(
        None,
        description="How the edge was linked: `resolved` through the file's imports, self/this or a receiver "
        "type the code states; `name match` by bare name (languages without a resolver).",
    )


class UnresolvedCall(_Out):
    name: str
    line: int


class RelationGroupOut(_Out):
    relationType: str
    totalCount: int
    returnedCount: int
    truncated: bool
    items: list[RelationItem]
    unresolved: list[UnresolvedCall] = Field(
        default_factory=list, description="Outgoing calls kept by name whose definition the code does not show."
    )


class RelationshipsResponse(_Out):
    sourceIdentifier: str
    profile: str
    found: bool
    relationships: list[RelationGroupOut] | None = None
    availableRelationshipCounts: dict[str, int] | None = None


# -- dify ---------------------------------------------------------------------------------


class DifyCondition(_In):
    name: list[str] = Field(min_length=1, max_length=10)
    comparison_operator: str = Field(max_length=20)
    value: str | int | float | None = None


class DifyMetadataCondition(_In):
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[DifyCondition] = Field(default_factory=list, max_length=50)


class DifyRetrievalSetting(_In):
    top_k: int = Field(default=5, ge=1, le=100)
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)


class DifyRequest(_In):
    knowledge_id: str = Field(min_length=1, max_length=200)
    query: str = Field(min_length=1, max_length=10_000)
    retrieval_setting: DifyRetrievalSetting = Field(default_factory=DifyRetrievalSetting)
    metadata_condition: DifyMetadataCondition | None = None


class DifyRecord(_Out):
    content: str
    score: float
    title: str
    metadata: dict[str, Any] | None = None


class DifyResponse(_Out):
    records: list[DifyRecord]


# -- tools, keys, health ------------------------------------------------------------------


class ToolEnvelope(_Out):
    rendered: str
    obj: dict[str, Any]


class KeyCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    plan: str = Field(default="free", max_length=20)
    requestsPerHour: int | None = Field(default=None, ge=1, le=100_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    scopes: list[str] = Field(default_factory=list, max_length=1000)
    expiresAt: float | None = None
    admin: bool = False


class KeyOut(_Out):
    id: str
    name: str
    role: str
    plan: str
    requestsPerHour: int
    concurrency: int
    scopes: list[str]
    createdAt: str
    expiresAt: str | None = None
    revokedAt: str | None = None
    usage: dict[str, int] | None = None  # chat requests and tokens (listings only)


class KeyCreated(KeyOut):
    key: str


class Health(_Out):
    status: str
    version: str
    timestamp: str


# -- chat (CodeAlive) ----------------------------------------------------------------------


class ChatMessageIn(_In):
    role: Literal["user", "assistant", "system"] = "user"
    content: str = Field(max_length=100_000)
    messageId: str | None = None
    searchMode: str | None = None


class ChatDataSource(_In):
    id: str = Field(min_length=1, max_length=200)
    type: str | None = None


class ChatBody(_In):
    """CodeAlive's chat request (camelCase, with the guide's snake_case aliases)."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=200)
    dataSources: list[ChatDataSource] | None = Field(default=None, max_length=100)
    names: list[str] | None = Field(default=None, max_length=100)
    datasource_ids: list[str] | None = Field(default=None, max_length=100)
    stream: bool = True
    conversationId: str | None = Field(default=None, alias="conversationId", max_length=64)
    conversation_id: str | None = Field(default=None, max_length=64)
    consumerType: str | None = None
    debug: bool = False


class Citation(_Out):
    n: int
    identifier: str
    kind: str
    path: str
    startLine: int
    endLine: int
    commit: str
    dataSource: dict[str, str]


class ChatUsage(_Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(_Out):
    """Non-streaming answer: the current shape, the legacy OpenAI-like keys, and citations."""

    content: str
    conversationId: str
    messageId: str
    id: str
    choices: list[dict[str, Any]]
    citations: list[Citation]
    usage: ChatUsage
    model: str
    mode: str


class ConversationOut(_Out):
    id: str
    title: str
    dataSources: list[str]
    createdAt: str
    updatedAt: str


class ConversationList(_Out):
    conversations: list[ConversationOut]


class ConversationDetail(ConversationOut):
    messages: list[dict[str, Any]]


# -- OpenAI-compatible ---------------------------------------------------------------------


class OpenAIMessage(_In):
    role: str = Field(max_length=32)
    # A string, or OpenAI's list of content parts (only text parts are read).
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_In):
    include_usage: bool = False


class OpenAIChatBody(_In):
    model: str = Field(min_length=1, max_length=300)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=500)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    user: str | None = None


class OpenAIModel(_Out):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class OpenAIModelList(_Out):
    object: Literal["list"]
    data: list[OpenAIModel]


class OpenAIChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: ChatUsage


class OpenAIErrorInfo(_Out):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(_Out):
    """OpenAI's error body, used on the ``/v1/`` routes."""

    error: OpenAIErrorInfo
