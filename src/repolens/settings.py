"""Settings: read once from the environment, validated, then passed around.

A frozen dataclass rather than pydantic-settings because every CLI call reads it and the
CLI must start fast (pydantic-settings alone costs ~150 ms to import here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from repolens.errors import InvalidInput

DEFAULT_MAX_FILE_BYTES = 1_000_000  # 1 MB: larger files are data dumps, not code to read
DEFAULT_GIT_TIMEOUT_S = 300  # a clone that takes longer than this is stuck or enormous
DEFAULT_EMBEDDER = "minilm"  # measured best default; see bench/REPORT.md


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive, got {value}")
    return value


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


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

    @property
    def db_path(self) -> Path:
        """The SQLite file holding every index of this install."""
        return self.home / "repolens.db"

    @property
    def clones_dir(self) -> Path:
        """Where remote repositories are cloned."""
        return self.home / "clones"


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
    return Settings(
        home=home,
        max_file_bytes=_env_int("REPOLENS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
        git_timeout_s=_env_int("REPOLENS_GIT_TIMEOUT", DEFAULT_GIT_TIMEOUT_S),
        allowed_git_schemes=schemes,
        embedder=os.environ.get("REPOLENS_EMBEDDER", DEFAULT_EMBEDDER) or DEFAULT_EMBEDDER,
        embed_base_url=os.environ.get("REPOLENS_EMBED_BASE_URL", ""),
        embed_api_key=os.environ.get("REPOLENS_EMBED_API_KEY", ""),
    )
