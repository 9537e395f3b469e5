"""The user's first hour, from a plain install: run by .ci/run before the test suite.

A green test suite once hid a server that could not start after ``pip install .`` (the suite
installs ``.[test]``, which brought a runtime dependency along). So this walks the user's path
with nothing but what a plain install brings, using only the standard library itself:

1. build a wheel from the checkout and install it, with no extras, into a fresh venv;
2. run the README's quick-start command exactly as written, in a fresh clone of the checkout;
3. start ``repolens serve`` from the wheel's venv on the index the quick start made, and call
   ``/health``, a search, ``/v1/models`` and MCP ``tools/list`` over HTTP;
4. MCP ``tools/list`` over stdio (``repolens mcp``) and ``repolens ask`` in retrieval-only mode.

Any failure exits non-zero with what failed. Usage: ``python3 .ci/smoke.py`` from the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEP_TIMEOUT_S = 900  # one install or the quick start's first index on a cold 2-core machine
SERVER_START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 60
STDIO_TIMEOUT_S = 180  # `repolens mcp` opens the index and the embedder before its first answer
MCP_PROTOCOL_VERSION = "2025-06-18"
SAMPLE_QUERY = "where are search results ranked"


class SmokeFailure(Exception):
    """A step of the user's path failed."""


def step(title: str) -> None:
    print(f"\n== smoke: {title}", flush=True)


def run(cmd: list[str] | str, *, cwd: Path, env: dict[str, str], shell: bool = False) -> str:
    """Run a command, echo its output, fail on a non-zero exit."""
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    print(f"$ {shown}", flush=True)
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        shell=shell,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        executable="/bin/bash" if shell else None,
    )
    output = done.stdout + done.stderr
    print(output[-4000:], flush=True)
    if done.returncode != 0:
        raise SmokeFailure(f"{shown!r} exited {done.returncode}")
    return done.stdout


def quick_start_command() -> str:
    """The README's first quick-start command, as written (the line after ``# 1.``)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S)
    if block is None:
        raise SmokeFailure("README.md has no quick start sh block")
    lines = block.group(1).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# 1.") and i + 1 < len(lines):
            return lines[i + 1].strip()
    raise SmokeFailure("README.md's quick start has no '# 1.' command")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, *, key: str = "", body: Any = None, accept: str = "application/json") -> tuple[int, str]:
    """One request; the status and the body text (errors included)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", accept)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise SmokeFailure(what)
    print(f"ok: {what}", flush=True)


def mcp_messages() -> list[dict[str, Any]]:
    """initialize, initialized, tools/list: what any MCP client sends first."""
    return [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "repolens-smoke", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]


def tool_names(result: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in result.get("result", {}).get("tools", [])}


def sse_json(body: str) -> dict[str, Any]:
    """The JSON-RPC message in an SSE (or plain JSON) response body."""
    for line in body.splitlines():
        if line.startswith("data:") and line[5:].strip():
            return dict(json.loads(line[5:]))
    return dict(json.loads(body))


def check_server(venv: Path, home: Path, env: dict[str, str]) -> None:
    step("repolens serve from the plain install")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(venv / "bin" / "repolens"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        key = server.stdout.readline().strip()
        expect(key.startswith("ca_"), "serve printed the admin key on its first start")
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise SmokeFailure(f"serve exited {server.returncode}: {server.stderr.read() if server.stderr else ''}")
            try:
                status, body = http("GET", f"{base}/health")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SmokeFailure("serve did not answer /health in time")
            time.sleep(0.3)
        expect(json.loads(body).get("status") == "healthy", f"/health answered {body}")
        status, body = http("GET", f"{base}/api/search?Query={SAMPLE_QUERY.replace(' ', '%20')}", key=key)
        expect(status == 200 and len(json.loads(body).get("results", [])) > 0, f"GET /api/search answered {status}")
        status, body = http("GET", f"{base}/v1/models", key=key)
        expect(status == 200 and json.loads(body)["data"], f"GET /v1/models answered {status}")
        # urllib follows / -> /ui/ -> /ui/search -> the sign-in page: the templates and assets are in the wheel
        status, body = http("GET", f"{base}/", accept="text/html")
        expect(status == 200 and 'name="key"' in body, f"the web UI's sign-in page answered {status}")
        status, body = http("GET", f"{base}/ui/static/app.js", accept="*/*")
        expect(status == 200 and "setupSearch" in body, f"the web UI's script answered {status}")
        session: dict[str, Any] = {}
        for message in mcp_messages():
            status, body = http("POST", f"{base}/mcp", key=key, body=message, accept="application/json, text/event-stream")
            if "id" in message:
                session = sse_json(body)
                expect(status == 200 and "error" not in session, f"MCP over HTTP {message['method']} answered {status}")
        expect("semantic_search" in tool_names(session), "MCP over HTTP lists semantic_search")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise SmokeFailure("serve did not stop on SIGTERM within 30 s") from None


def check_stdio(venv: Path, env: dict[str, str]) -> None:
    step("repolens mcp over stdio")
    # A client keeps stdin open while it waits for answers: a server may stop reading at end of
    # input before it has answered, so the messages go one by one and stdin closes at the end.
    server = subprocess.Popen(
        [str(venv / "bin" / "repolens"), "mcp"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    replies: dict[int, dict[str, Any]] = {}
    reader = threading.Thread(target=_read_replies, args=(server.stdout, replies), daemon=True)
    reader.start()
    deadline = time.monotonic() + STDIO_TIMEOUT_S
    for message in mcp_messages():
        server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()
        while "id" in message and message["id"] not in replies and time.monotonic() < deadline:
            time.sleep(0.1)
    listing = replies.get(2, {})
    server.stdin.close()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
    if not tool_names(listing):
        print(server.stderr.read()[-4000:] if server.stderr else "")
    expect("semantic_search" in tool_names(listing), "MCP over stdio lists semantic_search")


def _read_replies(stream: Any, replies: dict[int, dict[str, Any]]) -> None:
    for line in stream:
        if line.strip():
            message = json.loads(line)
            if "id" in message:
                replies[int(message["id"])] = message


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="repolens-smoke-"))
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPOLENS_", "VIRTUAL_ENV", "PYTHON"))}
    env["REPOLENS_HOME"] = str(home)
    try:
        step("a wheel from the checkout, installed with no extras into a fresh venv")
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "dist"), str(REPO)],
            cwd=work,
            env=env,
        )
        wheel = next((work / "dist").glob("repolens-*.whl"))
        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=env)
        run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=work, env=env)

        step("the README's quick start, exactly as written, in a fresh clone")
        checkout = work / "repolens"
        run(["git", "clone", "--quiet", str(REPO), str(checkout)], cwd=work, env=env)
        command = quick_start_command()
        output = run(command, cwd=checkout, env=env, shell=True)
        expect("Retrieval-only answer" in output, "the quick start ended with a retrieval-only sample answer")

        check_server(venv, home, env)
        check_stdio(venv, env)

        step("repolens ask, retrieval-only")
        answer = json.loads(run([str(venv / "bin" / "repolens"), "ask", SAMPLE_QUERY, "--new", "--json"], cwd=work, env=env))
        expect(answer["mode"] == "retrieval-only" and answer["citations"], "ask answered retrieval-only with citations")
    except (SmokeFailure, subprocess.TimeoutExpired, StopIteration, KeyError, ValueError) as exc:
        print(f"\nsmoke FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nsmoke: the user's path works from a plain install", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
