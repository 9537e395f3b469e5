"""Settings: one declaration per setting, read once from the environment, validated, passed around.

Each field of ``Settings`` names its environment variable, its default and its check, once:
``load_settings`` reads every field from its variable and ``settings_env`` writes every field
back, so a child process (an indexing job) gets the whole settings and no setting can be left
out of one list and not another. A frozen dataclass rather than pydantic-settings because every
CLI call reads it and the CLI must start fast (pydantic-settings costs ~157 ms to import here, more
than the whole CLI module; measured with ``python -X importtime``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from repolens.errors import InvalidInput

DEFAULT_MAX_FILE_BYTES = 1_000_000  # 1 MB: larger files are data dumps, not code to read
DEFAULT_GIT_TIMEOUT_S = 300  # a clone that takes longer than this is stuck or enormous
# The best ranking: fused NDCG@10 0.851 against 0.843 for `static`, which embeds ~50x faster and
# becomes the default when its ranking catches up (issue 16; bench/REPORT.md).
DEFAULT_EMBEDDER = "minilm"
DEFAULT_MAX_ARTIFACTS = 20  # identifiers per fetch request: CodeAlive's documented cap
DEFAULT_MAX_REPO_MB = 2_000  # a clone larger than this is refused (and deleted) rather than indexed
DEFAULT_PORT = 8000  # the port CodeAlive's own docs and clients use for a local server
DEFAULT_MCP_MAX_TOKENS = 20_000  # under Claude Code's ~25k-token ceiling per MCP tool result
# Chat: a context window every current hosted or local model offers, and room for a full answer.
DEFAULT_LLM_CONTEXT_TOKENS = 32_000
DEFAULT_LLM_ANSWER_TOKENS = 1_500
DEFAULT_LLM_TIMEOUT_S = 120  # a local model on CPU can take a minute before its first token
# Agents: one turn may call the model this many times (each step may call tools), spend this many
# tokens (prompt + completion, summed over the steps) and take this long before it is stopped and
# answers with what it has. 12 steps covers search -> fetch -> relations -> answer several times
# over; a loop that needs more is a model repeating itself.
DEFAULT_AGENT_MAX_STEPS = 12
DEFAULT_AGENT_MAX_TOKENS = 200_000
DEFAULT_AGENT_MAX_SECONDS = 300
# Headers never forwarded to an assistant's MCP servers, whatever the caller sends (CodeMie's
# FORWARDED_HEADERS_BLOCKLIST default): credentials of this server are not the MCP server's.
DEFAULT_FORWARDED_HEADERS_BLOCKLIST = (
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-internal-secret",
    "x-internal-token",
)
DEFAULT_INDEX_WORKERS = 1  # one indexing thread per server: the embedded shape needs no other process
# 0: the index run picks (``indexing.pipeline._in_workers``: two parse workers for enough source while no
# other work holds the cores, else none); 1: never a worker process; N: N workers for any run of a few files.
DEFAULT_PARSE_WORKERS = 0
DEFAULT_JOB_LEASE_S = 60  # 12 missed heartbeats (every 5 s): a dead worker, not a slow one
# A sign-in token (local users) lasts a working day; disabling the user ends it at once anyway.
DEFAULT_SESSION_TTL_S = 12 * 3600
# CodeMie's Keycloak tokens carry the user's projects in the ``applications`` claim.
DEFAULT_OIDC_PROJECT_CLAIM = "applications"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Batches: items answered at once by one job process (each is mostly waiting on the model), at most
# this many of one workspace so a big batch leaves slots to the others; a batch job hands the
# queue back after a slice so indexing jobs are not starved by a long batch (it queues its
# successor when items remain).
DEFAULT_BATCH_SLOTS = 4
DEFAULT_BATCH_WORKSPACE_SLOTS = 4
DEFAULT_BATCH_SLICE_S = 120
# Webhooks: the first retry after 1 s, doubling (with jitter) up to an hour apart, for a day: a
# receiver that is down for a deploy or a night still gets the event.
DEFAULT_WEBHOOK_RETRY_BASE_MS = 1_000
DEFAULT_WEBHOOK_RETRY_MAX_MS = 3_600_000
DEFAULT_WEBHOOK_RETRY_FOR_S = 24 * 3600
# One delivery attempt: a receiver should answer at once and do its work afterwards.
DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000


GitScheme = Literal["https", "ssh", "http"]
LLMProvider = Literal["", "openai", "anthropic"]  # "" = no model: retrieval-only answers


def _meta(env: str, minimum: int | None = 1, check: Callable[[str, Any], Any] | None = None) -> dict[str, Any]:
    return {"env": env, "minimum": minimum, "check": check}


def setting(
    env: str, default: Any, *, minimum: int | None = 1, secret: bool = False, check: Callable[[str, Any], Any] | None = None
) -> Any:
    """A settings field read from ``env``: ints below ``minimum`` and values ``check`` refuses are
    errors; a ``secret`` never shows in a repr."""
    return field(default=default, repr=not secret, metadata=_meta(env, minimum, check))


def _public_url(name: str, raw: str) -> str:
    raw = raw.strip().rstrip("/")
    if raw and not (raw.startswith(("http://", "https://")) and urlsplit(raw).hostname):
        raise InvalidInput(f"{name} must be an http(s) URL such as https://code.example.com, got {raw!r}")
    return raw


def _database_url(name: str, raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("sqlite:///"):
        return ""  # the SQLite file is the default; its path comes from REPOLENS_HOME
    if raw and not raw.startswith(POSTGRES_SCHEMES):
        raise InvalidInput(f"{name} must be a postgresql:// URL (or empty for the SQLite file), got {raw[:40]!r}")
    return raw


def _roots(name: str, paths: tuple[str, ...]) -> tuple[Path, ...]:
    out = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise InvalidInput(f"{name} entries must be absolute paths, got {raw!r}")
        out.append(path.resolve())
    return tuple(out)


def _lower(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.lower() for v in values)


def _trimmed_url(name: str, raw: str) -> str:
    return raw.strip().rstrip("/")


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "repolens"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with embedded defaults that need no setup."""

    home: Path = field(metadata=_meta("REPOLENS_HOME"))  # default: the XDG data dir, see load_settings
    max_file_bytes: int = setting("REPOLENS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)
    git_timeout_s: int = setting("REPOLENS_GIT_TIMEOUT", DEFAULT_GIT_TIMEOUT_S)
    allowed_git_schemes: tuple[GitScheme, ...] = setting("REPOLENS_GIT_SCHEMES", ("https",))
    # Private clones: sent as an Authorization header through git's environment, never in a URL.
    git_token: str = setting("REPOLENS_GIT_TOKEN", "", secret=True)
    # "static" (built-in lookup-table model), "minilm" (built-in ONNX model), "none" (lexical only), "hash" (test fake),
    # "openai:<model>" (any OpenAI-compatible /embeddings endpoint at embed_base_url).
    embedder: str = setting("REPOLENS_EMBEDDER", DEFAULT_EMBEDDER)
    embed_base_url: str = setting("REPOLENS_EMBED_BASE_URL", "")
    embed_api_key: str = setting("REPOLENS_EMBED_API_KEY", "", secret=True)
    # Server: local paths a data source may be created from over the API (none by default).
    allowed_roots: tuple[Path, ...] = setting("REPOLENS_ALLOWED_ROOTS", (), check=_roots)
    # Git hosts exempt from the private/loopback address check (e.g. an internal GitLab).
    git_allow_hosts: tuple[str, ...] = setting("REPOLENS_GIT_ALLOW_HOSTS", (), check=_lower)
    max_repo_mb: int = setting("REPOLENS_MAX_REPO_MB", DEFAULT_MAX_REPO_MB)
    max_artifacts_per_request: int = setting("REPOLENS_MAX_ARTIFACTS", DEFAULT_MAX_ARTIFACTS)
    cors_origins: tuple[str, ...] = setting("REPOLENS_CORS_ORIGINS", ())  # CORS stays off unless origins are listed
    # MCP: the output budget per tool result, and the Host/Origin values /mcp accepts besides
    # loopback (DNS rebinding protection): the public URL of this server and any extra host names.
    mcp_max_tokens: int = setting("REPOLENS_MCP_MAX_TOKENS", DEFAULT_MCP_MAX_TOKENS)
    public_url: str = setting("REPOLENS_PUBLIC_URL", "", check=_public_url)
    allowed_hosts: tuple[str, ...] = setting("REPOLENS_ALLOWED_HOSTS", (), check=_lower)
    # Chat: the answer model ("openai" = any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama,
    # LM Studio, llama.cpp; "anthropic"; "" = none, retrieval-only answers; a base URL alone
    # means "openai") and the operator's own system-prompt text, kept confidential from chat users.
    llm_provider: LLMProvider = setting("REPOLENS_LLM_PROVIDER", "")
    llm_base_url: str = setting("REPOLENS_LLM_BASE_URL", "", check=_trimmed_url)
    llm_api_key: str = setting("REPOLENS_LLM_API_KEY", "", secret=True)
    llm_model: str = setting("REPOLENS_LLM_MODEL", "")
    # More model names the same provider serves (an assistant or a turn may pick one by name);
    # the first one, REPOLENS_LLM_MODEL, is the default.
    llm_extra_models: tuple[str, ...] = setting("REPOLENS_LLM_MODELS", ())
    llm_context_tokens: int = setting("REPOLENS_LLM_CONTEXT_TOKENS", DEFAULT_LLM_CONTEXT_TOKENS)
    llm_answer_tokens: int = setting("REPOLENS_LLM_ANSWER_TOKENS", DEFAULT_LLM_ANSWER_TOKENS)
    llm_timeout_s: int = setting("REPOLENS_LLM_TIMEOUT", DEFAULT_LLM_TIMEOUT_S)
    chat_system_prompt: str = setting("REPOLENS_CHAT_SYSTEM_PROMPT", "", secret=True)
    # Agents: the budgets of one turn; the commands an assistant may start as a stdio MCP server
    # (none by default: a stdio server runs on this host with the server's rights); the headers
    # never forwarded to MCP servers with propagate_headers.
    agent_max_steps: int = setting("REPOLENS_AGENT_MAX_STEPS", DEFAULT_AGENT_MAX_STEPS)
    agent_max_tokens: int = setting("REPOLENS_AGENT_MAX_TOKENS", DEFAULT_AGENT_MAX_TOKENS)
    agent_max_seconds: int = setting("REPOLENS_AGENT_MAX_SECONDS", DEFAULT_AGENT_MAX_SECONDS)
    mcp_stdio_commands: tuple[str, ...] = setting("REPOLENS_MCP_STDIO_COMMANDS", ())
    forwarded_headers_blocklist: tuple[str, ...] = setting(
        "REPOLENS_FORWARDED_HEADERS_BLOCKLIST", DEFAULT_FORWARDED_HEADERS_BLOCKLIST, check=_lower
    )
    # Storage: "" = the SQLite file in ``home``; postgresql://... = a shared PostgreSQL + pgvector
    # (the scale-out deployment: API replicas and ``repolens worker`` processes on other hosts).
    database_url: str = setting("REPOLENS_DATABASE_URL", "", secret=True, check=_database_url)
    # Indexing threads inside ``repolens serve`` (0: this replica only serves; workers index).
    index_workers: int = setting("REPOLENS_INDEX_WORKERS", DEFAULT_INDEX_WORKERS, minimum=0)
    # Worker processes that parse the files of one index run (0: automatic, see DEFAULT_PARSE_WORKERS).
    parse_workers: int = setting("REPOLENS_PARSE_WORKERS", DEFAULT_PARSE_WORKERS, minimum=0)
    # Shared database: a job whose worker has not beaten for this long is given to another.
    job_lease_s: int = setting("REPOLENS_JOB_LEASE", DEFAULT_JOB_LEASE_S)
    # Codeer batches: item slots per job process and per workspace, the job's slice of the queue.
    batch_slots: int = setting("REPOLENS_BATCH_SLOTS", DEFAULT_BATCH_SLOTS, minimum=1)
    batch_workspace_slots: int = setting("REPOLENS_BATCH_WORKSPACE_SLOTS", DEFAULT_BATCH_WORKSPACE_SLOTS, minimum=1)
    batch_slice_s: int = setting("REPOLENS_BATCH_SLICE", DEFAULT_BATCH_SLICE_S, minimum=1)
    # Batch webhooks: hosts that may be sent plain http and may be private (the operator's own
    # receivers, loopback in tests); every other URL must be https to a public address. Retry
    # backoff (first delay, largest delay, in ms), how long an event is retried, and how long one
    # attempt may wait for the receiver's answer.
    webhook_allow_hosts: tuple[str, ...] = setting("REPOLENS_WEBHOOK_ALLOW_HOSTS", (), check=_lower)
    webhook_retry_base_ms: int = setting("REPOLENS_WEBHOOK_RETRY_BASE_MS", DEFAULT_WEBHOOK_RETRY_BASE_MS, minimum=1)
    webhook_retry_max_ms: int = setting("REPOLENS_WEBHOOK_RETRY_MAX_MS", DEFAULT_WEBHOOK_RETRY_MAX_MS, minimum=1)
    webhook_retry_for_s: int = setting("REPOLENS_WEBHOOK_RETRY_FOR", DEFAULT_WEBHOOK_RETRY_FOR_S, minimum=1)
    webhook_timeout_ms: int = setting("REPOLENS_WEBHOOK_TIMEOUT_MS", DEFAULT_WEBHOOK_TIMEOUT_MS, minimum=1)
    # People: local users' sign-in tokens, and OIDC (Keycloak) bearer JWTs when an issuer is set.
    session_ttl_s: int = setting("REPOLENS_SESSION_TTL", DEFAULT_SESSION_TTL_S)
    oidc_issuer: str = setting("REPOLENS_OIDC_ISSUER", "", check=_trimmed_url)  # "" = OIDC off
    oidc_audience: str = setting("REPOLENS_OIDC_AUDIENCE", "")  # "" = the audience is not checked
    # Where the issuer's signing keys are; "" = the jwks_uri of its OpenID discovery document.
    oidc_jwks_url: str = setting("REPOLENS_OIDC_JWKS_URL", "", check=_trimmed_url)
    oidc_project_claim: str = setting("REPOLENS_OIDC_PROJECT_CLAIM", DEFAULT_OIDC_PROJECT_CLAIM)
    # The claim's project names that mean this install's organization; () = the organization's name.
    oidc_projects: tuple[str, ...] = setting("REPOLENS_OIDC_PROJECTS", ())
    # CodeMie SDK's ``Authorization: dev-codemie-user`` as an admin: for local development only.
    codemie_dev_auth: bool = setting("REPOLENS_CODEMIE_DEV_AUTH", False)

    @property
    def llm_models(self) -> tuple[str, ...]:
        """Every model name a turn may use, the default first (none without a provider)."""
        if not self.llm_provider:
            return ()
        return tuple(dict.fromkeys(m for m in (self.llm_model, *self.llm_extra_models) if m))

    @property
    def uses_postgres(self) -> bool:
        """True when the index lives in a shared PostgreSQL database."""
        return self.database_url.startswith(POSTGRES_SCHEMES)

    @property
    def db_path(self) -> Path:
        """The SQLite file holding every index of this install."""
        return self.home / "repolens.db"

    @property
    def clones_dir(self) -> Path:
        """Where remote repositories are cloned."""
        return self.home / "clones"


def _parse(name: str, raw: str, kind: Any, minimum: int | None) -> Any:
    """``raw`` (an environment value) as the field's type; choices of a Literal are checked."""
    origin = get_origin(kind)
    if origin is tuple:
        item = get_args(kind)[0]
        return tuple(_parse(name, part.strip(), item, minimum) for part in raw.split(",") if part.strip())
    if origin is Literal:
        value = raw.strip().lower()
        if value not in get_args(kind):
            allowed = " or ".join(repr(c) for c in get_args(kind) if c)
            raise InvalidInput(f"{name} must be {allowed}, got {raw!r}")
        return value
    if kind is int:
        try:
            number = int(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and number < minimum:
            raise InvalidInput(f"{name} must be {'positive' if minimum == 1 else f'at least {minimum}'}, got {number}")
        return number
    if kind is bool:
        value = raw.strip().lower()
        if value not in _TRUE + _FALSE:
            raise InvalidInput(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")
        return value in _TRUE
    if kind is Path:
        return Path(raw).expanduser()
    return raw


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _unparse(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(_unparse(v) for v in value)
    return str(value)


def load_settings(home: Path | None = None) -> Settings:
    """Build settings from the ``REPOLENS_*`` environment variables their fields name."""
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env = f.metadata["env"]
        raw = os.environ.get(env, "")
        if f.name == "home":
            values["home"] = home or (Path(raw.strip()).expanduser() if raw.strip() else _default_home())
            continue
        value = _parse(env, raw, hints[f.name], f.metadata["minimum"]) if raw.strip() else f.default
        check = f.metadata["check"]
        values[f.name] = check(env, value) if check is not None else value
    if not values["llm_provider"] and values["llm_base_url"]:
        values["llm_provider"] = "openai"  # a base URL alone means an OpenAI-compatible server
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``REPOLENS_*`` variables that make ``load_settings()`` rebuild ``settings`` whole (for
    child processes such as indexing jobs): every field, from the same declaration."""
    return {f.metadata["env"]: _unparse(getattr(settings, f.name)) for f in fields(Settings)}
