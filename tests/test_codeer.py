"""Codeer's API route by route against a real server, on both backends: the envelope and the
error codes of the spec's table, knowledge bases indexed by our engine, hostile uploads and
crawl targets, key scope, whitelist mode, and durability across a restart.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from codeer_api import (
    BAD_REQUEST,
    CLIENT_NOT_ALLOWED,
    CODE,
    FAQS,
    GUIDE,
    KB,
    MAX_FILE_BYTES,
    NOT_FOUND,
    PERMISSION_DENIED,
    SERVER_ERROR,
    ZANZIBAR,
    children,
    data,
    new_kb,
    refused,
    upload,
    wait_ready,
)
from repolens import knowledge
from repolens.errors import ClientNotAllowed
from repolens.surfaces.http.codeer.errors import codeer_body
from server import Server, running_server

pytestmark = pytest.mark.backends

PAGES = {
    "/": "<html><head><title>Acme docs</title></head><body><h1>Welcome</h1><p>Start here.</p>"
    '<a href="/install">Install</a> <a href="/missing">Broken</a> <a href="https://example.invalid/x">Away</a>'
    "<script>var secret = 1;</script></body></html>",
    "/install": "<html><body><h1>Install</h1><h2>Linux</h2><p>Run the zebra-installer binary.</p></body></html>",
    "/links": '<html><body><h1>Links</h1><a href="/hop">Elsewhere</a></body></html>',
}


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hop":  # a redirect into the network, by a name that is not allowed
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/install")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        page = PAGES.get(self.path)
        body = (page or "not found").encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """A small website on 127.0.0.1."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[Server]:
    # server_env lists 127.0.0.1 in REPOLENS_GIT_ALLOW_HOSTS (the operator's own host): the
    # local site may be crawled, every other loopback or private name may not.
    home = tmp_path_factory.mktemp("codeer") / "home"
    with running_server(home, env={"REPOLENS_MAX_FILE_BYTES": str(MAX_FILE_BYTES)}) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


# -- identity, models, auth ---------------------------------------------------------------------


def test_me_carries_the_scope_the_cli_needs(client: httpx.Client) -> None:
    me = data(client.get("/api/v1/external/me"))
    profile = me["profile"]
    assert me["email"] and profile["default_workspace_id"] and profile["default_organization_id"]
    assert {"id": profile["default_workspace_id"], "name": "default"}.items() <= profile["workspaces"][0].items()
    assert profile["workspace_organization_map"][profile["default_workspace_id"]] == profile["default_organization_id"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "wrong"}, {"Authorization": "Bearer ca_1234567890123_" + "a" * 43}],
    ids=["missing", "malformed", "unknown"],
)
def test_auth_failures_are_401_with_code_10001(server: Server, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/api/v1/external/me", headers=headers)
    refused(response, 401, PERMISSION_DENIED)


def test_x_api_key_and_bearer_both_work(server: Server) -> None:
    for headers in ({"x-api-key": server.admin_key}, {"Authorization": f"Bearer {server.admin_key}"}):
        assert data(httpx.get(f"{server.url}/api/v1/llm/models", headers=headers)) == []  # no model configured


def test_error_table_route_by_route(client: httpx.Client, server: Server) -> None:
    kb = new_kb(client, "Errors")
    # 404 / 10003: unknown nodes, files, FAQs, crawl targets, routes
    for path in (f"{KB}/files/nope/content", f"{KB}/files/nope", f"{KB}/files/nope/export", f"{KB}/files/nope/download"):
        refused(client.get(path), 404, NOT_FOUND)
    refused(client.get(f"{KB}/nodes", params={"parent_id": "nope"}), 404, NOT_FOUND)
    refused(client.patch(f"{KB}/nodes/nope", json={"name": "x"}), 404, NOT_FOUND)
    refused(client.delete(f"{KB}/nodes/nope"), 404, NOT_FOUND)
    refused(client.post(f"{KB}/files:status", json={"node_ids": ["nope"]}), 404, NOT_FOUND)
    refused(client.get(f"{FAQS}/999999"), 404, NOT_FOUND)
    refused(client.post(f"{KB}/website-crawls/999999:sync", json={}), 404, NOT_FOUND)
    refused(client.get("/api/v1/external/no-such-route"), 404, NOT_FOUND)
    # 400 / 10006: malformed bodies and parameters
    refused(client.post(f"{KB}/nodes", json={"name": ""}), 400, BAD_REQUEST)
    refused(client.post(f"{KB}/nodes", content=b"{not json", headers={"Content-Type": "application/json"}), 400, BAD_REQUEST)
    refused(client.post(f"{KB}/files:status", json={"node_ids": "x"}), 400, BAD_REQUEST)
    refused(client.get(f"{KB}/nodes", params={"limit": 0}), 400, BAD_REQUEST)
    refused(client.get(FAQS, params={"limit": "many"}), 400, BAD_REQUEST)
    refused(client.get(f"{KB}/files/{kb}/content"), 400, BAD_REQUEST)  # a folder has no content
    # ids past a 64-bit row id are bad requests, not driver overflows
    refused(client.get(f"{FAQS}/{2**64}"), 400, BAD_REQUEST)
    refused(client.post(f"{KB}/website-crawls/{2**64}:sync", json={}), 400, BAD_REQUEST)
    refused(client.post(FAQS, json={"context_object_id": 2**64, "question": "x"}), 400, BAD_REQUEST)
    refused(client.get(FAQS, params={"offset": 2**64}), 400, BAD_REQUEST)
    # 409 (a conflict is the caller's to fix: 10006): a taken name
    refused(client.post(f"{KB}/nodes", json={"name": "Errors"}), 409, BAD_REQUEST)
    # 403 / 10001: an admin route with a member key
    member = _member_key(server)
    with server.client(member) as as_member:
        me = data(as_member.get("/api/v1/external/me"))
        workspace = me["profile"]["default_workspace_id"]
        refused(as_member.get(f"/api/v1/external/workspaces/{workspace}/client-whitelist"), 403, PERMISSION_DENIED)
    # 413 / 10006: a body over the cap
    refused(
        client.post(f"{KB}/nodes", content=b"x" * 1_000_001, headers={"Content-Type": "application/json"}), 413, BAD_REQUEST
    )
    # 14103 and 10005 are mapped by the same table (the whitelist refusal has no route before chats)
    assert codeer_body(403, "no", ClientNotAllowed("no"))["error_code"] == CLIENT_NOT_ALLOWED
    assert codeer_body(500, "boom")["error_code"] == SERVER_ERROR


def _member_key(server: Server, *, scopes: list[str] | None = None) -> str:
    with server.client() as admin:
        minted = admin.post("/api/admin/keys", json={"name": f"member-{time.monotonic_ns()}", "scopes": scopes or []})
        assert minted.status_code == 201, minted.text
        return str(minted.json()["key"])


# -- knowledge bases ----------------------------------------------------------------------------


def test_upload_index_search_and_read_back(client: httpx.Client) -> None:
    kb = new_kb(client, "Handbook")
    folder = data(client.post(f"{KB}/nodes", json={"name": "policies", "parent_id": kb}))
    assert folder["type"] == "FOLDER" and folder["parent_id"] == kb and not folder["is_root"]
    nodes = data(upload(client, folder["id"], {"guide.md": GUIDE.encode(), "billing.py": CODE.encode()}))["nodes"]
    assert {n["status"] for n in nodes} <= {"PENDING", "PROCESSING", "READY"}
    ids = {n["original_name"]: n["node_id"] for n in nodes}
    assert {r["status"] for r in wait_ready(client, list(ids.values()))} == {"READY"}

    listed = children(client, folder["id"])
    assert [n["name"] for n in listed] == ["billing.py", "guide.md"]
    assert all(n["type"] == "FILE" and n["status"] == "READY" for n in listed)
    (root,) = [n for n in data(client.get(f"{KB}/nodes")) if n["id"] == kb]
    assert root["children_count"] == 1 and root["type"] == "FOLDER" and root["is_root"]

    # Indexed by our engine and searchable like any source: markdown by heading, code by symbol.
    hits = client.get("/api/search", params={"Query": "deploys tuesdays", "Mode": "auto"}).json()["results"]
    assert any(h["location"]["path"] == "policies/guide.md" and "Deploys" in (h.get("snippet") or "") for h in hits), hits
    hits = client.get("/api/search", params={"Query": "settle_balance", "Mode": "auto"}).json()["results"]
    assert any(h["identifier"].endswith("policies/billing.py::Invoice.settle_balance") for h in hits), hits

    guide = ids["guide.md"]
    content = data(client.get(f"{KB}/files/{guide}/content"))
    assert content == {"node_id": guide, "status": "READY", "name": "guide.md", "content": GUIDE}
    meta = data(client.get(f"{KB}/files/{guide}"))
    stored = meta["stored_file"]
    assert stored["size_bytes"] == len(GUIDE.encode()) and stored["sha256"] == hashlib.sha256(GUIDE.encode()).hexdigest()

    download = client.get(f"{KB}/files/{guide}/download", params={"expected_snapshot_object_id": meta["snapshot_object_id"]})
    assert download.status_code == 200 and download.content == GUIDE.encode()
    assert download.headers["X-Codeer-Snapshot-Object-Id"] == str(meta["snapshot_object_id"])
    assert download.headers["Content-Length"] == str(len(GUIDE.encode()))
    refused(client.get(f"{KB}/files/{guide}/download", params={"expected_snapshot_object_id": "1"}), 409, BAD_REQUEST)


def test_faqs_attach_to_a_file_and_move_the_export_revision(client: httpx.Client) -> None:
    kb = new_kb(client, "Faq base")
    (node,) = data(upload(client, kb, {"guide.md": GUIDE.encode()}))["nodes"]
    before = data(client.get(f"{KB}/files/{node['node_id']}/export"))
    snapshot = before["metadata"]["snapshot_object_id"]
    assert before["snapshot"] == {"snapshot_object_id": snapshot, "content": GUIDE} and before["faqs"] == []

    rng = {"start_line": 5, "start_column": 0, "end_line": 7, "end_column": 10}
    faq = data(client.post(FAQS, json={"context_object_id": snapshot, "question": "When are deploys?", "ranges": [rng]}))
    assert faq["context_object_id"] == snapshot and faq["ranges"] == [rng]
    listed = client.get(FAQS, params={"context_object_id": snapshot})
    assert [f["id"] for f in data(listed)] == [faq["id"]] and listed.json()["pagination"]["total_records"] == 1
    after = data(client.get(f"{KB}/files/{node['node_id']}/export"))
    assert [f["id"] for f in after["faqs"]] == [faq["id"]] and after["export_revision"] != before["export_revision"]
    refused(
        client.get(f"{KB}/files/{node['node_id']}/export", params={"expected_export_revision": before["export_revision"]}),
        409,
        BAD_REQUEST,
    )
    assert data(client.patch(f"{FAQS}/{faq['id']}", json={"question": "Deploy day?"}))["question"] == "Deploy day?"
    refused(
        client.post(FAQS, json={"context_object_id": snapshot, "question": "x", "ranges": [{"start_line": 0}]}),
        400,
        BAD_REQUEST,
    )
    refused(client.post(FAQS, json={"context_object_id": 10**9, "question": "x"}), 404, NOT_FOUND)
    data(client.delete(f"{FAQS}/{faq['id']}"))
    refused(client.get(f"{FAQS}/{faq['id']}"), 404, NOT_FOUND)


def test_rename_and_delete_move_the_index_with_the_tree(client: httpx.Client, server: Server) -> None:
    kb = new_kb(client, "Movable")
    folder = data(client.post(f"{KB}/nodes", json={"name": "old", "parent_id": kb}))["id"]
    (node,) = data(upload(client, folder, {"zanzibar.md": ZANZIBAR.encode()}))["nodes"]
    wait_ready(client, [node["node_id"]])
    assert data(client.patch(f"{KB}/nodes/{folder}", json={"name": "new"}))["name"] == "new"
    assert wait_ready(client, [node["node_id"]])[0]["status"] == "READY"
    hits = client.get("/api/search", params={"Query": "quokka", "Mode": "auto"}).json()["results"]
    assert any(h["location"]["path"] == "new/zanzibar.md" for h in hits), hits
    assert data(client.get(f"{KB}/files/{node['node_id']}/content"))["content"] == ZANZIBAR

    data(client.delete(f"{KB}/nodes/{kb}"))
    refused(client.get(f"{KB}/files/{node['node_id']}"), 404, NOT_FOUND)
    assert all(n["id"] != kb for n in data(client.get(f"{KB}/nodes")))
    assert not list((server.home / "knowledge").glob(f"{kb}*"))
    names = [d["name"] for d in client.get("/api/datasources/all").json()]
    assert knowledge.source_name(kb) not in names


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"big.md": b"# big\n" + b"x" * MAX_FILE_BYTES}, "bytes per file"),
        ({"blob.md": b"# bin\x00\x01\x02"}, "not UTF-8 text"),
        ({"latin.txt": "caf\xe9".encode("latin-1")}, "not UTF-8 text"),
        ({"photo.png": b"\x89PNG\r\n"}, "only markdown"),
        ({"tool.exe": b"MZ"}, "only markdown"),
        ({"../escape.md": b"# up"}, "must not contain '/'"),
        ({"a/b.md": b"# nested"}, "must not contain '/'"),
        ({"..\\win.md": b"# win"}, "must not contain '/'"),
        ({".gitignore": b"*.md\n"}, "must not start with '.'"),
        ({"..": b"x"}, "must not start with '.'"),
        ({"rtl\u202egnp.md": b"# rtl"}, "printable"),
        ({"empty.md": b""}, "empty"),
        ({"ok.md": b"# fine\n", "bad.md": b"\x00\x00"}, "not UTF-8 text"),  # one bad file: none stored
    ],
    ids=[
        "oversized",
        "binary",
        "not-utf8",
        "png",
        "exe",
        "dotdot",
        "slash",
        "backslash",
        "gitignore",
        "dots",
        "rtl",
        "empty",
        "mixed",
    ],
)
def test_hostile_uploads_store_nothing(client: httpx.Client, server: Server, files: dict[str, bytes], why: str) -> None:
    kb = new_kb(client, f"Hostile {time.monotonic_ns()}")
    message = refused(upload(client, kb, files), 400, BAD_REQUEST)
    assert why in message, message
    assert children(client, kb) == []
    assert not [p for p in (server.home / "knowledge" / kb).rglob("*") if p.is_file()]
    assert not list((server.home / "knowledge").glob(".staging-*"))


def test_a_raw_nul_in_a_file_name_is_refused(client: httpx.Client, server: Server) -> None:
    # httpx escapes control characters in a file name; a hostile client need not.
    kb = new_kb(client, "Raw names")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="parent_id"\r\n\r\n{kb}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="../x\x00.md"\r\n'
        f"Content-Type: text/markdown\r\n\r\n# x\r\n--{boundary}--\r\n"
    ).encode()
    response = client.post(
        f"{KB}/files:upload", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    refused(response, 400, BAD_REQUEST)
    assert children(client, kb) == []


def test_upload_over_the_request_cap_is_413(client: httpx.Client) -> None:
    kb = new_kb(client, "Too much")
    parts = {f"f{i}.md": b"# x\n" + b"y" * (MAX_FILE_BYTES - 10) for i in range(1300)}  # ~26 MB
    refused(upload(client, kb, parts), 413, BAD_REQUEST)
    assert children(client, kb) == []


def test_a_taken_name_conflicts_and_stores_nothing_new(client: httpx.Client) -> None:
    kb = new_kb(client, "Twice")
    data(upload(client, kb, {"same.md": b"# one\n"}))
    refused(upload(client, kb, {"other.md": b"# two\n", "same.md": b"# again\n"}), 409, BAD_REQUEST)
    assert [n["name"] for n in children(client, kb)] == ["same.md"]


# -- website crawls -----------------------------------------------------------------------------


def crawled(client: httpx.Client, created: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Sync a crawl target (a queued job: the request returns at once) and wait for its run."""
    queued = data(client.post(f"{KB}/website-crawls/{created['target_id']}:sync", json={}))
    assert queued["status"] == "QUEUED", queued
    # While it is queued or running, another sync is refused rather than queued twice.
    refused(client.post(f"{KB}/website-crawls/{created['target_id']}:sync", json={}), 409, BAD_REQUEST)
    deadline = time.monotonic() + timeout
    while True:
        target: dict[str, Any] = data(client.get(f"{KB}/nodes/{created['folder_id']}/website-crawl-state"))["target"]
        if target["status"] not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
            return target
        time.sleep(0.2)


def test_crawl_a_local_site_into_an_indexed_folder(client: httpx.Client, site: str) -> None:
    created = data(
        client.post(
            f"{KB}/website-crawls", json={"start_url": f"{site}/", "folder_name": "Acme site", "crawl_config": {"limit": 5}}
        )
    )
    assert created["status"] == "IDLE" and created["latest_job"] is None
    synced = crawled(client, created)
    assert synced["status"] == "COMPLETED" and synced["latest_job"]["pages_stored"] == 2, synced
    pages = children(client, created["folder_id"])
    assert sorted(p["name"] for p in pages) == ["index.md", "install.md"]
    assert {p["source_url"] for p in pages} == {f"{site}/", f"{site}/install"}
    assert wait_ready(client, [p["id"] for p in pages])[0]["status"] == "READY"
    install = next(p for p in pages if p["name"] == "install.md")
    text = data(client.get(f"{KB}/files/{install['id']}/content"))["content"]
    assert text.startswith("# Install") and "## Linux" in text and "zebra-installer" in text
    index = next(p for p in pages if p["name"] == "index.md")
    assert "secret" not in data(client.get(f"{KB}/files/{index['id']}/content"))["content"]  # scripts dropped
    hits = client.get("/api/search", params={"Query": "zebra installer", "Mode": "auto"}).json()["results"]
    assert any(h["location"]["path"] == "install.md" for h in hits), hits
    failures = client.get(f"{KB}/website-crawl-jobs/{created['target_id']}/failures")
    assert [f["url"] for f in data(failures)] == [f"{site}/missing"]
    state = data(client.get(f"{KB}/nodes/{created['folder_id']}/website-crawl-state"))
    assert state["target"]["latest_job"]["status"] == "COMPLETED"
    # A second sync replaces the crawled pages rather than piling up copies.
    assert crawled(client, created)["latest_job"]["run"] == 2
    assert sorted(p["name"] for p in children(client, created["folder_id"])) == ["index.md", "install.md"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/",  # loopback by name: only 127.0.0.1 is the operator's listed host
        "http://[::1]:{port}/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/",
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1:{port}/",
        "-http://x/",
    ],
)
def test_crawl_targets_on_private_addresses_are_refused(client: httpx.Client, site: str, url: str) -> None:
    before = data(client.get(f"{KB}/nodes"))
    target = url.format(port=site.rsplit(":", 1)[1])
    message = refused(client.post(f"{KB}/website-crawls", json={"start_url": target}), 400, BAD_REQUEST)
    assert any(word in message for word in ("private", "only http", "credentials", "loopback", "no host")), message
    assert data(client.get(f"{KB}/nodes")) == before


def test_a_redirect_to_a_private_address_is_not_followed(client: httpx.Client, site: str) -> None:
    created = data(client.post(f"{KB}/website-crawls", json={"start_url": f"{site}/links", "folder_name": "Hop"}))
    synced = crawled(client, created)
    assert synced["latest_job"]["pages_stored"] == 1 and synced["latest_job"]["failed_count"] == 1, synced
    (failure,) = data(client.get(f"{KB}/website-crawl-jobs/{created['target_id']}/failures"))
    assert failure["url"] == f"{site}/hop" and "private, loopback" in failure["reason"], failure
    assert [p["name"] for p in children(client, created["folder_id"])] == ["links.md"]


# -- key scope, whitelist, durability -----------------------------------------------------------


def test_bases_are_visible_per_workspace_scope(client: httpx.Client, server: Server) -> None:
    kb = new_kb(client, "Shared base")
    ws = data(client.get("/api/v1/external/me"))["profile"]["default_workspace_id"]
    other = client.post("/api/datasources", json={"name": f"elsewhere-{time.monotonic_ns()}", "type": "Workspace"})
    assert other.status_code == 201, other.text
    other_id = other.json()["dataSource"]["id"]
    with server.client(_member_key(server, scopes=[other_id])) as outsider:
        assert data(outsider.get("/api/v1/external/me"))["profile"]["default_workspace_id"] == other_id
        assert all(n["id"] != kb for n in data(outsider.get(f"{KB}/nodes")))
        refused(outsider.get(f"{KB}/nodes", params={"parent_id": kb}), 404, NOT_FOUND)
        own = data(outsider.post(f"{KB}/nodes", json={"name": "Outsider base"}))
        assert own["workspace_id"] == other_id
    with server.client(_member_key(server, scopes=[ws])) as insider:
        assert any(n["id"] == kb for n in data(insider.get(f"{KB}/nodes")))
        assert all(n["id"] != own["id"] for n in data(insider.get(f"{KB}/nodes")))


def test_admins_manage_the_client_whitelist(client: httpx.Client) -> None:
    ws = data(client.get("/api/v1/external/me"))["profile"]["default_workspace_id"]
    path = f"/api/v1/external/workspaces/{ws}/client-whitelist"
    assert data(client.get(path)) == {"workspace_id": ws, "whitelist_mode": False, "external_user_ids": []}
    put = data(client.put(path, json={"enabled": True, "external_user_ids": ["user-2", "user-1", "user-1"]}))
    assert put == {"workspace_id": ws, "whitelist_mode": True, "external_user_ids": ["user-1", "user-2"]}
    assert data(client.get(path)) == put
    refused(client.put(path, json={"enabled": "yes", "external_user_ids": []}), 400, BAD_REQUEST)
    refused(client.put(path, json={"enabled": True, "external_user_ids": [1]}), 400, BAD_REQUEST)
    refused(client.get("/api/v1/external/workspaces/nope/client-whitelist"), 404, NOT_FOUND)
    data(client.put(path, json={"enabled": False, "external_user_ids": []}))
