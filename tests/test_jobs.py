"""Durable indexing jobs: progress over the API, resume after kill -9, search during a refresh."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import commit_tree, write_tree
from repolens.storage.sqlite.store import SqliteStore
from server import server_env, start_server, wait_for_job

N_FILES = 4000  # enough work (a few seconds) to kill the server in the middle of it


def _big_repo(root: Path, n: int, *, variant: str = "") -> None:
    files = {
        f"pkg/mod{i // 100:03d}/file{i:05d}.py": (
            f'"""Module number {i}{variant}."""\n\n\n'
            f"def compute_value_{i}(x: int) -> int:\n"
            f'    """Return x plus {i}{variant}."""\n'
            f"    return x + {i}\n\n\n"
            f"class Holder{i}:\n"
            f"    def get(self) -> int:\n"
            f"        return compute_value_{i}(1)\n"
        )
        for i in range(n)
    }
    files["pkg/special.py"] = "def zebra_crossing_guard():\n    return 'stripes'\n"
    write_tree(root, files)


def _poll_until(client: httpx.Client, job_id: str, phases: set[str], timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["phase"] in phases or job["state"] in ("Ready", "Failed"):
            return dict(job)
        time.sleep(0.02)
    raise AssertionError("job never reached the phase")


def test_a_job_killed_with_its_server_resumes_and_completes(tmp_path: Path) -> None:
    """kill -9 the server mid-job; on restart the job runs again and the index is complete."""
    allowed = tmp_path / "allowed"
    repo = allowed / "big"
    _big_repo(repo, N_FILES)
    commit_tree(repo, {}, message="big")
    env = {"REPOLENS_ALLOWED_ROOTS": str(allowed)}
    server = start_server(tmp_path / "home", env=env)
    try:
        with server.client() as c:
            made = c.post("/api/datasources", json={"path": str(repo)}).json()
            job_id, source_id = made["job"]["id"], made["dataSource"]["id"]
            seen = _poll_until(c, job_id, {"parse", "write", "vectors"})
            assert seen["state"] == "Processing", seen
            assert 0 <= float(str(seen["percent"])) < 100
    finally:
        server.kill()
    store = SqliteStore(tmp_path / "home" / "repolens.db")
    interrupted = store.get_job(job_id)
    store.close()
    assert interrupted is not None and interrupted.state == "Processing"

    restarted = start_server(tmp_path / "home", env=env, admin_key=server.admin_key)
    try:
        with restarted.client() as c:
            job = wait_for_job(c, job_id, timeout=300)
            assert job["state"] == "Ready", job
            assert job["attempts"] >= 2
            source = c.get(f"/api/datasources/{source_id}").json()
            assert source["state"] == "Ready" and source["files"] == N_FILES + 1
            hit = c.get("/api/search", params={"Query": "zebra crossing guard"}).json()["results"][0]
            assert hit["identifier"] == "big::pkg/special.py::zebra_crossing_guard"
            last = c.post("/api/search/artifacts", json={"identifiers": [f"big::pkg/mod039/file{N_FILES - 1:05d}.py"]})
            assert last.json()["artifacts"][0]["found"] is True
    finally:
        restarted.stop()


def test_search_answers_from_the_last_good_index_during_a_refresh(tmp_path: Path) -> None:
    """While a re-sync rewrites thousands of files, every search answers and the source stays Ready."""
    allowed = tmp_path / "allowed"
    repo = allowed / "big"
    _big_repo(repo, N_FILES // 2)
    env = {"REPOLENS_ALLOWED_ROOTS": str(allowed)}
    server = start_server(tmp_path / "home", env=env)
    try:
        with server.client() as c:
            made = c.post("/api/datasources", json={"path": str(repo)}).json()
            assert wait_for_job(c, made["job"]["id"])["state"] == "Ready"
            _big_repo(repo, N_FILES // 2, variant=" (edited)")
            job = c.post(f"/api/datasources/{made['dataSource']['id']}/sync").json()
            answered = 0
            states = set()
            while True:
                r = c.get("/api/search", params={"Query": "zebra_crossing_guard", "Names": "big"})
                assert r.status_code == 200, r.text
                assert r.json()["results"][0]["identifier"] == "big::pkg/special.py::zebra_crossing_guard"
                states.add(c.get(f"/api/datasources/{made['dataSource']['id']}").json()["state"])
                answered += 1
                current = c.get(f"/api/jobs/{job['id']}").json()
                if current["state"] in ("Ready", "Failed"):
                    break
            assert current["state"] == "Ready" and answered > 1
            assert states == {"Ready"}
            edited = c.get("/api/search/grep", params={"Query": "(edited)", "Names": "big", "MaxResults": 5}).json()
            assert edited["results"]
    finally:
        server.stop()


def test_job_progress_counts_files_then_vector_units_and_is_100_only_when_done(tmp_path: Path) -> None:
    """GET /api/jobs/{id}: files in the file phases, units in the vectors phase, 100 % only when Ready."""
    allowed = tmp_path / "allowed"
    repo = allowed / "big"
    n_files = N_FILES // 2
    _big_repo(repo, n_files)
    commit_tree(repo, {}, message="big")
    server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)})
    try:
        with server.client() as c:
            made = c.post("/api/datasources", json={"path": str(repo)}).json()
            seen: list[dict[str, object]] = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                job = c.get(f"/api/jobs/{made['job']['id']}").json()
                seen.append(job)
                if job["state"] in ("Ready", "Failed"):
                    break
                time.sleep(0.02)
            index = c.get("/api/search", params={"Query": "compute value", "Names": "big"}).json()["index"]
    finally:
        server.stop()
    final, running = seen[-1], [j for j in seen if j["state"] == "Processing"]
    assert final["state"] == "Ready" and final["percent"] == 100.0, final
    assert running and all(float(str(j["percent"])) <= 99 for j in running)
    file_phases = [j for j in running if j["phase"] in ("read", "parse", "write")]
    assert file_phases and all(j["filesTotal"] == n_files + 1 and j["unitsDone"] is None for j in file_phases)
    vectors = [j for j in running if j["phase"] == "vectors"]
    assert vectors, [j["phase"] for j in seen]
    assert all(j["filesDone"] is None and j["unitsTotal"] == index["vectorsTotal"] for j in vectors), vectors[-1]
    assert index["vectorsTotal"] > n_files + 1  # several units per file: these are not file counts
    done = [int(str(j["unitsDone"])) for j in vectors]
    assert done == sorted(done) and done[-1] <= index["vectorsTotal"]


def test_a_server_started_with_another_embedder_re_embeds_in_the_background(tmp_path: Path) -> None:
    """Switch REPOLENS_EMBEDDER and restart: the server queues a vectors-only job on start-up, search
    answers throughout, and the API and `sources show` say which models the vectors came from."""
    allowed = tmp_path / "allowed"
    repo = allowed / "big"
    _big_repo(repo, N_FILES // 2)
    env = {"REPOLENS_ALLOWED_ROOTS": str(allowed)}
    server = start_server(tmp_path / "home", env=env)
    try:
        with server.client() as c:
            made = c.post("/api/datasources", json={"path": str(repo)}).json()
            source_id = made["dataSource"]["id"]
            assert wait_for_job(c, made["job"]["id"])["state"] == "Ready"
            vectors = c.get(f"/api/datasources/{source_id}").json()["vectors"]
            assert vectors["model"] == "hash-64" and vectors["ready"] == vectors["total"] > N_FILES // 2
            assert vectors["byModel"] == {"hash-64": vectors["total"]}
    finally:
        server.stop()

    switched = start_server(tmp_path / "home", env={**env, "REPOLENS_EMBEDDER": "static"}, admin_key=server.admin_key)
    try:
        with switched.client() as c:
            jobs = c.get(f"/api/datasources/{source_id}/jobs").json()
            assert len(jobs) == 2, "start-up queued one job"
            job_id = jobs[0]["id"]
            answered, during = 0, 0
            while True:
                current = c.get(f"/api/jobs/{job_id}").json()
                r = c.get("/api/search", params={"Query": "zebra_crossing_guard", "Names": "big"})
                assert r.status_code == 200, r.text
                assert r.json()["results"][0]["identifier"] == "big::pkg/special.py::zebra_crossing_guard"
                answered += 1
                during += current["state"] in ("New", "Processing")
                if current["state"] in ("Ready", "Failed"):
                    break
                time.sleep(0.05)
            assert current["state"] == "Ready" and current["phase"] == "done", current
            assert during >= 1, "the search answered while the re-embedding was queued or running"
            after = c.get(f"/api/datasources/{source_id}").json()
            model = after["vectors"]["model"]
            assert model.startswith("static-minilm-code-") and after["vectors"]["ready"] == after["vectors"]["total"]
            assert after["vectors"]["byModel"] == {"hash-64": after["vectors"]["total"], model: after["vectors"]["total"]}
            index = c.get("/api/search", params={"Query": "return x plus a number", "Names": "big"}).json()["index"]
            assert index["mode"] == "hybrid" and index["vectorsModel"] == model
            assert len(c.get(f"/api/datasources/{source_id}/jobs").json()) == 2, "no index job: files were not re-read"
    finally:
        switched.stop()

    restarted = start_server(tmp_path / "home", env={**env, "REPOLENS_EMBEDDER": "static"}, admin_key=server.admin_key)
    try:
        with restarted.client() as c:
            assert len(c.get(f"/api/datasources/{source_id}/jobs").json()) == 2, "nothing left to re-embed"
    finally:
        restarted.stop()
    shown = subprocess.run(
        [sys.executable, "-m", "repolens", "sources", "show", "big", "--json"],
        env=server_env(tmp_path / "home", {"REPOLENS_EMBEDDER": "static"}),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(shown.stdout)
    assert data["vectorsModel"] == model and data["vectorsByModel"][model] == data["vectorsReady"] == data["vectorsTotal"]
