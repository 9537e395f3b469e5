"""kill -9 cannot wedge indexing: parse workers die with their parent and hold no lock, a job
whose process died is retried and its source ends Ready, and a graceful stop right after a job
finished exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import commit_tree, write_tree
from server import start_server, wait_for_job

N_FILES = 3000  # a parse phase of a few seconds on two cores: time enough to kill it in the middle
ORPHAN_GRACE_S = 5.0  # parse workers must be gone this soon after their parent was killed
SECOND_RUN_TIMEOUT_S = 90.0  # the whole second index run, including the work the first never finished


def _many_files(root: Path, n: int) -> None:
    write_tree(
        root,
        {
            f"pkg/m{i // 100:03d}/f{i:05d}.py": f"def compute_{i}(x: int) -> int:\n    return x + {i}\n\n\n"
            f"class Holder{i}:\n    def get(self) -> int:\n        return compute_{i}(1)\n"
            for i in range(n)
        },
    )
    commit_tree(root, {"pkg/special.py": "def zebra_crossing_guard():\n    return 'stripes'\n"})


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """Pids this test started indirectly (parse workers): killed at the end if still alive, so a
    failing run never leaves them behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _cli(home: Path) -> tuple[list[str], dict[str, str]]:
    exe = Path(sys.executable).with_name("repolens")
    # parse workers even while other work keeps the cores busy: the test kills them
    env = {**os.environ, "REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": "none", "REPOLENS_PARSE_WORKERS": "2"}
    return [str(exe)], env


def test_a_second_index_run_completes_after_the_first_was_killed_mid_parse(tmp_path: Path, reaper: list[int]) -> None:
    """kill -9 of `repolens index` while its workers parse: they die too, and the next run finishes."""
    repo = tmp_path / "big"
    _many_files(repo, N_FILES)
    cmd, env = _cli(tmp_path / "home")
    first = subprocess.Popen(
        [*cmd, "index", str(repo), "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and first.poll() is None:
        workers = _children(first.pid)
        if len(workers) >= 2:  # the parse pool is up
            break
        time.sleep(0.02)
    assert len(workers) >= 2, "the first run never started its parse workers"
    reaper.extend(workers)
    time.sleep(0.3)  # well inside the parse phase
    first.kill()
    first.wait(10)
    gone_by = time.monotonic() + ORPHAN_GRACE_S
    while time.monotonic() < gone_by and any(_alive(p) for p in workers):
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers), "parse workers outlived their killed parent"

    second = subprocess.run(
        [*cmd, "index", str(repo), "--json"], env=env, capture_output=True, text=True, timeout=SECOND_RUN_TIMEOUT_S
    )
    assert second.returncode == 0, second.stderr
    assert '"filesSeen": 3001' in second.stdout


def test_a_job_whose_process_is_killed_is_retried_and_its_source_ends_ready(tmp_path: Path, reaper: list[int]) -> None:
    """kill -9 of the job's child process inside a real server: the job runs again, the source is Ready."""
    allowed = tmp_path / "allowed"
    repo = allowed / "big"
    _many_files(repo, N_FILES)
    server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)})
    try:
        with server.client() as c:
            made = c.post("/api/datasources", json={"path": str(repo)}).json()
            job_id, source_id = made["job"]["id"], made["dataSource"]["id"]
            child = _job_child_in_phase(c, server.process.pid, job_id, "parse")
            reaper.extend(_children(child))
            os.kill(child, signal.SIGKILL)
            job = wait_for_job(c, job_id, timeout=180)
            assert job["state"] == "Ready", job
            assert job["attempts"] == 2, job
            source = c.get(f"/api/datasources/{source_id}").json()
            assert source["state"] == "Ready" and source["files"] == N_FILES + 1, source
            hit = c.get("/api/search", params={"Query": "zebra crossing guard"}).json()["results"][0]
            assert hit["identifier"] == "big::pkg/special.py::zebra_crossing_guard"
            again = c.post(f"/api/datasources/{source_id}/sync").json()
            assert wait_for_job(c, again["id"], timeout=60)["state"] == "Ready"
    finally:
        server.stop()


def _job_child_in_phase(c: httpx.Client, server_pid: int, job_id: str, *phases: str) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        assert job["state"] in ("New", "Processing"), job
        if job["phase"] in phases:
            for pid in _children(server_pid):
                if "repolens.indexing.jobs" in _cmdline(pid):
                    return pid
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {phases}")


def test_a_job_process_told_to_stop_after_its_job_finished_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM reaching the job's process after its job turned Ready (a server stopping at that
    moment) does not interrupt its exit: no traceback, and the job stays Ready."""
    allowed = tmp_path / "allowed"
    _many_files(allowed / "small", 200)  # about a second of work: time to find its process
    log = tmp_path / "server.log"
    with open(log, "w") as stderr:
        server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)}, stderr=stderr)
        try:
            with server.client() as c:
                job = c.post("/api/datasources", json={"path": str(allowed / "small")}).json()["job"]
                child = _job_child_in_phase(c, server.process.pid, job["id"], "read", "parse", "write")
                deadline = time.monotonic() + 60
                while (state := c.get(f"/api/jobs/{job['id']}").json()["state"]) in ("New", "Processing"):
                    assert time.monotonic() < deadline, "the job never finished"
                    # no sleep: signal as soon as possible after the outcome, inside the child's exit
                while _alive(child) and "repolens.indexing.jobs" in _cmdline(child):
                    os.kill(child, signal.SIGTERM)  # as JobRunner.stop() would, at any moment of the exit
                    time.sleep(0.001)
                assert state == "Ready"
                time.sleep(1.0)  # the child's exit, and anything it prints
                assert c.get(f"/api/jobs/{job['id']}").json()["state"] == "Ready"
        finally:
            server.stop()
    text = log.read_text()
    assert "_Orphaned" not in text and "Traceback" not in text, text
