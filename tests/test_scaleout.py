"""The scale-out shape on one PostgreSQL: two API replicas that only serve and three
``repolens worker`` processes that only index. Every job runs exactly once; kill -9 of a worker
mid-job and of a replica mid-request lose nothing. A workflow execution whose worker is killed
mid fan-out resumes on another worker from its last committed state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import psycopg
import pytest

from conftest import commit_tree, write_tree
from pgcluster import PgCluster
from server import Server, start_server, wait_for_job

LEASE_S = 4  # short, so the killed worker's job comes back within the test
N_SMALL = 6
N_BIG_FILES = 3000  # a few seconds of work: long enough to kill its worker in the middle


def _small(i: int) -> dict[str, str]:
    return {f"pkg/mod{i}.py": f"def handler_{i}(x: int) -> int:\n    '''Handle case {i}.'''\n    return x + {i}\n"}


def _big(root: Path) -> None:
    write_tree(
        root,
        {
            f"big/m{i // 100:03d}/f{i:05d}.py": f"def compute_{i}(x: int) -> int:\n    return x * {i}\n\n\n"
            f"class Box{i}:\n    def get(self) -> int:\n        return compute_{i}(2)\n"
            for i in range(N_BIG_FILES)
        }
        | {"big/special.py": "def zebra_crossing_guard() -> str:\n    return 'stripes'\n"},
    )
    commit_tree(root, {}, message="big")


class Workers:
    """``repolens worker`` processes."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[BinaryIO] = []

    def start(self, n: int) -> None:
        exe = Path(sys.executable).with_name("repolens")
        for _ in range(n):
            log = open(self.log_dir / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115  # closed in stop()
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen([str(exe), "worker", "--log-level", "info"], env=self.env, stdout=log, stderr=log)
            )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in self.logs:
            log.close()


@pytest.fixture
def cluster_env(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    url = pg_cluster.new_database()
    env = {
        "REPOLENS_DATABASE_URL": url,
        "REPOLENS_JOB_LEASE": str(LEASE_S),
        "REPOLENS_ALLOWED_ROOTS": str(tmp_path / "repos"),
    }
    yield url, env


def _job_rows(url: str) -> dict[str, tuple[str, int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT public_id, state, attempts, worker FROM jobs").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_replicas_and_workers_share_one_database_and_survive_kill_9(
    cluster_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = cluster_env
    repos = tmp_path / "repos"
    for i in range(N_SMALL):
        commit_tree(repos / f"small{i}", _small(i))
    _big(repos / "big")
    serve_only = {**env, "REPOLENS_INDEX_WORKERS": "0"}
    replicas: list[Server] = []
    workers = Workers(
        {**os.environ, **env, "REPOLENS_HOME": str(tmp_path / "home-w"), "REPOLENS_EMBEDDER": "hash"}, tmp_path
    )
    try:
        a = start_server(tmp_path / "home-a", env=serve_only)
        replicas.append(a)
        b = start_server(tmp_path / "home-b", env=serve_only, admin_key=a.admin_key)  # one organization, one key
        replicas.append(b)
        workers.start(3)
        with a.client() as ca, b.client() as cb:
            # The big repository first: find the worker running it and kill it mid-job.
            big = ca.post("/api/datasources", json={"path": str(repos / "big")})
            assert big.status_code == 202, big.text
            big_job = big.json()["job"]["id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state, _, worker = _job_rows(url)[big_job]
                job = ca.get(f"/api/jobs/{big_job}").json()
                if state == "Processing" and job["phase"] in ("parse", "write"):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the big job never started parsing")
            victim_pid = int(worker.rsplit("-", 1)[1])
            assert victim_pid in {p.pid for p in workers.procs}
            os.kill(victim_pid, signal.SIGKILL)

            # Meanwhile both replicas take new repositories; the jobs land on the live workers.
            jobs = []
            for i in range(N_SMALL):
                client = ca if i % 2 == 0 else cb
                made = client.post("/api/datasources", json={"path": str(repos / f"small{i}")})
                assert made.status_code == 202, made.text
                jobs.append(made.json()["job"]["id"])

            # A key's hourly quota holds across replicas: 4 requests, alternating, on a plan of 3.
            token = ca.post(
                "/api/admin/keys", json={"name": "tiny", "plan": "custom", "requestsPerHour": 3, "concurrency": 2}
            ).json()["key"]
            seen = []
            for i in range(4):
                with (a if i % 2 == 0 else b).client(key=token) as limited:
                    seen.append(limited.get("/api/datasources/ready"))
            assert [r.status_code for r in seen] == [200, 200, 200, 429]
            assert [r.headers["X-RateLimit-Remaining"] for r in seen[:3]] == ["2", "1", "0"]

            # kill -9 replica B in the middle of a stream of requests to it.
            errors: list[BaseException] = []

            def hammer() -> None:
                try:
                    for _ in range(10_000):
                        cb.post("/api/search", json={"query": "handler", "names": ["small0"]})
                except httpx.HTTPError as exc:
                    errors.append(exc)

            thread = threading.Thread(target=hammer)
            thread.start()
            time.sleep(0.5)
            b.kill()
            thread.join(30)
            assert errors, "the requests to the killed replica should have failed"
            replicas.remove(b)

            # Replica A sees every job through to the end; nothing was lost.
            for job_id in [*jobs, big_job]:
                done = wait_for_job(ca, job_id, timeout=180)
                assert done["state"] == "Ready", done
            rows = _job_rows(url)
            assert len(rows) == N_SMALL + 1  # no job was duplicated
            assert all(attempts == 1 for jid, (_, attempts, _) in rows.items() if jid != big_job)
            assert rows[big_job][1] == 2 and rows[big_job][2] != worker  # ran again, on another worker
            listed = {d["name"]: d for d in ca.get("/api/datasources/all").json()}
            assert {f"small{i}" for i in range(N_SMALL)} | {"big"} <= set(listed)
            found = ca.post("/api/search", json={"query": "zebra_crossing_guard", "names": ["big"]}).json()
            assert found["results"][0]["identifier"] == "big::big/special.py::zebra_crossing_guard"
            with psycopg.connect(url) as conn:
                files = conn.execute(
                    "SELECT count(*) FROM files f JOIN sources s ON s.id = f.source_id WHERE s.name = 'big'"
                ).fetchone()
            assert files is not None and files[0] == N_BIG_FILES + 1
            for i in range(N_SMALL):
                hit = ca.post("/api/search", json={"query": f"handler_{i}", "names": [f"small{i}"]}).json()
                assert hit["results"][0]["identifier"] == f"small{i}::pkg/mod{i}.py::handler_{i}"
    finally:
        workers.stop()
        for server in replicas:
            server.stop()


def test_a_database_outage_is_a_503_in_the_callers_format_and_the_replica_recovers(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = pg_cluster.new_database()
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    server = start_server(tmp_path / "home", env={"REPOLENS_DATABASE_URL": url, "REPOLENS_INDEX_WORKERS": "0"})
    admin = pg_cluster.admin_url

    def outage(on: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'false' if on else 'true'}")
            if on:  # and drop the replica's open connections, so it has to reconnect
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    try:
        with server.client() as c:
            assert c.get("/api/datasources/all").status_code == 200
            outage(True)
            for _ in range(12):  # more than the key's concurrent slots: none may leak
                down = c.get("/api/datasources/all")
                assert down.status_code == 503, down.text
                assert down.headers["content-type"].startswith("application/problem+json")
                assert "PostgreSQL" in down.json()["detail"] and "secret" not in down.text
            chat = c.post("/v1/chat/completions", json={"model": "repolens", "messages": [{"role": "user", "content": "x"}]})
            assert chat.status_code == 503 and "error" in chat.json() and chat.json()["error"]["message"]
            outage(False)
            assert c.get("/api/datasources/all").status_code == 200
    finally:
        server.stop()
        outage(False)


def test_a_failing_shared_quota_gives_back_the_concurrency_slot() -> None:
    from repolens.access.ratelimit import RateLimiter
    from repolens.errors import StorageError

    class Down:
        def take_quota(self, bucket: str, window_start: int, limit: int) -> int | None:
            raise StorageError("cannot reach PostgreSQL")

    class Up:
        def take_quota(self, bucket: str, window_start: int, limit: int) -> int | None:
            return 1

    limiter = RateLimiter(shared=Down(), bucket="api")
    for _ in range(5):  # more failures than slots
        with pytest.raises(StorageError):
            limiter.acquire("k1", per_hour=100, concurrency=2)
    limiter._shared = Up()
    assert limiter.acquire("k1", per_hour=100, concurrency=2).allowed


def test_connections_of_exited_threads_are_closed(pg_cluster: PgCluster) -> None:
    """A server's pool threads exit when idle; their connections must not pile up until
    PostgreSQL refuses new clients."""
    from repolens.storage.postgres.store import PostgresStore

    url = pg_cluster.new_database()
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    store = PostgresStore(url)
    try:
        for _ in range(4):  # bursts of short-lived threads, as a thread pool after idle periods
            burst = [threading.Thread(target=store.list_sources) for _ in range(10)]
            for t in burst:
                t.start()
            for t in burst:
                t.join()
        store.list_sources()  # one more open closes the connections of the threads that exited
        assert store.open_connections() <= 11
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
        assert row is not None and row[0] <= 11, row
    finally:
        store.close()


FAN_OUT = """\
max_concurrency: 2
assistants:
  - id: lister
    system_prompt: 'REPLY_WITH: {"colors": ["red", "SLOWLY blue"]}'
  - id: writer
    system_prompt: 'REPLY_WITH: text about {input}'
  - id: merger
    system_prompt: 'REPLY_WITH: merged'
states:
  - id: list_colors
    assistant_id: lister
    task: List two colors
    next: {state_id: describe, iter_key: colors, store_in_context: false}
  - id: describe
    assistant_id: writer
    task: Describe a color
    next: {state_id: merge}
  - id: merge
    assistant_id: merger
    task: Merge the texts
    next: {state_id: end}
"""


def test_kill_9_of_a_worker_mid_fan_out_resumes_on_another_from_the_last_commit(
    cluster_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    from llmserver import standin_llm
    from repolens.services import build_services
    from repolens.settings import Settings
    from repolens.workflows import service

    url, env = cluster_env
    with standin_llm() as (llm_url, recorder):
        llm_env = {"REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": "standin-1"}
        workers = Workers({**os.environ, **env, **llm_env, "REPOLENS_HOME": str(tmp_path / "home-w")}, tmp_path)
        core = build_services(Settings(home=tmp_path / "home-c", database_url=url))
        db = core.store
        try:
            workers.start(2)
            wf = service.create_workflow(db, name="fan", project="default", yaml_config=FAN_OUT)
            ex = service.start_execution(db, wf, user_input="go", created_by={})

            def rows() -> dict[str, tuple[str, int]]:
                return {f"{s.state_id}[{s.iteration}]": (s.status, s.runs) for s in db.states(ex.id)}

            # Kill the worker once the fast branch has committed and the slow one is mid-call.
            deadline = time.monotonic() + 90

            def slow_asked() -> bool:
                return any("SLOWLY blue" in json.dumps(r["messages"]) for r in list(recorder.requests))

            while rows().get("describe[1]", ("", 0))[0] != "Succeeded" or not slow_asked():
                assert time.monotonic() < deadline, rows()
                time.sleep(0.05)
            state, _, worker = _job_rows(url)[ex.job_id]
            assert state == "Processing"
            victim = int(worker.rsplit("-", 1)[1])
            assert victim in {p.pid for p in workers.procs}
            os.kill(victim, signal.SIGKILL)

            deadline = time.monotonic() + 120
            while (done := db.get_execution(ex.public_id)) is not None and done.status not in ("Succeeded", "Failed"):
                assert time.monotonic() < deadline, rows()
                time.sleep(0.2)
            assert done is not None and done.status == "Succeeded", (done, rows())
            assert rows() == {
                "list_colors[0]": ("Succeeded", 1),
                "describe[1]": ("Succeeded", 1),  # committed before the kill: never ran again
                "describe[2]": ("Succeeded", 2),  # in flight at the kill: ran again, committed once
                "merge[0]": ("Succeeded", 1),
            }
            assert [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)] == [
                ("list_colors", "describe"),
                ("describe", "merge"),
                ("merge", "end"),
            ]
            state, attempts, worker2 = _job_rows(url)[ex.job_id]
            assert attempts == 2 and worker2 != worker
            asked = [json.dumps(r["messages"]) for r in recorder.requests]
            assert sum("List two colors" in a for a in asked) == 1
            assert sum("Input:\\nred" in a for a in asked) == 1
            assert sum("Input:\\nSLOWLY blue" in a for a in asked) == 2
            merged = [a for a in asked if "Merge the texts" in a]
            assert len(merged) == 1 and "text about red" in merged[0]  # the join waited for both branches
            assert recorder.slow_aborted == 1  # the killed worker's model call died with it
        finally:
            workers.stop()
            core.close()
