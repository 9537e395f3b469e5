"""Run the official MCP conformance suite against repolens's ``/mcp`` endpoint.

    python conformance/run.py [--scenario NAME] [--keep]

What it does:
1. starts ``repolens serve`` on a fresh data dir and indexes this repository's ``src`` folder,
2. starts a loopback proxy that adds the server's API key to every request (the conformance
   client cannot send headers, and /mcp refuses requests without a key) and passes everything
   else, Host and Origin included, through unchanged,
3. runs ``npx @modelcontextprotocol/conformance server --url <proxy>/mcp`` (Node 22 or newer; when
   the machine's node is older, Node 22 is installed from the npm registry into a cache dir), with
   ``conformance/expected-failures.yml`` listing the scenarios that need the reference server's
   own test fixtures,
4. prints the suite's summary and exits with its exit code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from server import free_port, start_server, wait_for_job  # noqa: E402

CONFORMANCE = "@modelcontextprotocol/conformance@0.1.16"
NODE_PACKAGE = "node@22"  # the suite uses fs.globSync, which Node 20 lacks
NODE_CACHE = Path.home() / ".cache" / "repolens-conformance-node"
EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.yml")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def node_bin() -> Path:
    """A directory whose ``node`` is Node 22 or newer (npx, a node script, runs on the first node in PATH)."""
    system = shutil.which("node")
    if system:
        major = int(subprocess.run([system, "--version"], capture_output=True, text=True).stdout.strip()[1:].split(".")[0])
        if major >= 22:
            return Path(system).parent
    bin_dir = NODE_CACHE / "node_modules" / ".bin"
    if not (bin_dir / "node").exists():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", str(NODE_CACHE), NODE_PACKAGE], check=True)
    return bin_dir


class KeyProxy:
    """An ASGI app that forwards every request to ``upstream`` with ``Authorization`` added."""

    def __init__(self, upstream: str, key: str) -> None:
        self.upstream = upstream
        self.key = key

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"]
        headers.append(("authorization", f"Bearer {self.key}"))
        url = self.upstream + scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        async with httpx.AsyncClient(timeout=None) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            out = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            chunks: AsyncIterator[bytes] = response.aiter_raw()
            try:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError:
                pass  # the server ended a stream (a client went away or the run is over): end ours too
            await send({"type": "http.response.body", "body": b""})
            await response.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", help="run one scenario instead of the active suite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="repolens-conformance-"))
    source = work / "allowed" / "repolens"
    shutil.copytree(ROOT / "src" / "repolens", source, ignore=shutil.ignore_patterns("models", "__pycache__"))
    server = start_server(work / "home", env={"REPOLENS_ALLOWED_ROOTS": str(work / "allowed")})
    try:
        with server.client() as client:
            created = client.post("/api/datasources", json={"path": str(source)})
            created.raise_for_status()
            wait_for_job(client, created.json()["job"]["id"], timeout=600)
        proxy_port = free_port()
        proxy = uvicorn.Server(
            uvicorn.Config(KeyProxy(server.url, server.admin_key), host="127.0.0.1", port=proxy_port, log_level="warning")
        )
        threading.Thread(target=proxy.run, daemon=True).start()
        while not proxy.started:
            time.sleep(0.05)
        bin_dir = node_bin()
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        command = [
            "npx",
            "--yes",
            CONFORMANCE,
            "server",
            "--url",
            f"http://localhost:{proxy_port}/mcp",
            "--expected-failures",
            str(EXPECTED_FAILURES),
            "-o",
            str(work / "results"),
        ]
        if args.scenario:
            command += ["--scenario", args.scenario]
        print("$", " ".join(command), flush=True)
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
