"""A real ``repolens serve`` process on 127.0.0.1 for API tests, and a client for it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its URL, the admin key it printed, and its process."""

    url: str
    admin_key: str
    process: subprocess.Popen[str]
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client that sends ``key`` (the admin key by default) as a Bearer token."""
        token = self.admin_key if key is None else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def _close_pipe(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close_pipe()

    def stop(self) -> None:
        """A graceful stop (SIGTERM)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._close_pipe()


def server_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a test server: its own data dir, the hash embedder, loopback git allowed."""
    return {
        **os.environ,
        "REPOLENS_HOME": str(home),
        "REPOLENS_EMBEDDER": "hash",
        "REPOLENS_GIT_SCHEMES": "https,http",
        "REPOLENS_GIT_ALLOW_HOSTS": "127.0.0.1",
        **(extra or {}),
    }


def start_server(
    home: Path, *, env: dict[str, str] | None = None, admin_key: str = "", stderr: IO[str] | None = None
) -> Server:
    """Start ``repolens serve`` and wait until it answers; read the admin key it prints (its
    stderr, the JSON log, goes to ``stderr`` when given)."""
    port = free_port()
    full_env = server_env(home, env)
    exe = Path(sys.executable).with_name("repolens")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
    process = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--log-level", "warning"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=stderr or subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    key = admin_key
    if not key:
        assert process.stdout is not None
        key = process.stdout.readline().strip()
        assert key.startswith("ca_"), f"server printed no admin key: {key!r}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return Server(url, key, process, home, full_env)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not become ready")


@contextmanager
def running_server(home: Path, *, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server for the length of a ``with`` block."""
    server = start_server(home, env=env)
    try:
        yield server
    finally:
        server.stop()


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = 120) -> dict[str, Any]:
    """Poll a job until it is Ready or Failed; return its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("Ready", "Failed"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


@contextmanager
def signed_in_client(server: Server, key: str | None = None) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client holding a session, and the session's CSRF token."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, _sign_in_client(client, server, key)


def _sign_in_client(client: httpx.Client, server: Server, key: str | None) -> str:
    login = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token
    done = client.post("/ui/login", data={"csrf": token.group(1), "key": key or server.admin_key, "next": "/ui/sources"})
    assert done.status_code == 303 and done.headers["location"] == "/ui/sources", done.text
    page = client.get("/ui/sources")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    return csrf.group(1)
