"""Index a source: walk → read and hash → parse changed files → write → (vectors).

Incremental by content hash: a file whose hash is already stored is neither decoded nor
parsed again; a file that disappeared (or is now skipped) is deleted from every index. A
re-index writes the lexical and symbol indexes in one transaction, so a search running
meanwhile sees the previous index until the new one is complete. A first index has no previous
one: with worker processes it is written while they parse, a batch at a time (a killed run
keeps what it wrote, and the next run reads only the rest).

A lookup-table embedder (``embeds_beside_parser``) embeds the units in the parse workers, so
the vectors are ready with the lexical index; other embedders are left to ``vectors.backfill``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from repolens.domain import Skipped, Source, SourceFile
from repolens.errors import InvalidInput, NotFound, SourceError
from repolens.indexing.units import build_file_and_texts, file_tokens
from repolens.parsing.parse import parse_file
from repolens.settings import Settings
from repolens.sources import git
from repolens.sources.filters import classify_content, content_hash, make_source_file
from repolens.sources.languages import language_of
from repolens.sources.local import Candidate, SourceTree, walk
from repolens.sources.naming import source_name
from repolens.storage.base import NewFile, SourceCatalog, Store
from repolens.storage.relational import pack

if TYPE_CHECKING:
    from repolens.embeddings.base import Embedder

log = logging.getLogger(__name__)

# Worker processes parse when there is enough source to pay for them: starting them is cheap (~50 ms: fork),
# but each one warms its own caches (the static embedder learns the same word pieces in both) and the
# results are shipped back, so two workers spend 1.6-1.9x the CPU of this process on a 0.3-0.8 MB
# repository. Measured 2026-12-08 (load average 0.6-1.1, a core mostly free), cold with static vectors,
# in this process against two workers, median wall s of 3-4 interleaved runs: grape (143 files,
# 0.27 MB) 0.35 against 0.41-0.45, raft (0.40 MB) 0.33-0.45 / 0.42-0.48, penlight (0.42 MB) 0.29-0.41 /
# 0.44-0.45, typer (0.45 MB) 0.33-0.37 / 0.33, jinja2 (0.49 MB) 0.42-0.60 / 0.37-0.48, werkzeug
# (0.76 MB) 0.58-0.69 / 0.44-0.47, rxjs (0.82 MB) 0.56 / 0.47, rayon (0.83 MB) 0.71 / 0.48. Many small
# files no longer pay for them either (grape): the size decides.
_PARALLEL_MIN_BYTES = 450_000
_PARALLEL_MIN_FILES = 8  # fewer files do not spread over the workers
_WORKERS = 2  # this machine kind has two cores (``Settings.parse_workers`` sets another number)
# ... and, unless the settings say how many, only when the cores for them are free: with other work running
# on them, two workers get little more CPU than this process alone and spend more of it (the fork, each
# worker's cold caches, results pickled back). Measured 2026-12-08 on this shared 2-core machine while one
# to two other tasks ran (load average 1.5-2.8), cold, static vectors, in this process against two
# workers, wall s: grape 0.36 against 0.69, typer 0.33 / 0.46, raft 0.35 / 0.75, jinja2 0.54 / 0.83,
# werkzeug 0.59 / 0.69, knex 1.17 / 1.94, pytest 1.34 / 1.70, rich 0.98 / 1.29, sqlalchemy 6.7 / 8.3:
# with a core taken, one process won on every corpus. Other work is what the kernel counts as running or
# runnable at the moment (/proc/loadavg), the least of a few readings ``_LOAD_SAMPLE_S`` apart, so that a
# task which only passes by does not count.
_LOAD_SAMPLES = 3
_LOAD_SAMPLE_S = 0.001
# Files per task of a parse worker: few enough that the last tasks still spread over the workers, enough
# that one call to the embedder gets a few hundred texts (its cost per call is a fixed numpy overhead).
_FILES_PER_TASK = 4
# A first index is written in transactions of about this much source while the parse goes on: ~0.2 s
# of writing each on this machine, long enough that the full-text index is not cut into many small
# segments, short enough that other writers (job heartbeats, the server) barely wait.
_STREAM_BYTES = 1_000_000
_PR_SET_PDEATHSIG = 1  # prctl option from <linux/prctl.h>: a signal the kernel sends when the parent dies
_PARENT_POLL_S = 1.0  # elsewhere, how often a parse worker checks that its parent is still there


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


# Bump when artifact building changes in a way stored rows must not outlive.
UNITS_VERSION = 4


def index_version() -> str:
    """Fingerprint of everything that shapes stored artifacts and tokens."""
    from repolens.parsing.resolve import RESOLVER_VERSION
    from repolens.parsing.tokens import TOKENIZER_VERSION
    from repolens.parsing.treesitter import queries_fingerprint

    return f"t{TOKENIZER_VERSION}-u{UNITS_VERSION}-q{queries_fingerprint()}-r{RESOLVER_VERSION}"


def _safe_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name).strip("._") or "source"


def clone_dir(settings: Settings, source: Source) -> Path:
    """Where the clone of a remote source lives: a folder named by its id, which no other source
    shares (names such as ``o/r`` and ``o__r`` would map to one folder)."""
    return settings.clones_dir / source.public_id


def legacy_clone_dir(settings: Settings, name: str) -> Path:
    """Where releases before clone folders were keyed by id kept the clone of source ``name``."""
    return settings.clones_dir / _safe_dir_name(name)


def _origin(clone: Path) -> str | None:
    if not (clone / ".git").is_dir():
        return None
    try:
        return git.run_git(["config", "--get", "remote.origin.url"], cwd=clone, timeout=10).strip() or None
    except SourceError:
        return None


def _adopt_legacy_clone(settings: Settings, source: Source, dest: Path) -> None:
    """Move a clone made under the old name-keyed rule to ``dest`` when it is this source's
    (same origin URL); otherwise leave it to its owner (or to a re-clone: indexing is incremental)."""
    legacy = legacy_clone_dir(settings, source.name)
    if dest.exists() or legacy == dest or _origin(legacy) != source.location:
        return
    try:
        legacy.rename(dest)
    except OSError:  # another source with the same legacy folder took it first: clone afresh
        log.debug("could not adopt %s for %s", legacy, source.name, exc_info=True)


def forget_clone(settings: Settings, source: Source, others: list[Source]) -> None:
    """Delete the clone of a remote source, and its legacy folder when that holds this source's
    clone and no other source's name maps to it."""
    shutil.rmtree(clone_dir(settings, source), ignore_errors=True)
    legacy = legacy_clone_dir(settings, source.name)
    shared = any(o.id != source.id and legacy_clone_dir(settings, o.name) == legacy for o in others)
    if not shared and _origin(legacy) == source.location:
        shutil.rmtree(legacy, ignore_errors=True)


@contextmanager
def _open_source(settings: Settings, source: Source) -> Iterator[tuple[SourceTree, str, str | None]]:
    """The source's files as a ``SourceTree`` (cloned or updated first if remote), its commit and
    its branch (None when unknown).

    A local folder is opened exactly at its stored location with no symlink on the way: the
    location was resolved (and, over the API, confined to the allowed roots) when the source was
    registered, so a folder that became a symlink, or moved out from under its path, is refused
    here at every run instead of being followed outside the roots.
    """
    if git.looks_like_url(source.location) or source.location.startswith("-"):
        url = git.validate_git_url(source.location, allowed_schemes=settings.allowed_git_schemes)
        pin = git.check_host(url, allow_hosts=settings.git_allow_hosts)
        dest = clone_dir(settings, source)
        _adopt_legacy_clone(settings, source, dest)
        if dest.exists() and _origin(dest) != url:
            shutil.rmtree(dest)  # the operator pointed the source at another URL: start over
        commit = git.clone_or_update(
            url,
            dest,
            branch=source.branch,
            timeout=settings.git_timeout_s,
            pin=pin,
            max_bytes=settings.max_repo_mb * 1_000_000,
            token=settings.git_token,
        )
        # A fetch leaves HEAD detached: the branch cloned by default is remembered from the first clone.
        branch = source.branch or git.local_branch(dest)
        tree = SourceTree.open_trusted(dest)
    else:
        tree = SourceTree.open_exact(Path(source.location))
        # A local folder is indexed as it is on disk, on whatever branch is checked out now.
        commit, branch = git.local_commit(tree.path), git.local_branch(tree.path)
    with tree:
        yield tree, commit, branch


def _local_target(location: str) -> str:
    """A local path as the operator typed it, checked and resolved (symlinks followed once, here)."""
    path = Path(location).expanduser()
    if not path.exists():
        raise NotFound(f"no such directory: {location!r}")
    if not path.is_dir():
        raise InvalidInput(f"not a directory: {location!r} (index a repository folder or a git URL)")
    return str(path.resolve())


def _checked_location(location: str, settings: Settings) -> str:
    if git.looks_like_url(location) or location.startswith("-"):
        url = git.validate_git_url(location, allowed_schemes=settings.allowed_git_schemes)
        git.check_host(url, allow_hosts=settings.git_allow_hosts)
        return url
    return _local_target(location)


# Serializes index runs of one source between the threads of one process: a record lock is
# held per process, and closing any descriptor of its file drops it.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def source_lock(settings: Settings, name: str) -> Iterator[None]:
    """Serialize index runs of one source across processes (the second run waits).

    A POSIX record lock (``lockf``) rather than ``flock``: it belongs to this process alone, so
    the parse workers forked while it is held do not hold it too, and the kernel drops it the
    moment this process dies, however it dies. A killed run can therefore never leave a lock
    behind that blocks the next one.
    """
    lock_dir = settings.home / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    # Hashed: names differing only in case are one source, and 'o/r' and 'o__r' are two.
    path = lock_dir / f"{hashlib.sha256(name.lower().encode()).hexdigest()[:32]}.lock"
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    with thread_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                log.info("waiting for another index run of %s to finish", name)
                fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _prepare(tree: SourceTree, candidate: Candidate, max_bytes: int) -> SourceFile | Skipped:
    try:
        data = tree.read_bytes(candidate.path, limit=max_bytes)
    except OSError as exc:
        return Skipped(candidate.path, "unreadable", str(exc.strerror or exc))
    if len(data) > max_bytes:
        return Skipped(candidate.path, "too_large", f"grew past the limit of {max_bytes:,} bytes while indexing")
    decoded = classify_content(candidate.path, data)
    if isinstance(decoded, tuple):
        return Skipped(candidate.path, decoded[0], decoded[1])
    first_line = decoded.split("\n", 1)[0][:200]
    return make_source_file(candidate.path, data, decoded, language_of(candidate.path, first_line))


# Vectors computed beside the parser: (embed key, encoded vector).
Vectors = list[tuple[int, bytes]]
# The embedder of the parse workers of this process (set by ``_init_worker`` in each forked worker).
_WORKER_EMBEDDER: Embedder | None = None


class _Pending:
    """The distinct unit texts of parsed files, waiting to be embedded together (one call to the
    embedder for many files: its cost per call is fixed, per text small)."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.texts: list[str] = []
        self._seen: set[int] = set()

    def add(self, new: NewFile, texts: list[str | None]) -> None:
        for key, text in zip(new.embed_keys, texts, strict=True):
            if key is not None and text is not None and key not in self._seen:
                self._seen.add(key)
                self.keys.append(key)
                self.texts.append(text)

    def embed(self, embedder: Embedder) -> Vectors:
        from repolens.storage.codec import encode_many

        if not self.texts:
            return []
        vectors = embedder.embed(self.texts, input_type="document")
        return list(zip(self.keys, encode_many(vectors), strict=True))


def _parse_batch(
    files: list[SourceFile], embedder: Embedder | None, on_file: Callable[[], None] | None = None
) -> tuple[list[NewFile], Vectors]:
    """Parse ``files`` and, with an ``embedder``, embed their units' texts (each distinct text once);
    ``on_file`` is called after each file is parsed."""
    out: list[NewFile] = []
    pending = _Pending()
    for file in files:
        new, texts = build_file_and_texts(file, parse_file(file))
        out.append(new)
        if embedder is not None:
            pending.add(new, texts)
        if on_file is not None:
            on_file()
    return out, pending.embed(embedder) if embedder is not None else []


def _worker_batch(files: list[SourceFile]) -> tuple[list[NewFile], Vectors]:
    parsed, vectors = _parse_batch(files, _WORKER_EMBEDDER)
    # Compressed here, in parallel, not by the writer, which runs beside the workers and was the last to
    # finish on a large repository (sqlalchemy: ~0.4 s of its ~1.9 s of writing); a quarter of the bytes
    # cross back, too.
    return [replace(new, packed=pack(new.content)) for new in parsed], vectors


def _init_worker(parent_pid: int, embedder: Embedder | None) -> None:
    global _WORKER_EMBEDDER
    # The tokenizer of the static embedder starts a thread pool of its own per process; each worker
    # is one of the cores already, and a pool copied by fork from a parent that used one deadlocks.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER_EMBEDDER = embedder
    die_with_parent(parent_pid)


def record_failure(store: SourceCatalog, source: Source, reason: str) -> None:
    """Put a failed run's reason on its source, so the source always tells what its last job did:
    one with a good index stays Ready (searches keep answering from it) and says its last refresh
    failed; one without becomes Failed."""
    reason = reason[:500] or "failed"
    if source.state == "Ready" and source.indexed_at is not None:
        store.update_source(source.id, state_reason=f"last refresh failed: {reason}")
    else:
        store.update_source(source.id, state="Failed", state_reason=reason)


def index_source(
    store: Store,
    settings: Settings,
    location: str,
    *,
    name: str | None = None,
    branch: str | None = None,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
) -> tuple[Source, IndexReport]:
    """Index (or re-index) the source at ``location``, a path or URL the operator gave (the CLI,
    the benchmarks). With an ``embedder`` that runs beside the parser (``embeds_beside_parser``), the
    changed files' units are embedded while they are parsed; other vectors are left to ``backfill``.

    The source is found by name (default: ``naming.default_name``) or registered. A location or
    branch other than the stored one is the operator's new choice and is stored.
    """
    t0 = time.perf_counter()
    target = _checked_location(location, settings)
    chosen = source_name(target, name)
    with source_lock(settings, chosen):
        source = store.get_source(chosen)
        created = source is None
        if source is None:
            source = store.create_source(name=chosen, location=target, branch=branch, description="")
        elif source.location != target or (branch is not None and branch != source.branch):
            # The operator's new location or branch (no --branch keeps the known one, unless the
            # source moved: a branch of the old remote means nothing for the new one).
            store.update_source(source.id, location=target, branch=branch)
            source = _fresh(store, source)
        report = _index_locked(store, settings, source, progress or NullProgress(), t0, embedder, created=created)
    return _fresh(store, source), report


def index_stored(
    store: Store,
    settings: Settings,
    source: Source,
    *,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
) -> tuple[Source, IndexReport]:
    """Re-index a registered source from its stored location (the job runner's entry point);
    ``embedder`` as for ``index_source``.

    The stored location is never rewritten: a local folder must still be exactly where it was
    registered (see ``_open_source``), a remote one is fetched into its own clone folder.
    """
    t0 = time.perf_counter()
    with source_lock(settings, source.name):
        source = _fresh(store, source)
        report = _index_locked(store, settings, source, progress or NullProgress(), t0, embedder, created=False)
    return _fresh(store, source), report


def _fresh(store: Store, source: Source) -> Source:
    row = store.get_source(source.public_id)
    if row is None:
        raise NotFound(f"the data source {source.name!r} was deleted")
    return row


def _index_locked(
    store: Store,
    settings: Settings,
    source: Source,
    progress: Progress,
    t0: float,
    embedder: Embedder | None,
    *,
    created: bool,
) -> IndexReport:
    store.ensure_index_version(index_version())
    # A source with a good index stays Ready while it is refreshed: searches keep
    # answering from the last commit until the new one lands.
    if not (source.indexed_at is not None and source.state == "Ready"):
        store.update_source(source.id, state="Processing", state_reason="")
    fetched = False
    try:
        progress.start("fetch", None)
        with _open_source(settings, source) as (tree, commit, branch):
            fetched = True
            progress.finish("fetch")
            report = _run(store, settings, source, tree, commit, progress, t0, embedder)
    except (Exception, KeyboardInterrupt) as exc:
        if created and not fetched:
            # A location the operator gave that could not even be fetched leaves no source behind.
            store.delete_source(source.id, tokenize=file_tokens)
        else:
            record_failure(store, source, str(exc) or type(exc).__name__)
        raise
    # Any other BaseException is a job told to stop: its job resumes later, so the source stays as
    # it is (Processing, or Ready while refreshed), like the job.
    store.update_source(
        source.id,
        state="Ready",
        state_reason="",
        commit_sha=commit,
        indexed_at=time.time(),
        **({"branch": branch} if branch else {}),
    )
    return report


def _run(
    store: Store,
    settings: Settings,
    source: Source,
    tree: SourceTree,
    commit: str,
    progress: Progress,
    t0: float,
    embedder: Embedder | None,
) -> IndexReport:
    from repolens.embeddings.factory import embeds_beside_parser

    report = IndexReport(source=source.name, commit=commit)
    inline = embedder if embedder is not None and embeds_beside_parser(embedder) else None
    progress.start("walk", None)
    candidates: list[Candidate] = []
    for item in walk(tree, max_file_bytes=settings.max_file_bytes):
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
                if content_hash(tree.read_bytes(cand.path, limit=settings.max_file_bytes)) == known:
                    report.files_unchanged += 1
                    progress.advance("read")
                    continue
            except OSError:
                pass
        prepared = _prepare(tree, cand, settings.max_file_bytes)
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
    new_files: list[NewFile] = []
    vectors: dict[int, bytes] = {}
    # A first index has no previous one for searches to keep answering from: its files are written
    # while the workers parse the next ones, in transactions of about _STREAM_BYTES of source (short:
    # the write lock is held as briefly as for one re-index). A re-index writes in one transaction at
    # the end, so searches see the old index or the new one, never a mix.
    workers = _in_workers(changed, settings.parse_workers)
    streaming = not stored and workers > 0
    unwritten: list[NewFile] = []
    for batch, batch_vectors in _parse_all(changed, progress, inline, workers=workers):
        new_files.extend(batch)
        vectors.update(batch_vectors)
        if streaming:
            unwritten.extend(batch)
            if sum(f.size for f in unwritten) >= _STREAM_BYTES:
                report.vectors_embedded += _write(store, source.id, unwritten, [], vectors, inline)
                unwritten = []
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
    if streaming:
        progress.advance("write", len(new_files) - len(unwritten))
        report.vectors_embedded += _write(store, source.id, unwritten, deletes, vectors, inline)
        progress.advance("write", len(unwritten))
    else:
        report.vectors_embedded += _write(store, source.id, _advancing(new_files, progress), deletes, vectors, inline)
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


def _write(
    store: Store,
    source_id: int,
    files: Iterable[NewFile],
    deletes: list[str],
    vectors: dict[int, bytes],
    embedder: Embedder | None,
) -> int:
    """Write parsed files (and drop deleted ones) in one transaction, then the vectors computed beside
    them in another: search answers lexically a moment sooner. ``vectors`` is emptied; returns how
    many it held."""
    store.replace_files(source_id, upserts=files, deletes=deletes, tokenize=file_tokens)
    written = len(vectors)
    if embedder is not None and vectors:
        store.put_vectors(embedder.name, list(vectors.items()))
    vectors.clear()
    return written


def _advancing(files: list[NewFile], progress: Progress) -> Iterator[NewFile]:
    for f in files:
        yield f
        progress.advance("write")


def _grammar_languages() -> frozenset[str]:
    from repolens.parsing.treesitter import GRAMMARS

    return frozenset(GRAMMARS)


def _in_workers(files: list[SourceFile], configured: int) -> int:
    """How many worker processes parse ``files`` (0: this one does), with ``configured`` as
    ``Settings.parse_workers`` says: the operator's number, or (0) two for enough source with the cores free."""
    if len(files) < _PARALLEL_MIN_FILES or configured == 1:
        return 0
    if configured:
        return configured
    workers = min(_WORKERS, os.cpu_count() or 1)
    enough = sum(f.size for f in files) >= _PARALLEL_MIN_BYTES
    return workers if enough and workers >= 2 and _free_cores() >= workers else 0


def _free_cores() -> int:
    """Cores no other task is using now (see ``_LOAD_SAMPLES``); all of them where that is not known."""
    cores = os.cpu_count() or 1
    running: list[int] = []
    for i in range(_LOAD_SAMPLES):
        if i:
            time.sleep(_LOAD_SAMPLE_S)
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                # "0.52 0.61 0.70 2/345 6789": the fourth field is running (or runnable) / all tasks
                running.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return cores
    return max(0, cores - (min(running) - 1))  # this process is one of the running tasks


def _parse_all(
    files: list[SourceFile], progress: Progress, embedder: Embedder | None, *, workers: int
) -> Iterator[tuple[list[NewFile], Vectors]]:
    """The parsed files in their order, a batch at a time, with the vectors of their units (with an
    ``embedder``): in ``workers`` worker processes (``_in_workers``), or in this one for 0."""
    if not workers:
        yield _parse_batch(files, embedder, on_file=lambda: progress.advance("parse"))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from repolens.parsing.treesitter import prepare

    # Grammars, queries and the embedder's table are loaded here, once: each worker would otherwise
    # load its own.
    prepare(f.language for f in files)
    if embedder is not None:
        embedder.embed([], input_type="document")
    batches = [files[i : i + _FILES_PER_TASK] for i in range(0, len(files), _FILES_PER_TASK)]
    # fork: the children inherit what was loaded and need no re-import; the parent holds no threads
    # at this point, and its source lock is a record lock, which children do not inherit.
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(), embedder)
    ) as pool:
        for batch, result in zip(batches, pool.map(_worker_batch, batches), strict=True):
            progress.advance("parse", len(batch))
            yield result


def die_with_parent(parent_pid: int) -> None:
    """This process never outlives ``parent_pid``. The parse workers' initializer: left behind by a
    kill -9 of ``repolens index`` (or of a job's process), workers would wait on their task queue
    forever, holding memory and every descriptor they inherited. A job's process calls it too, so a
    killed server or worker takes its job down at once, mid-transaction or not (the database rolls
    an unfinished transaction back, and the job is resumed from its lease)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)
