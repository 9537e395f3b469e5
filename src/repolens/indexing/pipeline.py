"""Index a source: walk → read and hash → parse changed files → write → (vectors).

Incremental by content hash: a file whose hash is already stored is neither decoded nor
parsed again; a file that disappeared (or is now skipped) is deleted from every index. The
lexical and symbol indexes are written in one transaction, so a search running meanwhile
sees the previous index until the new one is complete.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from repolens.domain import Skipped, SourceFile
from repolens.errors import InvalidInput, NotFound
from repolens.indexing.units import build_file, file_tokens
from repolens.parsing.parse import parse_file
from repolens.settings import Settings
from repolens.sources import git
from repolens.sources.filters import classify_content, content_hash, make_source_file
from repolens.sources.languages import language_of
from repolens.sources.local import Candidate, walk
from repolens.storage.base import NewFile, SourceRow, Store

log = logging.getLogger(__name__)

_PARALLEL_MIN_FILES = 64  # below this, starting worker processes costs more than it saves
_WORKERS = 2  # this machine kind has two cores


class Progress(Protocol):
    """Receives phase progress; the CLI draws bars, tests record calls."""

    def start(self, phase: str, total: int | None) -> None:
        """A phase begins (total may be unknown)."""

    def advance(self, phase: str, n: int = 1) -> None:
        """``n`` more items of the phase are done."""

    def finish(self, phase: str) -> None:
        """The phase is over."""


class NullProgress:
    """Progress that goes nowhere."""

    def start(self, phase: str, total: int | None) -> None:
        """Ignore."""

    def advance(self, phase: str, n: int = 1) -> None:
        """Ignore."""

    def finish(self, phase: str) -> None:
        """Ignore."""


@dataclass(slots=True)
class IndexReport:
    """What one index run did."""

    source: str
    commit: str
    files_seen: int = 0
    files_changed: int = 0
    files_deleted: int = 0
    files_unchanged: int = 0
    symbols: int = 0
    chunks: int = 0
    bytes_parsed: int = 0
    parse_fallbacks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    vectors_embedded: int = 0
    vectors_ready: int = 0
    vectors_total: int = 0

    def skipped_by_reason(self) -> dict[str, int]:
        """Count of skipped files per reason."""
        return dict(Counter(s.reason for s in self.skipped))


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """Where a source's files are on disk, and what it is called."""

    root: Path
    name: str
    location: str
    commit: str
    branch: str | None


# Bump when artifact building changes in a way stored rows must not outlive.
UNITS_VERSION = 4


def index_version() -> str:
    """Fingerprint of everything that shapes stored artifacts and tokens."""
    from repolens.parsing.tokens import TOKENIZER_VERSION
    from repolens.parsing.treesitter import queries_fingerprint

    return f"t{TOKENIZER_VERSION}-u{UNITS_VERSION}-q{queries_fingerprint()}"


def _safe_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name).strip("._") or "source"


def clone_dir(settings: Settings, name: str) -> Path:
    """Where the clone of the remote source ``name`` lives."""
    return settings.clones_dir / _safe_dir_name(name)


def resolve_location(location: str, *, settings: Settings, name: str | None, branch: str | None) -> ResolvedSource:
    """Turn a path or git URL into files on disk (cloning or updating if remote)."""
    if git.looks_like_url(location) or location.startswith("-"):
        url = git.validate_git_url(location, allowed_schemes=settings.allowed_git_schemes)
        pin = git.check_host(url, allow_hosts=settings.git_allow_hosts)
        source_name = name or git.name_from_url(url)
        dest = clone_dir(settings, source_name)
        commit = git.clone_or_update(url, dest, branch=branch, timeout=settings.git_timeout_s, pin=pin,
                                     max_bytes=settings.max_repo_mb * 1_000_000, token=settings.git_token)
        return ResolvedSource(dest, source_name, url, commit, branch or git.local_branch(dest))
    path = Path(location).expanduser()
    if not path.exists():
        raise NotFound(f"no such directory: {location!r}")
    if not path.is_dir():
        raise InvalidInput(f"not a directory: {location!r} (index a repository folder or a git URL)")
    root = path.resolve()
    source_name = name or git.local_remote_name(root) or root.name
    return ResolvedSource(root, source_name, str(root), git.local_commit(root), branch or git.local_branch(root))


@contextmanager
def source_lock(settings: Settings, name: str) -> Iterator[None]:
    """Serialize index runs of one source across processes (the second run waits)."""
    lock_dir = settings.home / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{_safe_dir_name(name.lower())}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(candidate: Candidate) -> SourceFile | Skipped:
    try:
        with open(candidate.abs_path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return Skipped(candidate.path, "unreadable", str(exc.strerror or exc))
    decoded = classify_content(candidate.path, data)
    if isinstance(decoded, tuple):
        return Skipped(candidate.path, decoded[0], decoded[1])
    first_line = decoded.split("\n", 1)[0][:200]
    return make_source_file(candidate.path, data, decoded, language_of(candidate.path, first_line))


def _parse_one(file: SourceFile) -> NewFile:
    return build_file(file, parse_file(file))


def index_source(
    store: Store,
    settings: Settings,
    location: str,
    *,
    name: str | None = None,
    branch: str | None = None,
    progress: Progress | None = None,
) -> tuple[SourceRow, IndexReport]:
    """Index (or re-index) the source at ``location``; vectors are left to ``backfill``."""
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    progress.start("fetch", None)
    resolved = resolve_location(location, settings=settings, name=name, branch=branch)
    progress.finish("fetch")
    with source_lock(settings, resolved.name):
        store.ensure_index_version(index_version())
        source = store.get_source(resolved.name)
        if source is None:
            source = store.create_source(
                name=resolved.name, location=resolved.location, branch=resolved.branch, description=""
            )
        # A source with a good index stays Ready while it is refreshed: searches keep
        # answering from the last commit until the new one lands.
        had_index = source.indexed_at is not None and source.state == "Ready"
        if not had_index:
            store.update_source(source.id, state="Processing", state_reason="")
        try:
            report = _run(store, settings, source, resolved, progress, t0)
        except BaseException as exc:
            reason = str(exc)[:500] or type(exc).__name__
            if had_index:
                store.update_source(source.id, state_reason=f"last refresh failed: {reason}")
            else:
                store.update_source(source.id, state="Failed", state_reason=reason)
            raise
        store.update_source(
            source.id, state="Ready", state_reason="", commit_sha=resolved.commit, indexed_at=time.time(),
            location=resolved.location, **({"branch": resolved.branch} if resolved.branch else {}),
        )  # fmt: skip
    refreshed = store.get_source(resolved.name)
    assert refreshed is not None
    return refreshed, report


def _run(
    store: Store,
    settings: Settings,
    source: SourceRow,
    resolved: ResolvedSource,
    progress: Progress,
    t0: float,
) -> IndexReport:
    report = IndexReport(source=resolved.name, commit=resolved.commit)
    progress.start("walk", None)
    candidates: list[Candidate] = []
    for item in walk(resolved.root, max_file_bytes=settings.max_file_bytes):
        if isinstance(item, Skipped):
            report.skipped.append(item)
        else:
            candidates.append(item)
            progress.advance("walk")
    progress.finish("walk")
    t_walk = time.perf_counter()

    stored = store.file_hashes(source.id)
    seen: set[str] = set()
    changed: list[SourceFile] = []
    progress.start("read", len(candidates))
    for cand in candidates:
        seen.add(cand.path)
        known = stored.get(cand.path)
        if known is not None:
            try:
                with open(cand.abs_path, "rb") as handle:
                    if content_hash(handle.read()) == known:
                        report.files_unchanged += 1
                        progress.advance("read")
                        continue
            except OSError:
                pass
        prepared = _prepare(cand)
        if isinstance(prepared, Skipped):
            report.skipped.append(prepared)
            seen.discard(cand.path)
        else:
            changed.append(prepared)
        progress.advance("read")
    progress.finish("read")
    report.files_seen = len(candidates)
    deletes = [p for p in stored if p not in seen]
    t_read = time.perf_counter()

    progress.start("parse", len(changed))
    new_files = _parse_all(changed, progress)
    progress.finish("parse")
    for new in new_files:
        report.bytes_parsed += new.size
        if new.parser == "lines" and new.language is not None and new.language in _grammar_languages():
            report.parse_fallbacks += 1
        for art in new.artifacts:
            if art.kind == "Symbol":
                report.symbols += 1
            elif art.kind == "Chunk":
                report.chunks += 1
    t_parse = time.perf_counter()

    progress.start("write", len(new_files) + len(deletes))
    store.replace_files(source.id, upserts=_advancing(new_files, progress), deletes=deletes, tokenize=file_tokens)
    progress.finish("write")
    report.files_changed = len(new_files)
    report.files_deleted = len(deletes)
    t_write = time.perf_counter()
    report.seconds = {
        "walk": t_walk - t0,
        "read": t_read - t_walk,
        "parse": t_parse - t_read,
        "write": t_write - t_parse,
        "total": t_write - t0,
    }
    return report


def _advancing(files: list[NewFile], progress: Progress) -> Iterator[NewFile]:
    for f in files:
        yield f
        progress.advance("write")


def _grammar_languages() -> frozenset[str]:
    from repolens.parsing.treesitter import GRAMMARS

    return frozenset(GRAMMARS)


def _parse_all(files: list[SourceFile], progress: Progress) -> list[NewFile]:
    workers = min(_WORKERS, os.cpu_count() or 1)
    if len(files) < _PARALLEL_MIN_FILES or workers < 2:
        out: list[NewFile] = []
        for f in files:
            out.append(_parse_one(f))
            progress.advance("parse")
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork: the children inherit loaded grammars and need no re-import; the parent holds no
    # threads or locks at this point.
    ctx = mp.get_context("fork")
    results: list[NewFile] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for new in pool.map(_parse_one, files, chunksize=8):
            results.append(new)
            progress.advance("parse")
    return results
