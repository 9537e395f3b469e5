"""Settings: read once from the environment, validated, then passed around.

A frozen dataclass rather than pydantic-settings because every CLI call reads it and the
CLI must start fast (pydantic-settings alone costs ~150 ms to import here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from repolens.errors import InvalidInput

DEFAULT_MAX_FILE_BYTES = 1_000_000  # 1 MB: larger files are data dumps, not code to read
DEFAULT_GIT_TIMEOUT_S = 300  # a clone that takes longer than this is stuck or enormous
DEFAULT_EMBEDDER = "minilm"  # measured best default; see bench/REPORT.md
DEFAULT_MAX_ARTIFACTS = 20  # identifiers per fetch request: CodeAlive's documented cap
DEFAULT_MAX_REPO_MB = 2_000  # a clone larger than this is refused (and deleted) rather than indexed
DEFAULT_PORT = 8000  # the port CodeAlive's own docs and clients use for a local server
DEFAULT_MCP_MAX_TOKENS = 20_000  # under Claude Code's ~25k-token ceiling per MCP tool result
# Chat: a context window every current hosted or local model offers, and room for a full answer.
DEFAULT_LLM_CONTEXT_TOKENS = 32_000
DEFAULT_LLM_ANSWER_TOKENS = 1_500
DEFAULT_LLM_TIMEOUT_S = 120  # a local model on CPU can take a minute before its first token
DEFAULT_INDEX_WORKERS = 1  # one indexing thread per server: the embedded shape needs no other process
DEFAULT_JOB_LEASE_S = 60  # 12 missed heartbeats (every 5 s): a dead worker, not a slow one
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
LLM_PROVIDERS = ("", "openai", "anthropic")  # "" = no model: retrieval-only answers


def _env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise InvalidInput(f"{name} must be {'positive' if minimum == 1 else f'at least {minimum}'}, got {value}")
    return value


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_roots(name: str) -> tuple[Path, ...]:
    roots = []
    for raw in _env_list(name):
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise InvalidInput(f"{name} entries must be absolute paths, got {raw!r}")
        roots.append(path.resolve())
    return tuple(roots)


def _public_url(raw: str) -> str:
    raw = raw.strip().rstrip("/")
    if raw and not (raw.startswith(("http://", "https://")) and urlsplit(raw).hostname):
        raise InvalidInput(f"REPOLENS_PUBLIC_URL must be an http(s) URL such as https://code.example.com, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with embedded defaults that need no setup."""

    home: Path
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    git_timeout_s: int = DEFAULT_GIT_TIMEOUT_S
    allowed_git_schemes: tuple[str, ...] = ("https",)
    # "minilm" (built-in ONNX model), "none" (lexical only), "hash" (test fake),
    # "openai:<model>" (any OpenAI-compatible /embeddings endpoint at embed_base_url).
    embedder: str = DEFAULT_EMBEDDER
    embed_base_url: str = ""
    embed_api_key: str = field(default="", repr=False)
    # Server: local paths a data source may be created from over the API (none by default).
    allowed_roots: tuple[Path, ...] = ()
    # Git hosts exempt from the private/loopback address check (e.g. an internal GitLab).
    git_allow_hosts: tuple[str, ...] = ()
    max_repo_mb: int = DEFAULT_MAX_REPO_MB
    max_artifacts_per_request: int = DEFAULT_MAX_ARTIFACTS
    cors_origins: tuple[str, ...] = ()  # CORS stays off unless origins are listed
    # MCP: the output budget per tool result, and the Host/Origin values /mcp accepts besides
    # loopback (DNS rebinding protection): the public URL of this server and any extra host names.
    mcp_max_tokens: int = DEFAULT_MCP_MAX_TOKENS
    public_url: str = ""
    allowed_hosts: tuple[str, ...] = ()
    # Chat: the answer model ("openai" = any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama,
    # LM Studio, llama.cpp; "anthropic"; "" = none, retrieval-only answers) and the operator's
    # own system-prompt text, which is kept confidential from chat users.
    llm_provider: str = ""
    llm_base_url: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_model: str = ""
    llm_context_tokens: int = DEFAULT_LLM_CONTEXT_TOKENS
    llm_answer_tokens: int = DEFAULT_LLM_ANSWER_TOKENS
    llm_timeout_s: int = DEFAULT_LLM_TIMEOUT_S
    chat_system_prompt: str = field(default="", repr=False)
    # Storage: "" = the SQLite file in ``home``; postgresql://... = a shared PostgreSQL + pgvector
    # (the scale-out deployment: API replicas and ``repolens worker`` processes on other hosts).
    database_url: str = field(default="", repr=False)
    # Indexing threads inside ``repolens serve`` (0: this replica only serves; workers index).
    index_workers: int = DEFAULT_INDEX_WORKERS
    # Shared database: a job whose worker has not beaten for this long is given to another.
    job_lease_s: int = DEFAULT_JOB_LEASE_S

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


def _database_url(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("sqlite:///"):
        return ""  # the SQLite file is the default; its path comes from REPOLENS_HOME
    if raw and not raw.startswith(POSTGRES_SCHEMES):
        raise InvalidInput(
            f"REPOLENS_DATABASE_URL must be a postgresql:// URL (or empty for the SQLite file), got {raw[:40]!r}"
        )
    return raw


def load_settings(home: Path | None = None) -> Settings:
    """Build settings from ``REPOLENS_*`` environment variables."""
    if home is None:
        raw_home = os.environ.get("REPOLENS_HOME")
        if raw_home:
            home = Path(raw_home).expanduser()
        else:
            xdg = os.environ.get("XDG_DATA_HOME")
            base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
            home = base / "repolens"
    schemes = _env_list("REPOLENS_GIT_SCHEMES") or ("https",)
    bad = [s for s in schemes if s not in {"https", "ssh", "http"}]
    if bad:
        raise InvalidInput(f"REPOLENS_GIT_SCHEMES may hold https, ssh or http, not {bad!r}")
    provider = os.environ.get("REPOLENS_LLM_PROVIDER", "").strip().lower()
    if not provider and os.environ.get("REPOLENS_LLM_BASE_URL"):
        provider = "openai"  # a base URL alone means an OpenAI-compatible server
    if provider not in LLM_PROVIDERS:
        raise InvalidInput(f"REPOLENS_LLM_PROVIDER must be openai or anthropic (or empty), got {provider!r}")
    return Settings(
        home=home,
        max_file_bytes=_env_int("REPOLENS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
        git_timeout_s=_env_int("REPOLENS_GIT_TIMEOUT", DEFAULT_GIT_TIMEOUT_S),
        allowed_git_schemes=schemes,
        embedder=os.environ.get("REPOLENS_EMBEDDER", DEFAULT_EMBEDDER) or DEFAULT_EMBEDDER,
        embed_base_url=os.environ.get("REPOLENS_EMBED_BASE_URL", ""),
        embed_api_key=os.environ.get("REPOLENS_EMBED_API_KEY", ""),
        allowed_roots=_env_roots("REPOLENS_ALLOWED_ROOTS"),
        git_allow_hosts=tuple(h.lower() for h in _env_list("REPOLENS_GIT_ALLOW_HOSTS")),
        max_repo_mb=_env_int("REPOLENS_MAX_REPO_MB", DEFAULT_MAX_REPO_MB),
        max_artifacts_per_request=_env_int("REPOLENS_MAX_ARTIFACTS", DEFAULT_MAX_ARTIFACTS),
        cors_origins=_env_list("REPOLENS_CORS_ORIGINS"),
        mcp_max_tokens=_env_int("REPOLENS_MCP_MAX_TOKENS", DEFAULT_MCP_MAX_TOKENS),
        public_url=_public_url(os.environ.get("REPOLENS_PUBLIC_URL", "")),
        allowed_hosts=tuple(h.lower() for h in _env_list("REPOLENS_ALLOWED_HOSTS")),
        llm_provider=provider,
        llm_base_url=os.environ.get("REPOLENS_LLM_BASE_URL", "").strip().rstrip("/"),
        llm_api_key=os.environ.get("REPOLENS_LLM_API_KEY", ""),
        llm_model=os.environ.get("REPOLENS_LLM_MODEL", "").strip(),
        llm_context_tokens=_env_int("REPOLENS_LLM_CONTEXT_TOKENS", DEFAULT_LLM_CONTEXT_TOKENS),
        llm_answer_tokens=_env_int("REPOLENS_LLM_ANSWER_TOKENS", DEFAULT_LLM_ANSWER_TOKENS),
        llm_timeout_s=_env_int("REPOLENS_LLM_TIMEOUT", DEFAULT_LLM_TIMEOUT_S),
        chat_system_prompt=os.environ.get("REPOLENS_CHAT_SYSTEM_PROMPT", ""),
        database_url=_database_url(os.environ.get("REPOLENS_DATABASE_URL", "")),
        index_workers=_env_int("REPOLENS_INDEX_WORKERS", DEFAULT_INDEX_WORKERS, minimum=0),
        job_lease_s=_env_int("REPOLENS_JOB_LEASE", DEFAULT_JOB_LEASE_S),
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``REPOLENS_*`` variables that make ``load_settings()`` rebuild ``settings`` (for
    child processes such as indexing jobs)."""
    return {
        "REPOLENS_HOME": str(settings.home),
        "REPOLENS_MAX_FILE_BYTES": str(settings.max_file_bytes),
        "REPOLENS_GIT_TIMEOUT": str(settings.git_timeout_s),
        "REPOLENS_GIT_SCHEMES": ",".join(settings.allowed_git_schemes),
        "REPOLENS_EMBEDDER": settings.embedder,
        "REPOLENS_EMBED_BASE_URL": settings.embed_base_url,
        "REPOLENS_EMBED_API_KEY": settings.embed_api_key,
        "REPOLENS_ALLOWED_ROOTS": ",".join(str(p) for p in settings.allowed_roots),
        "REPOLENS_GIT_ALLOW_HOSTS": ",".join(settings.git_allow_hosts),
        "REPOLENS_MAX_REPO_MB": str(settings.max_repo_mb),
        "REPOLENS_MAX_ARTIFACTS": str(settings.max_artifacts_per_request),
        "REPOLENS_CORS_ORIGINS": ",".join(settings.cors_origins),
        "REPOLENS_MCP_MAX_TOKENS": str(settings.mcp_max_tokens),
        "REPOLENS_PUBLIC_URL": settings.public_url,
        "REPOLENS_ALLOWED_HOSTS": ",".join(settings.allowed_hosts),
        "REPOLENS_LLM_PROVIDER": settings.llm_provider,
        "REPOLENS_LLM_BASE_URL": settings.llm_base_url,
        "REPOLENS_LLM_API_KEY": settings.llm_api_key,
        "REPOLENS_LLM_MODEL": settings.llm_model,
        "REPOLENS_LLM_CONTEXT_TOKENS": str(settings.llm_context_tokens),
        "REPOLENS_LLM_ANSWER_TOKENS": str(settings.llm_answer_tokens),
        "REPOLENS_LLM_TIMEOUT": str(settings.llm_timeout_s),
        "REPOLENS_CHAT_SYSTEM_PROMPT": settings.chat_system_prompt,
        "REPOLENS_DATABASE_URL": settings.database_url,
        "REPOLENS_INDEX_WORKERS": str(settings.index_workers),
        "REPOLENS_JOB_LEASE": str(settings.job_lease_s),
    }
