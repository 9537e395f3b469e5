"""Load benchmark of the HTTP server: search latency and throughput under concurrent clients.

    python bench/load.py [--corpus NAME] [--seconds S] [--out bench/LOAD.md]

What it measures, in one run:

1. A real ``repolens serve`` subprocess in a temporary ``REPOLENS_HOME`` with the real default
   embedder (built-in MiniLM), which indexes one bench corpus through the API
   (``POST /api/datasources`` with a local path, then the job is polled until Ready, vectors included).
2. An in-process baseline while the server is idle: the same queries through
   ``repolens.operations.search`` on the same index, single-threaded, no HTTP.
3. This process as the load generator (asyncio, one keep-alive ``httpx.AsyncClient``): N clients
   for N in 1, 8, 32, each looping over a fixed list of realistic queries with
   ``GET /api/search?Query=...&DataSourceIds=<id>&Mode=auto`` for a warm-up and then ``--seconds``.
   Per level: requests, req/s, client-observed p50/p95/p99, errors (non-200 or exceptions), 429s,
   the server's own time per request (from its JSON access log, matched by ``X-Request-Id``) and
   the CPU the server and this client used (so a saturated client would show).

Results go to stdout and to a Markdown report (``--out``). The server is stopped with SIGTERM at
the end, on errors too. Corpora live in ``../bench-data/corpora/<name>`` (``--corpora``) and are
fetched with ``../shared/bench/fetch_corpora.py`` when missing, as ``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_BENCH = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared")) / "bench"  # as bench/run.py
DEFAULT_CORPORA = REPO.parent / "bench-data" / "corpora"
sys.path.insert(0, str(REPO / "src"))  # measure this checkout, as bench/run.py does

# sqlalchemy: 262 files (8.9 MB, ~15k search units), inside the 200-1000 file "medium repository"
# band; pytest, the other candidate, has only 80 files in the bench corpus.
DEFAULT_CORPUS = "sqlalchemy"
CONCURRENCY_LEVELS = (1, 8, 32)
DEFAULT_SECONDS = 20.0
WARMUP_S = 3.0  # the first searches load the vector matrix and warm SQLite's page cache
TARGET_CLIENTS = 8
TARGET_P95_MS = 100.0
STARTUP_TIMEOUT_S = 120  # the server loads the ONNX model before it answers /ready
INDEX_TIMEOUT_S = 3600  # indexing with the real embedder on 2 busy cores takes minutes
JOB_POLL_S = 1.0
PROGRESS_EVERY_S = 15.0
REQUEST_TIMEOUT_S = 60.0  # generous: a timeout must show up as an error, not hang a client
STOP_TIMEOUT_S = 30  # the server's graceful shutdown allows 10 s for requests in flight
# A dedicated key far above any load this script can generate, so no 429 comes from the plan.
KEY_REQUESTS_PER_HOUR = 10_000_000
KEY_CONCURRENCY = 1_000
ERROR_SAMPLES = 5  # error bodies kept per level for the report
# What `repolens serve` prints on stderr before its JSON logs start: not errors.
SERVER_BANNERS = ("Created the admin API key", "repolens serving on")

# Queries per corpus: natural-language questions and identifiers a developer would type.
# Other corpora fall back to the labelled queries of ../shared/bench/queries/<name>.json.
CURATED_QUERIES: dict[str, tuple[str, ...]] = {
    "sqlalchemy": (
        "how is a connection checked out of the pool and returned",
        "create an engine from a database URL",
        "compile a select statement to a SQL string",
        "session flush unit of work ordering",
        "lazy loading of relationships",
        "eager loading with joinedload",
        "identity map lookup by primary key",
        "reflect table columns from the database",
        "bind parameters in a compiled statement",
        "nested transaction savepoint",
        "hybrid property with a SQL expression",
        "declarative base class mapping",
        "cascade delete orphan",
        "PostgreSQL dialect RETURNING clause",
        "type coercion for DateTime columns",
        "listen for events before a statement executes",
        "how are result rows turned into ORM objects",
        "optimistic concurrency version id counter",
        "bulk insert many rows with executemany",
        "foreign key constraints in CREATE TABLE DDL",
        "cache key generation for SQL statements",
        "async session with asyncio",
        "set the isolation level of a connection",
        "association proxy for many to many",
        "single table polymorphic inheritance",
        "connection pool pre ping and recycle",
        "SQLite dialect foreign key pragma",
        "load only some columns deferred",
        "QueuePool",
        "create_engine",
        "Session.flush",
        "selectinload",
        "TypeDecorator",
        "Inspector.get_columns",
        "declarative_base",
        "hybrid_property",
        "AsyncSession",
        "SQLCompiler.visit_select",
        "UOWTransaction",
        "scoped_session",
        "aliased",
        "BindParameter",
    ),
    "pytest": (
        "how are fixtures resolved",
        "parametrize marker",
        "monkeypatch setattr",
        "assertion rewriting",
        "tmp_path factory",
        "capture stdout and stderr",
        "skip a test conditionally",
        "strict xfail",
        "collect test modules from a directory",
        "load conftest plugins",
        "approximate floating point comparison",
        "raises context manager",
        "warns about a deprecation warning",
        "junit xml report",
        "cache of last failed tests",
        "session scoped fixture teardown",
        "hook specifications",
        "doctest module collection",
        "traceback filtering",
        "terminal summary report",
        "rootdir and ini file discovery",
        "command line option addoption",
        "run pytest in a subprocess with pytester",
        "logging capture caplog",
        "stepwise run",
        "FixtureRequest",
        "MonkeyPatch",
        "AssertionRewritingHook",
        "TempPathFactory",
        "pytest_collection_modifyitems",
        "CaptureFixture",
        "Config.getini",
        "Node.add_marker",
        "LineMatcher",
        "ExceptionInfo",
    ),
}


# -- corpus and queries ---------------------------------------------------------------------------


def ensure_corpus(corpora: Path, name: str) -> Path:
    """The corpus folder, fetched by the shared fetch script when it is missing (as bench/run.py)."""
    root = corpora / name
    if not root.is_dir():
        fetch = [sys.executable, str(SHARED_BENCH / "fetch_corpora.py"), "--dest", str(corpora), "--only", name]
        subprocess.run(fetch, check=True)
    return root


def corpus_queries(name: str) -> list[str]:
    """The curated queries for ``name``, else the shared labelled ones."""
    if name in CURATED_QUERIES:
        return list(CURATED_QUERIES[name])
    labelled = SHARED_BENCH / "queries" / f"{name}.json"
    if not labelled.is_file():
        raise SystemExit(f"no queries for corpus {name!r}: add them to CURATED_QUERIES")
    return [str(q["query"]) for q in json.loads(labelled.read_text())]


def count_files(root: Path) -> int:
    """Files in the corpus folder (what is on disk; the server reports what it indexed)."""
    return sum(1 for p in root.rglob("*") if p.is_file())


# -- the server -----------------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``repolens serve``: its URL, admin key, process and stderr log file."""

    url: str
    admin_key: str
    process: subprocess.Popen[str]
    log_path: Path
    log_file: IO[str]

    def stop(self) -> None:
        """Graceful stop (SIGTERM); kill only if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"server did not stop in {STOP_TIMEOUT_S}s after SIGTERM; killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log_file.close()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m repolens``."""
    exe = Path(sys.executable).with_name("repolens")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]


def start_server(home: Path, allowed_root: Path) -> Server:
    """Start the server with the default embedder; read the admin key it prints; wait for /ready."""
    # No inherited REPOLENS_* variable may change what is measured (e.g. REPOLENS_EMBEDDER=hash).
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPOLENS_")}
    env |= {"REPOLENS_HOME": str(home), "REPOLENS_ALLOWED_ROOTS": str(allowed_root)}
    return launch_server(home, env, read_key=True)


def launch_server(home: Path, env: dict[str, str], *, read_key: bool) -> Server:
    """``repolens serve`` with ``env`` on a free port, its log in ``home``; the admin key it prints
    when it mints one (``read_key``); returns once /ready answers, stops it on any failure."""
    port = free_port()
    log_path = home / "server.log"
    log_file = log_path.open("w")
    command = [*server_command(), "serve", "--port", str(port), "--log-level", "warning"]
    stdout = subprocess.PIPE if read_key else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=stdout, stderr=log_file, text=True)
    server = Server(f"http://127.0.0.1:{port}", "", process, log_path, log_file)
    try:
        if read_key:
            assert process.stdout is not None
            server.admin_key = process.stdout.readline().strip()
            if not server.admin_key.startswith("ca_"):
                raise RuntimeError(f"server printed no admin key: {server.admin_key!r}\n{log_tail(log_path)}")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}\n{log_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    return server
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_S}s\n{log_tail(log_path)}")
    except BaseException:
        server.stop()
        raise


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of the server's log, for error messages."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def create_bench_key(client: httpx.Client) -> str:
    """A member key on a custom plan far above the load generated here."""
    body = {"name": "load-bench", "plan": "custom", "requestsPerHour": KEY_REQUESTS_PER_HOUR, "concurrency": KEY_CONCURRENCY}
    response = client.post("/api/admin/keys", json=body)
    response.raise_for_status()
    return str(response.json()["key"])


def index_corpus(client: httpx.Client, root: Path) -> dict[str, Any]:
    """Create the data source over the API and wait for its job (vectors included); return the source."""
    response = client.post("/api/datasources", json={"path": str(root)})
    if response.status_code != 202:
        raise RuntimeError(f"POST /api/datasources answered {response.status_code}: {response.text}")
    created = response.json()
    source_id, job_id = created["dataSource"]["id"], created["job"]["id"]
    started = last_note = time.monotonic()
    while time.monotonic() - started < INDEX_TIMEOUT_S:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] == "Failed":
            raise RuntimeError(f"indexing failed: {job.get('reason')}")
        if job["state"] == "Ready":
            print(f"[index] ready in {time.monotonic() - started:.0f}s", flush=True)
            return dict(client.get(f"/api/datasources/{source_id}").json())
        if time.monotonic() - last_note >= PROGRESS_EVERY_S:
            last_note = time.monotonic()
            unit = "units" if job.get("unitsTotal") is not None else "files"
            done, total, percent = job.get(f"{unit}Done"), job.get(f"{unit}Total"), job.get("percent") or 0
            print(f"[index] {job.get('phase')} {done}/{total} {unit} ({percent:.0f}%)", flush=True)
        time.sleep(JOB_POLL_S)
    raise RuntimeError(f"indexing did not finish in {INDEX_TIMEOUT_S}s")


def search_params(query: str, source_id: str) -> dict[str, str]:
    """The query string of one search, as CodeAlive's clients send it."""
    return {"Query": query, "DataSourceIds": source_id, "Mode": "auto"}


def probe_search(client: httpx.Client, source_id: str, query: str) -> dict[str, Any]:
    """One search before the load: it must answer 200 with results; returns its ``index`` block."""
    response = client.get("/api/search", params=search_params(query, source_id))
    if response.status_code != 200 or not response.json().get("results"):
        raise RuntimeError(f"probe search answered {response.status_code}: {response.text[:500]}")
    return dict(response.json()["index"])


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LevelResult:
    """What one concurrency level measured."""

    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rate_limited: int = 0
    error_samples: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    server_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def note_error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(text)


# -- the load generator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The measured span of one level: requests started in [start, stop) count."""

    start: float
    stop: float


async def client_loop(
    client: httpx.AsyncClient, worker: int, queries: Sequence[str], source_id: str, window: Window, result: LevelResult
) -> None:
    """One client: search query after query (from its own offset) until the window closes.

    Requests started before the window are the warm-up and are not recorded.
    """
    i = worker * len(queries) // result.clients  # spread the clients over the query list
    seq = 0
    while (started := time.perf_counter()) < window.stop:
        query = queries[i % len(queries)]
        i += 1
        seq += 1
        measured = started >= window.start
        rid = f"{'m' if measured else 'w'}{result.clients}-{worker}-{seq}"
        try:
            response = await client.get("/api/search", params=search_params(query, source_id), headers={"X-Request-Id": rid})
        except httpx.HTTPError as exc:
            if measured:
                result.note_error(f"{type(exc).__name__}: {exc}")
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not measured:
            continue
        if response.status_code == 200:
            result.latencies_ms.append(elapsed_ms)
            continue
        if response.status_code == 429:
            result.rate_limited += 1
        result.note_error(f"HTTP {response.status_code}: {response.text[:200]}")


async def run_level(
    server: Server, key: str, source_id: str, queries: Sequence[str], clients: int, seconds: float
) -> LevelResult:
    """``clients`` concurrent clients on one keep-alive connection pool: warm-up, then ``seconds``."""
    result = LevelResult(clients, seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        start = time.perf_counter() + WARMUP_S
        window = Window(start, start + seconds)
        gathered = asyncio.gather(*(client_loop(client, w, queries, source_id, window, result) for w in range(clients)))
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        cpu0, server_cpu0 = time.process_time(), server.cpu_seconds()
        await gathered
        result.client_cpu_s = time.process_time() - cpu0
        result.server_cpu_s = server.cpu_seconds() - server_cpu0
    return result


def log_records(log_path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Every line of the server's log with its JSON record (None for a line that is not JSON)."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        yield line, record if isinstance(record, dict) else None


def attach_server_times(log_path: Path, results: Sequence[LevelResult]) -> None:
    """Server-side milliseconds of every measured request, from the access log (``X-Request-Id``)."""
    by_level = {r.clients: r for r in results}
    for _, record in log_records(log_path):
        if record is None or record.get("msg") != "request" or record.get("status") != 200:
            continue
        rid = str(record.get("request_id") or "")
        if rid.startswith("m") and (level := by_level.get(int(rid[1:].split("-", 1)[0]))) is not None:
            level.server_ms.append(float(record["ms"]))


def server_errors(log_path: Path) -> list[str]:
    """Log lines at error level or above, 5xx access lines, and non-JSON output (a traceback)."""
    out = []
    for line, record in log_records(log_path):
        if record is None:
            if line.strip() and not line.startswith(SERVER_BANNERS):
                out.append(line)
            continue
        failed_request = record.get("msg") == "request" and int(record.get("status") or 0) >= 500
        if record.get("level") in ("error", "critical") or failed_request:
            out.append(line)
    return out


# -- the in-process baseline ----------------------------------------------------------------------


@dataclass
class Baseline:
    """Single-threaded latencies of the same searches through the Python API."""

    latencies_ms: list[float]
    embedder: str
    cpu_s: float  # CPU of this process over the measured searches (its embedding thread included)
    cold_ms: list[float]  # the first pass over the queries: read caches empty (the model already loaded)


def in_process_baseline(home: Path, source_id: str, queries: Sequence[str], seconds: float) -> Baseline:
    """``operations.search`` on the server's index, in this process: one warm-up pass, then ``seconds``."""
    from repolens import operations
    from repolens.services import build_services
    from repolens.settings import Settings

    services = build_services(Settings(home=home))
    try:
        requests = [operations.SearchRequest(q, names=(source_id,), mode="auto") for q in queries]
        # A search in another repository's words loads the model and the vector matrix without
        # touching the rows the measured queries read; then one timed pass with cold read caches.
        operations.search(services, None, operations.SearchRequest("zzqx", names=(source_id,), mode="auto"))
        cold: list[float] = []
        for request in requests:
            started = time.perf_counter()
            operations.search(services, None, request)
            cold.append((time.perf_counter() - started) * 1000)
        latencies: list[float] = []
        cpu0 = time.process_time()
        stop_at = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < stop_at or i < len(requests):
            started = time.perf_counter()
            operations.search(services, None, requests[i % len(requests)])
            latencies.append((time.perf_counter() - started) * 1000)
            i += 1
        cpu_s = time.process_time() - cpu0
        embedder = services.embedder.name if services.embedder is not None else "none"
        return Baseline(latencies, embedder, cpu_s, cold)
    finally:
        services.close()


# -- machine and report ---------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return math.nan


def git(*args: str) -> str:
    """Output of a read-only git command in the repository (no optional locks: never writes the index)."""
    done = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def git_commit() -> str:
    """Short HEAD, marked when tracked files have uncommitted changes."""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return f"{commit} (plus uncommitted changes)" if dirty else commit


def machine_line() -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {ram_gb():.0f} GB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


TABLE_HEADER = [
    "| clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors | error rate | 429s "
    "| server p50 ms | server p95 ms | CPU ms/req | server CPU (cores) | client CPU (cores) |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def level_row(r: LevelResult) -> str:
    """One concurrency level as a table row."""
    return (
        f"| {r.clients} | {r.requests} | {r.rps:.1f} | {percentile(r.latencies_ms, 50):.1f} "
        f"| {percentile(r.latencies_ms, 95):.1f} | {percentile(r.latencies_ms, 99):.1f} | {r.errors} "
        f"| {r.error_rate:.2%} | {r.rate_limited} | {percentile(r.server_ms, 50):.1f} "
        f"| {percentile(r.server_ms, 95):.1f} | {r.server_cpu_s * 1000 / max(1, r.requests):.1f} "
        f"| {r.server_cpu_s / r.seconds:.2f} | {r.client_cpu_s / r.seconds:.2f} |"
    )


def baseline_row(b: Baseline) -> str:
    """The in-process baseline as a table row (its CPU is this process's, searching)."""
    lat, wall_s = b.latencies_ms, sum(b.latencies_ms) / 1000
    return (
        f"| in-process (1 thread, no HTTP) | {len(lat)} | {len(lat) / wall_s:.1f} | {percentile(lat, 50):.1f} "
        f"| {percentile(lat, 95):.1f} | {percentile(lat, 99):.1f} | 0 | 0.00% | n/a | n/a | n/a "
        f"| {b.cpu_s * 1000 / len(lat):.1f} | {b.cpu_s / wall_s:.2f} | n/a |"
    )


def cold_row(b: Baseline) -> str:
    """The in-process first pass, before the read caches hold anything the queries need."""
    lat = b.cold_ms
    return (
        f"| in-process, first pass (cold read caches) | {len(lat)} | {len(lat) / (sum(lat) / 1000):.1f} "
        f"| {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} | {percentile(lat, 99):.1f} | 0 | 0.00% "
        "| n/a | n/a | n/a | n/a | n/a | n/a |"
    )


def table_lines(results: Sequence[LevelResult], baseline: Baseline) -> list[str]:
    """The results table in Markdown (also printed to stdout)."""
    return [*TABLE_HEADER, *(level_row(r) for r in results), baseline_row(baseline), cold_row(baseline)]


def target_note(results: Sequence[LevelResult]) -> str:
    """Whether the target was met at ``TARGET_CLIENTS``, in one sentence."""
    at = next((r for r in results if r.clients == TARGET_CLIENTS), None)
    if at is None:
        return f"Target: p95 under {TARGET_P95_MS:.0f} ms at {TARGET_CLIENTS} clients (not measured in this run)."
    p95 = percentile(at.latencies_ms, 95)
    verdict = "**met**" if p95 < TARGET_P95_MS and at.errors == 0 else "**not met**"
    return (
        f"Target: p95 under {TARGET_P95_MS:.0f} ms at {TARGET_CLIENTS} concurrent clients, zero errors: {verdict} "
        f"(p95 {p95:.1f} ms, {at.errors} errors in {at.requests} requests, {at.rps:.1f} req/s)."
    )


@dataclass
class RunInfo:
    """Everything the report states besides the figures."""

    command: str
    corpus: str
    files_on_disk: int
    source: dict[str, Any]
    queries: int
    seconds: float
    index_s: float
    vectors: dict[str, Any]


def report_lines(info: RunInfo, results: Sequence[LevelResult], baseline: Baseline, errors_seen: Sequence[str]) -> list[str]:
    """The Markdown report."""
    src = info.source
    lines = [
        "# Server load benchmark",
        "",
        f"`{info.command}` on {datetime.date.today().isoformat()}, commit {git_commit()}.",
        "",
        f"- Machine: {machine_line()}. Server and load generator share the machine.",
        f"- Corpus: `{info.corpus}` ({info.files_on_disk} files on disk; indexed {src.get('files')} files, "
        f"{src.get('artifacts')} artifacts) in {info.index_s:.0f} s through the API, vectors included.",
        f"- Embedder: `{baseline.embedder}` (the built-in default); vectors ready "
        f"{info.vectors.get('vectorsReady')}/{info.vectors.get('vectorsTotal')} during the load.",
        f"- Requests: `GET /api/search?Query=...&DataSourceIds=<id>&Mode=auto` (10 results), {info.queries} "
        "queries in rotation (natural language and identifiers), from one `httpx.AsyncClient` with keep-alive in "
        f"a separate process; {WARMUP_S:.0f} s warm-up, then {info.seconds:.0f} s measured per level; a custom-plan "
        f"key ({KEY_REQUESTS_PER_HOUR:,}/h, {KEY_CONCURRENCY} concurrent).",
        "- Latency is client-observed. *Server* ms is the server's access-log time for the same requests (from "
        "the access middleware to the response: auth, queueing for a worker thread, search, JSON); the gap to the "
        "client figure is HTTP parsing, the event loop and the client. CPU ms/req is the server process's CPU "
        "(the in-process row: this process's) per request; the CPU columns are CPU-seconds per wall second.",
        "- The queries repeat, so after the warm-up the server's read caches (artifact rows and decoded file "
        "text, `storage/cache.py`) hold what they need, as they do for the hot files of a real repository; the "
        "last row is the same searches once each with those caches empty, for the cost of a cold query.",
        "",
        *table_lines(results, baseline),
        "",
        target_note(results),
    ]
    samples = [s for r in results for s in r.error_samples]
    if samples or errors_seen:
        lines += ["", "## Errors", ""]
        lines += [f"- client: `{s}`" for s in samples]
        lines += [f"- server log: `{s[:300]}`" for s in errors_seen[:10]]
    return lines


# -- main -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_home(keep: bool) -> Iterator[Path]:
    """A fresh REPOLENS_HOME, removed afterwards unless ``keep``."""
    home = Path(tempfile.mkdtemp(prefix="repolens-load-"))
    try:
        yield home
    finally:
        if keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help=f"bench corpus name (default {DEFAULT_CORPUS})")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured seconds per level")
    parser.add_argument("--out", type=Path, default=HERE / "LOAD.md", help="Markdown report")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder of the bench corpora")
    parser.add_argument("--keep", action="store_true", help="keep the temporary REPOLENS_HOME (and server.log)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    script = Path(__file__).resolve().relative_to(REPO)
    command = shlex.join(["python", str(script), *(sys.argv[1:] if argv is None else argv)])
    root = ensure_corpus(args.corpora.resolve(), args.corpus).resolve()
    queries = corpus_queries(args.corpus)
    with temp_home(args.keep) as home:
        print(f"[server] starting in {home}", flush=True)
        server = start_server(home, root.parent)
        try:
            admin_headers = {"Authorization": f"Bearer {server.admin_key}"}
            with httpx.Client(base_url=server.url, headers=admin_headers, timeout=REQUEST_TIMEOUT_S) as admin:
                key = create_bench_key(admin)
                t0 = time.monotonic()
                source = index_corpus(admin, root)
                index_s = time.monotonic() - t0
                vectors = probe_search(admin, source["id"], queries[0])
            print(f"[baseline] in process, {args.seconds:.0f}s", flush=True)
            baseline = in_process_baseline(home, source["id"], queries, args.seconds)
            results = []
            for clients in CONCURRENCY_LEVELS:
                print(f"[load] {clients} clients: {WARMUP_S:.0f}s warm-up + {args.seconds:.0f}s", flush=True)
                results.append(asyncio.run(run_level(server, key, source["id"], queries, clients, args.seconds)))
        finally:
            server.stop()
        attach_server_times(server.log_path, results)
        errors_seen = server_errors(server.log_path)
    info = RunInfo(command, args.corpus, count_files(root), source, len(queries), args.seconds, index_s, vectors)
    print()
    print(f"{machine_line()}; commit {git_commit()}")
    print(
        f"corpus {args.corpus}: {source.get('files')} files, {source.get('artifacts')} artifacts; embedder "
        f"{baseline.embedder}; vectors {vectors.get('vectorsReady')}/{vectors.get('vectorsTotal')}"
    )
    print("\n".join(table_lines(results, baseline)))
    print(target_note(results))
    for line in errors_seen[:10]:
        print(f"server error: {line[:300]}")
    args.out.write_text("\n".join(report_lines(info, results, baseline, errors_seen)) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
