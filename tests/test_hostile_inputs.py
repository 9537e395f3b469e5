"""Issue 14, findings 1, 5 and 6: hostile inputs against a real ``repolens serve`` on 127.0.0.1.

No regex can freeze the server (REST, tool API, MCP and the CLI); malformed git URLs, expiries
and names are 400s that leave no rows behind; an oversized chunked body is a 413; open MCP
streams do not hold a key's concurrency slots.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import MakeRepo, commit_tree, write_tree
from repolens.access.keys import KEY_PREFIX, digest
from repolens.errors import InvalidInput
from repolens.indexing.pipeline import index_source
from repolens.retrieval.grep import GREP_DEADLINE_S, grep
from repolens.services import Services, build_services
from repolens.settings import Settings
from server import Server, running_server, wait_for_job

pytestmark = pytest.mark.backends

# The regexes of the report. Each backtracks for minutes in Python's re on BAIT's line below.
REDOS = (r"(\w+\s?)+$", r"([a-z]+)*!", r"(a+)+$", r"(a|aa)+$", r"(.*a){12}$")
BAIT = 'BAIT = "' + "a" * 46 + '?"\n'
REPO = {
    "victims/strings.py": "def greet(name: str) -> str:\n    return 'hello ' + name\n\n\n" + BAIT,
}
HEALTH_BUDGET_S = 1.0  # /health must answer within this while anything else runs
ANSWER_BUDGET_S = 10.0  # a pathological regex is answered within this (on RE2: milliseconds)
CLIENT_TIMEOUT_S = 30.0  # past the answer budget, so that a hung server fails the test, not pytest
BODY_CAP_BYTES = 1_000_000  # the server's documented request body cap


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[tuple[Server, Path]]:
    """A server with the ``victims`` repository indexed; also returns the allowed root."""
    base = tmp_path_factory.mktemp("hostile")
    allowed = base / "allowed"
    commit_tree(allowed / "victims", REPO)
    with running_server(base / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)}) as server, server.client() as c:
        created = c.post("/api/datasources", json={"path": str(allowed / "victims")})
        assert created.status_code == 202, created.text
        assert wait_for_job(c, created.json()["job"]["id"])["state"] == "Ready"
        yield server, allowed


class HealthWatch:
    """Polls ``/health`` from a thread for as long as a ``with`` block runs; records every miss."""

    def __init__(self, server: Server) -> None:
        self.url = f"{server.url}/health"
        self.misses: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=HEALTH_BUDGET_S) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                    if status != 200:
                        self.misses.append(f"status {status}")
                except httpx.HTTPError as exc:
                    self.misses.append(f"{type(exc).__name__} after {time.monotonic() - started:.1f}s")
                self.polls += 1
                self._stop.wait(0.1)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # and right after
        self._stop.set()
        self._thread.join(CLIENT_TIMEOUT_S)


def took(started: float) -> float:
    """Seconds since ``started`` (a ``time.monotonic()`` value)."""
    return time.monotonic() - started


def mcp_call(server: Server, name: str, args: dict[str, Any], key: str | None = None) -> tuple[bool, str]:
    """One MCP tool call over /mcp with the SDK's client: (is_error, text)."""
    out: list[tuple[bool, str]] = []

    async def main() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key or server.admin_key}"})
        with anyio.fail_after(CLIENT_TIMEOUT_S):
            async with http, Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
                result = await client.call_tool(name, args)
        out.append((bool(result.is_error), "".join(getattr(b, "text", "") for b in result.content)))

    anyio.run(main)
    return out[0]


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``repolens`` command on the server's data dir (and database)."""
    exe = Path(sys.executable).with_name("repolens")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
    return subprocess.run([*cmd, *args], env=server.env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)


# -- finding 1: regexes -------------------------------------------------------------------------


def test_pathological_regexes_are_answered_promptly_while_health_keeps_answering(world: tuple[Server, Path]) -> None:
    """Each regex of the report, over REST, the tool API and MCP: a prompt 200, /health within 1 s."""
    server, _ = world
    with HealthWatch(server) as watch, server.client() as c:
        for pattern in REDOS:
            started = time.monotonic()
            rest = c.get("/api/search/grep", params={"Query": pattern, "Regex": "true"})
            assert rest.status_code == 200, rest.text
            assert took(started) < ANSWER_BUDGET_S, (pattern, took(started))
            started = time.monotonic()
            tool = c.post("/api/tools/grep_search", json={"query": pattern, "regex": True})
            assert tool.status_code == 200 and "error" not in tool.json()["obj"], tool.text
            assert took(started) < ANSWER_BUDGET_S, (pattern, took(started))
            started = time.monotonic()
            is_error, message = mcp_call(server, "grep_search", {"query": pattern, "regex": True})
            assert not is_error, message
            assert took(started) < ANSWER_BUDGET_S, (pattern, took(started))
    assert watch.polls > 0 and not watch.misses, watch.misses


def test_pathological_regexes_are_answered_promptly_by_the_cli(world: tuple[Server, Path]) -> None:
    """`repolens grep --regex` with each regex of the report exits 0 within the answer budget."""
    server, _ = world
    for pattern in REDOS:
        started = time.monotonic()
        result = cli(server, "grep", "--regex", pattern, "--json")
        assert result.returncode == 0, result.stderr
        assert took(started) < ANSWER_BUDGET_S, (pattern, took(started))


def test_regex_matches_keep_lines_columns_and_smart_case(world: tuple[Server, Path]) -> None:
    """On RE2 a regex still gives 1-based lines and columns, ^/$ per line, and smart case."""
    server, _ = world
    with server.client() as c:
        hits = c.get("/api/search/grep", params={"Query": r"^BAIT = \"a+", "Regex": "true"}).json()["results"]
        assert [(m["lineNumber"], m["startColumn"], m["endColumn"]) for m in hits[0]["matches"]] == [(5, 1, 55)]
        assert c.get("/api/search/grep", params={"Query": r"^bait", "Regex": "true"}).json()["results"]  # any case
        assert not c.get("/api/search/grep", params={"Query": r"^Bait", "Regex": "true"}).json()["results"]


UNSUPPORTED = (
    (r"(a)\1", "backreferences"),
    (r"(?=def)", "lookahead"),
    (r"(?<!x)def", "lookbehind"),
    (r"a++", "possessive"),
)


def test_regex_features_re2_lacks_are_refused_by_name_on_every_surface(world: tuple[Server, Path]) -> None:
    """Backreferences and lookaround: 400 problem+json, a tool error, an MCP error, CLI exit 2."""
    server, _ = world
    with server.client() as c:
        for pattern, feature in UNSUPPORTED:
            rest = c.get("/api/search/grep", params={"Query": pattern, "Regex": "true"})
            assert rest.status_code == 400 and rest.headers["content-type"].startswith("application/problem+json")
            assert feature in rest.json()["detail"] and "RE2" in rest.json()["detail"], rest.text
            tool = c.post("/api/tools/grep_search", json={"query": pattern, "regex": True}).json()
            assert feature in tool["obj"]["error"]["message"], tool
            is_error, message = mcp_call(server, "grep_search", {"query": pattern, "regex": True})
            assert is_error and message.startswith("[grep_search] Error") and feature in message, message
            result = cli(server, "grep", "--regex", pattern)
            assert result.returncode == 2 and feature in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_regex_whose_program_is_too_large_is_refused_before_it_runs(world: tuple[Server, Path]) -> None:
    """Linear time is per instruction too: a pattern compiling past the cap is a 400 saying so."""
    server, _ = world
    with server.client() as c:
        r = c.get("/api/search/grep", params={"Query": r"(?s)(.*a){1000}x", "Regex": "true"})
        assert r.status_code == 400 and "too complex" in r.json()["detail"], r.text


def test_a_search_that_outlasts_its_deadline_stops_with_an_error(make_repo: MakeRepo, services: Services) -> None:
    """grep checks its time budget between files and matches, and says how to narrow the search."""
    root = make_repo(REPO)
    index_source(services.store, services.settings, str(root), name="victims")
    sources = services.store.list_sources()
    assert grep(services.store, sources, "greet", deadline_s=GREP_DEADLINE_S)
    with pytest.raises(InvalidInput, match="stopped after 0 s"):
        grep(services.store, sources, "greet", deadline_s=0.0)


def test_a_repository_with_a_backtracking_gitignore_pattern_indexes_promptly(world: tuple[Server, Path]) -> None:
    """Ignore files are the repository author's patterns: one that backtracks in re must not stall indexing."""
    server, allowed = world
    long_name = "a" * 60 + "c.py"
    # A plain folder, not a git repository: git's own wildmatch backtracks on this pattern too
    # (``git add`` in such a folder spins), and git is not what is under test here.
    write_tree(
        allowed / "ignores", {".gitignore": "*".join("a" * 12) + "*b\n*.log\n", long_name: "X = 1\n", "debug.log": "noise\n"}
    )
    with HealthWatch(server) as watch, server.client() as c:
        created = c.post("/api/datasources", json={"path": str(allowed / "ignores")})
        assert created.status_code == 202, created.text
        assert wait_for_job(c, created.json()["job"]["id"], timeout=ANSWER_BUDGET_S * 3)["state"] == "Ready"
        tree = c.post("/api/tools/get_file_tree", json={"data_source": "ignores"}).json()["obj"]["entries"]
        paths = {e["path"] for e in tree}
        assert long_name in paths and "debug.log" not in paths, paths  # the ignore rules still apply
    assert not watch.misses, watch.misses


# -- finding 5: validated before anything is written ----------------------------------------------


def counts(c: httpx.Client) -> tuple[int, int]:
    """(data sources, keys) as the API lists them."""
    sources = c.get("/api/datasources/all")
    keys = c.get("/api/admin/keys")
    assert sources.status_code == 200 and keys.status_code == 200, (sources.text, keys.text)
    return len(sources.json()), len(keys.json())


BAD_GIT_URLS = ("https://example.com:99999/o/r", "https://example.com:-1/o/r", "https://[::1/x", "https://[zz]/r")


def test_git_urls_with_bad_ports_or_ipv6_literals_are_400_on_a_live_connection(world: tuple[Server, Path]) -> None:
    """Each URL is a 400 problem+json naming the URL; the keep-alive connection keeps serving; no row."""
    server, _ = world
    with server.client() as c:
        before = counts(c)
        for url in BAD_GIT_URLS:
            r = c.post("/api/datasources", json={"url": url})
            assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
            assert url in r.json()["detail"]
            assert c.get("/api/datasources/all").status_code == 200  # same client, same connection pool
        assert counts(c) == before


BAD_EXPIRIES: tuple[str, ...] = ("1e308", '"NaN"', "NaN", '"Infinity"', '"-inf"', "-5", "0", "1e12")


def test_key_expiries_that_are_not_finite_future_times_are_refused_before_saving(world: tuple[Server, Path]) -> None:
    """1e308, NaN, infinities, the past and beyond year 9999 are 400s; the key listing stays a 200."""
    server, _ = world
    with server.client() as c:
        before = counts(c)
        for raw in BAD_EXPIRIES:
            body = '{"name": "expiry", "expiresAt": ' + raw + "}"
            r = c.post("/api/admin/keys", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (raw, r.status_code, r.text)
        assert counts(c) == before
        soon = c.post("/api/admin/keys", json={"name": "soon", "expiresAt": time.time() + 3600})
        assert soon.status_code == 201, soon.text
        assert counts(c) == (before[0], before[1] + 1)


def test_key_listing_survives_bad_expiries_stored_before_validation(world: tuple[Server, Path]) -> None:
    """Rows with 1e308, inf and NaN written straight to the store: the listing is 200, NaN is expired."""
    server, _ = world
    settings = Settings(home=server.home, embedder="hash", database_url=server.env.get("REPOLENS_DATABASE_URL", ""))
    services = build_services(settings)
    tokens: dict[str, str] = {}
    try:
        for label, value in (("huge", 1e308), ("inf", float("inf")), ("nan", float("nan"))):
            key_id, secret = str(secrets.randbelow(9 * 10**12) + 10**12), secrets.token_urlsafe(32)
            services.store.create_key(
                key_id=key_id,
                digest=digest(secret),
                name=f"legacy-{label}",
                role="member",
                plan="free",
                requests_per_hour=100,
                concurrency=5,
                scopes=(),
                expires_at=value,
            )
            tokens[label] = f"{KEY_PREFIX}{key_id}_{secret}"
        stored_nan = next(k for k in services.store.list_keys() if k.name == "legacy-nan").expires_at
    finally:
        services.close()
    with server.client() as c:
        listing = c.get("/api/admin/keys")
        assert listing.status_code == 200, listing.text
        shown = {k["name"]: k["expiresAt"] for k in listing.json()}
        assert shown["legacy-huge"] == shown["legacy-inf"] == "9999-12-31T23:59:59Z"
    if stored_nan is not None:  # SQLite stores NaN as NULL (no expiry); PostgreSQL keeps NaN
        with server.client(key=tokens["nan"]) as c:
            assert c.get("/api/datasources/all").status_code == 401
    with server.client(key=tokens["huge"]) as c:
        assert c.get("/api/datasources/all").status_code == 200


CONTROL_NAMES = ("nul\x00name", "esc\x1b[31mred", "bell\x07", "c1\x85line", "rtl\u202eexe.txt", "tab\tname")


def test_names_and_descriptions_with_control_characters_are_refused_before_saving(world: tuple[Server, Path]) -> None:
    """Key, repository and workspace names (and descriptions) must be printable; refusals leave no rows."""
    server, allowed = world
    with server.client() as c:
        before = counts(c)
        for name in CONTROL_NAMES:
            key = c.post("/api/admin/keys", json={"name": name})
            assert key.status_code == 400 and "printable" in key.json()["detail"], (name, key.text)
            repo = c.post("/api/datasources", json={"path": str(allowed / "victims"), "name": name})
            assert repo.status_code == 400, (name, repo.text)
            ws = c.post("/api/datasources", json={"type": "Workspace", "name": name, "repositoryIds": ["victims"]})
            assert ws.status_code == 400, (name, ws.text)
        bad_description = c.post(
            "/api/datasources",
            json={"path": str(allowed / "victims"), "name": "described", "description": "line one\nline\x00two"},
        )
        assert bad_description.status_code == 400, bad_description.text
        assert counts(c) == before


# -- finding 6: bodies and streams --------------------------------------------------------------


def raw_request(server: Server, head: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request over a plain socket; (status, headers, body) of the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S) as sock:
        # The server may answer (and close) before it has read everything sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    header_blob, _, rest = data.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def chunked(payload: bytes, size: int = 64_000) -> bytes:
    """``payload`` in HTTP/1.1 chunked transfer coding."""
    parts = [b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size]) for i in range(0, len(payload), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_cap_is_413_problem_json_like_a_sized_one(world: tuple[Server, Path]) -> None:
    """Transfer-Encoding: chunked without Content-Length: over 1 MB is 413; under it is served as usual."""
    server, _ = world
    host = server.url.removeprefix("http://")
    head = (
        f"POST /api/search HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.admin_key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    big = json.dumps({"query": "greet", "padding": "x" * (BODY_CAP_BYTES + 10_000)}).encode()
    status, headers, body = raw_request(server, head, chunked(big))
    assert status == 413, body[:300]
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    small = json.dumps({"query": "greet"}).encode()
    status, _, body = raw_request(server, head, chunked(small, size=5))
    assert status == 200, body[:300]
    assert "greet" in body.decode()


def test_open_mcp_streams_do_not_hold_a_keys_concurrency_slots(world: tuple[Server, Path]) -> None:
    """Two open GET /mcp streams on a concurrency-2 key leave it free for other requests."""
    server, _ = world
    with server.client() as admin:
        created = admin.post(
            "/api/admin/keys", json={"name": "streams", "plan": "custom", "requestsPerHour": 1000, "concurrency": 2}
        )
        assert created.status_code == 201, created.text
    key = created.json()["key"]
    stream_headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    with ExitStack() as stack:
        for _ in range(2):
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S))
            stream = stack.enter_context(client.stream("GET", "/mcp", headers=stream_headers))
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        with server.client(key=key) as c:
            for _ in range(3):
                r = c.get("/api/datasources/all")
                assert r.status_code == 200, r.text
    with server.client(key=key) as c:
        assert c.get("/api/datasources/all").status_code == 200


def test_text_with_unpaired_surrogates_is_a_400_not_a_500(world: tuple[Server, Path]) -> None:
    """JSON strings with lone surrogates (schemathesis found them 500 on PostgreSQL) are bad input everywhere."""
    server, _ = world
    body = '{"query": "area", "names": ["\\ud800x"]}'
    with server.client() as c:
        for route in ("/api/search", "/api/tools/get_file_tree", "/api/tools/semantic_search"):
            payload = body if route == "/api/search" else '{"question": "a\\udc00", "data_source": "\\ud800"}'
            answer = c.post(route, content=payload, headers={"content-type": "application/json"})
            assert answer.status_code < 500, (route, answer.status_code, answer.text)


def test_text_with_nul_characters_is_bad_input_not_a_500(world: tuple[Server, Path]) -> None:
    """U+0000 in a name or a question (schemathesis found it 500 on PostgreSQL, whose text type
    cannot hold it) is answered as bad input or as an unknown name, on every route that takes text."""
    server, _ = world
    cases = [
        ("/api/tools/codebase_consultant", {"question": "where is greet?", "data_sources": ["victims\u0000"]}),
        ("/api/tools/codebase_consultant", {"question": "where\u0000 is greet?", "data_sources": ["victims"]}),
        ("/api/tools/semantic_search", {"query": "greet", "data_sources": ["\u0000"]}),
        ("/api/search", {"query": "gre\u0000et", "names": ["victims"]}),
        ("/api/chat/completions", {"messages": [{"role": "user", "content": "hi\u0000"}], "names": ["victims"]}),
    ]
    with server.client() as c:
        for route, body in cases:
            answer = c.post(route, json=body)
            assert answer.status_code < 500, (route, body, answer.status_code, answer.text)
            if answer.status_code == 400:
                assert "NUL" in answer.text, answer.text
