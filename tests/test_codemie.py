"""CodeMie's own clients against a real repolens server: ``codemie-sdk-python`` 0.1.703 in a venv
of its own (Python 3.12) logs in as a local user, reads its profile, config and models, uploads
files and creates a code datasource from a git repository served on 127.0.0.1, sees it index,
lists, gets and deletes it; ``codemie-mcp-datasources`` runs as a stdio MCP server driven by the
official MCP client. Then bad input: CodeMie-shaped 401/403/404/422, a wrong password, a disabled
user, OIDC tokens with a wrong issuer, an expired one, a forged signature.

One server per storage backend (module scope): users, tokens and datasources on both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from clients import client_venv, run_python
from conftest import commit_tree, git
from gitserver import serve_git
from oidcserver import Provider, new_key, serve_oidc
from server import Server, start_server

pytestmark = pytest.mark.backends

SDK = ["codemie-sdk-python==0.1.703"]
MCP_DATASOURCES = ["codemie-mcp-datasources==0.2.0", *SDK]
PROJECT = "default"  # the organization's name: CodeMie's one project on this server
ADMIN_EMAIL, ADMIN_PASSWORD = "ada@example.com", "correct horse battery"
MEMBER_EMAIL, MEMBER_PASSWORD = "bob@example.com", "member password 1"
INDEX_TIMEOUT_S = 120


class World:
    """The module's server, the git URL it indexes, the identity provider and the client venvs."""

    def __init__(self, server: Server, git_base: str, provider: Provider) -> None:
        self.server = server
        self.git_base = git_base
        self.provider = provider
        self.api = f"{server.url}/code-assistant-api"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).with_name("repolens")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
        return subprocess.run([*cmd, *args], env=self.server.env, input=stdin, capture_output=True, text=True, timeout=120)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.api}/v1", headers=headers, timeout=60)

    def login(self, email: str, password: str) -> httpx.Response:
        with self.http() as c:
            return c.post("/local-auth/login", json={"email": email, "password": password})


@pytest.fixture(scope="module")
def world(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("codemie")
    work = commit_tree(
        root / "work",
        {
            "shapes.py": "class Circle:\n    def area(self) -> float:\n        return 3.14\n",
            "report.py": "def report() -> str:\n    return 'ok'\n",
        },
    )
    served = root / "served"
    (served / "acme").mkdir(parents=True)
    git(root, "clone", "-q", "--bare", str(work), str(served / "acme" / "shapes.git"))
    with serve_oidc() as provider, serve_git(served) as git_base:
        env = {
            "REPOLENS_OIDC_ISSUER": provider.issuer,
            "REPOLENS_OIDC_AUDIENCE": "codemie",
            "REPOLENS_CODEMIE_DEV_AUTH": "1",
        }
        server = start_server(root / "home", env=env)
        try:
            w = World(server, git_base, provider)
            for email, password, extra in (
                (ADMIN_EMAIL, ADMIN_PASSWORD, ["--admin", "--name", "Ada Lovelace"]),
                (MEMBER_EMAIL, MEMBER_PASSWORD, []),
            ):
                made = w.cli("users", "create", email, "--password-stdin", *extra, stdin=password + "\n")
                assert made.returncode == 0, made.stderr
            yield w
        finally:
            server.stop()


def sdk_script(world: World, body: str, *, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Any:
    """Run ``body`` in the SDK's venv with ``client`` logged in; the JSON it prints last."""
    prelude = f"""
import json, sys, time
from pathlib import Path
from codemie_sdk import CodeMieClient
client = CodeMieClient(auth_server_url="http://unused.invalid", auth_realm_name="unused",
                       codemie_api_domain={world.api!r}, username={email!r}, password={password!r})
"""
    out = run_python(client_venv("codemie-sdk", SDK), prelude + body, timeout=INDEX_TIMEOUT_S + 60)
    return json.loads(out.strip().splitlines()[-1])


def test_sdk_logs_in_and_reads_user_config_and_models(world: World) -> None:
    got = sdk_script(
        world,
        """
me = client.users.about_me()
models = client.llms.list()
embeddings = client.llms.list_embeddings()
projects = client.projects.list_projects()
print(json.dumps({"me": me.model_dump(), "config": client.customer_config.get_config(),
                  "applications": client.admin.list_applications(),
                  "projects": [p.name for p in projects.data],
                  "project": client.projects.get_project_detail("default").project_type,
                  "models": [m.model_dump(mode="json") for m in models],
                  "embeddings": [m.base_name for m in embeddings], "token": client.token}))
""",
    )
    me = got["me"]
    assert (me["email"], me["name"], me["is_admin"]) == (ADMIN_EMAIL, "Ada Lovelace", True)
    assert me["applications"] == [PROJECT] and me["applications_admin"] == [PROJECT]
    assert {"id": "features:datasources", "settings": {"enabled": True}} in got["config"]
    assert [m["base_name"] for m in got["models"]] == ["retrieval-only"] and got["models"][0]["default"] is True
    assert got["embeddings"] == ["hash"]
    assert got["applications"] == [PROJECT] and got["projects"] == [PROJECT] and got["project"] == "shared"
    # The token the SDK logged in with is ours: a JWT naming the user, accepted as Bearer.
    with world.http(got["token"]) as c:
        assert c.get("/user").json()["email"] == ADMIN_EMAIL


def test_sdk_creates_a_code_datasource_sees_it_index_lists_gets_and_deletes_it(world: World) -> None:
    link = f"{world.git_base}/acme/shapes.git"
    got = sdk_script(
        world,
        f"""
from codemie_sdk.models.datasource import CodeDataSourceRequest, DataSourceStatus, UpdateCodeDataSourceRequest
created = client.datasources.create(CodeDataSourceRequest(
    name="shapes", project_name={PROJECT!r}, description="Shapes service", link={link!r}, branch="main",
    index_type="code", embeddings_model="hash"))
# CodeMie answers with a message and no id: the new datasource is found by name, at once.
listed = [d for d in client.datasources.list(per_page=100) if d.name == "shapes"]
first_status = listed[0].status.value
deadline = time.monotonic() + {INDEX_TIMEOUT_S}
ds = client.datasources.get(listed[0].id)
while ds.status not in (DataSourceStatus.COMPLETED, DataSourceStatus.FAILED) and time.monotonic() < deadline:
    time.sleep(0.3)
    ds = client.datasources.get(ds.id)
done = client.datasources.list(status=DataSourceStatus.COMPLETED, projects=[{PROJECT!r}])
failed = client.datasources.list(status=DataSourceStatus.FAILED)
updated = client.datasources.update(ds.id, UpdateCodeDataSourceRequest(
    name="shapes", project_name={PROJECT!r}, description="Shapes service, v2", link={link!r}, branch="main",
    full_reindex=True))
described = client.datasources.get(ds.id).description
deleted = client.datasources.delete(ds.id)
try:
    client.datasources.get(ds.id)
    after = None
except Exception as exc:
    after = exc.response.status_code
print(json.dumps({{"created": created, "first_status": first_status, "status": ds.status.value,
    "error": ds.error_message, "name": ds.name, "type": ds.type.value, "link": ds.code.link,
    "branch": ds.code.branch, "project": ds.project_name, "files": ds.processing_info.processed_documents_count,
    "done": [d.name for d in done], "failed": [d.name for d in failed], "deleted": deleted, "after": after,
    "updated": updated, "described": described,
    "listed_after": [d.name for d in client.datasources.list()]}}))
""",
    )
    assert got["created"] == {"message": "Indexing of datasource shapes has been started in the background"}
    assert got["first_status"] in ("in_progress", "fetching", "completed")
    assert got["status"] == "completed", got["error"]
    assert (got["name"], got["type"], got["link"], got["branch"], got["project"]) == (
        "shapes",
        "code",
        link,
        "main",
        PROJECT,
    )
    assert got["files"] == 2
    assert got["done"] == ["shapes"] and got["failed"] == []
    assert "shapes" in got["updated"]["message"] and got["described"] == "Shapes service, v2"
    assert "shapes" in got["deleted"]["message"]
    assert got["after"] == 404 and got["listed_after"] == []


def test_sdk_uploads_files_and_reads_them_back(world: World, tmp_path: Path) -> None:
    note = tmp_path / "notes.md"
    note.write_text("# Design notes\nCircle.area returns pi.\n")
    got = sdk_script(
        world,
        f"""
bulk = client.files.bulk_upload([Path({str(note)!r})])
url = bulk.files[0].file_url
single = client.assistants.upload_file_to_chat(Path({str(note)!r}))
print(json.dumps({{"url": url, "back": client.files.get_file(url).decode(), "single": single}}))
""",
    )
    assert got["back"] == note.read_text()
    assert got["single"]["file_url"] and got["single"]["file_url"] != got["url"]
    # Another account does not see it: the member reads it as missing, CodeMie-shaped.
    member = world.login(MEMBER_EMAIL, MEMBER_PASSWORD).json()["access_token"]
    with world.http(member) as c:
        hidden = c.get(f"/files/{got['url']}")
        assert hidden.status_code == 404 and "no uploaded file" in hidden.json()["error"]["details"]


def test_the_dev_header_is_a_developer_only_when_the_operator_enables_it(world: World) -> None:
    """On a localhost domain without credentials the SDK sends ``Authorization: dev-codemie-user``."""
    out = run_python(
        client_venv("codemie-sdk", SDK),
        f"""
import json
from codemie_sdk import CodeMieClient
client = CodeMieClient(auth_server_url="http://unused.invalid", auth_realm_name="unused", codemie_api_domain={world.api!r})
print(json.dumps(client.users.about_me().model_dump()))
""",
    )
    me = json.loads(out.strip().splitlines()[-1])
    assert (me["user_id"], me["is_admin"]) == ("dev-codemie-user", True)


def test_mcp_datasources_server_lists_gets_and_deletes_through_repolens(world: World) -> None:
    """``codemie-mcp-datasources`` over stdio, driven by the official MCP client. Of its 7 tools,
    list/get/delete work; create POSTs (the datasource is made) and then fails client-side, as
    update and get_datasource_processing_info always do (specs/clients.md §4.4)."""
    bin_dir = client_venv("codemie-mcp-datasources", MCP_DATASOURCES)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "CODEMIE_API_DOMAIN": world.api,
        "CODEMIE_AUTH_SERVER_URL": "http://unused.invalid",
        "CODEMIE_AUTH_REALM_NAME": "unused",
        "CODEMIE_USERNAME": ADMIN_EMAIL,
        "CODEMIE_PASSWORD": ADMIN_PASSWORD,
    }
    link = f"{world.git_base}/acme/shapes.git"
    results: dict[str, Any] = {}

    async def main() -> None:
        params = StdioServerParameters(command=str(bin_dir / "codemie-mcp-datasources"), args=[], env=env)
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            results["tools"] = tools
            created = await client.call_tool(
                "create_code_datasource",
                {
                    "name": "mcpshapes",
                    "description": "made through MCP",
                    "project_name": PROJECT,
                    "repository_link": link,
                    "branch": "main",
                    "embeddings_model": "hash",
                },
            )
            results["create_error"] = created.is_error
            listed = await client.call_tool("list_datasources", {"per_page": 50})
            assert not listed.is_error, _text(listed)
            results["listed"] = _payload(listed)
            ds_id = next(d["id"] for d in results["listed"] if d["name"] == "mcpshapes")
            got = await client.call_tool("get_datasource", {"datasource_id": ds_id})
            assert not got.is_error, _text(got)
            results["got"] = _payload(got)
            gone = await client.call_tool("delete_datasource", {"datasource_id": ds_id})
            assert not gone.is_error, _text(gone)
            results["deleted"] = _payload(gone)

    anyio.run(main)
    assert {"list_datasources", "get_datasource", "delete_datasource", "create_code_datasource"} <= results["tools"]
    assert [d["name"] for d in results["listed"]] == ["mcpshapes"]
    assert results["listed"][0]["project"] == PROJECT and results["listed"][0]["type"] == "code"
    assert results["got"]["name"] == "mcpshapes" and results["got"]["code"]["link"] == link
    assert "mcpshapes" in json.dumps(results["deleted"])
    with world.http(world.login(ADMIN_EMAIL, ADMIN_PASSWORD).json()["access_token"]) as c:
        assert [d["repo_name"] for d in c.get("/index").json()] == []


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def _payload(result: Any) -> Any:
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        return structured.get("result", structured) if isinstance(structured, dict) else structured
    return json.loads(_text(result))


# -- bad input ------------------------------------------------------------------------------------


def _codemie_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"message", "details", "help"} <= set(body["error"]), body
    return dict(body["error"])


def test_refusals_are_codemie_shaped(world: World) -> None:
    admin = world.login(ADMIN_EMAIL, ADMIN_PASSWORD).json()["access_token"]
    member = world.login(MEMBER_EMAIL, MEMBER_PASSWORD).json()["access_token"]
    with world.http() as anonymous:
        err = _codemie_error(anonymous.get("/user"), 401)
        assert err["message"] == "Unauthorized"
    with world.http("not-a-token") as c:
        _codemie_error(c.get("/index"), 401)
    with world.http(member) as c:
        body = {"name": "nope", "description": "x", "link": f"{world.git_base}/acme/shapes.git", "branch": "main"}
        err = _codemie_error(c.post(f"/application/{PROJECT}/index", json=body), 403)
        assert "admin" in err["details"]
        _codemie_error(c.get("/index/0123456789abcdef01234567"), 404)
    with world.http(admin) as c:
        invalid = _codemie_error(c.post(f"/application/{PROJECT}/index", json={"name": "x"}), 422)
        assert {"link"} <= {d["loc"][-1] for d in invalid["details"]}
        _codemie_error(c.post(f"/application/{PROJECT}/index", json="not an object"), 422)
        wrong_type = {"name": "summ", "description": "x", "link": "https://example.com/a.git", "indexType": "summary"}
        assert "indexType" in _codemie_error(c.post(f"/application/{PROJECT}/index", json=wrong_type), 400)["details"]
        elsewhere = {"name": "else", "description": "x", "link": "https://example.com/a.git"}
        _codemie_error(c.post("/application/another-project/index", json=elsewhere), 404)
        _codemie_error(c.get("/index", params={"filters": "{not json"}), 400)
        _codemie_error(c.get("/files/ffffffffffffffffffffffff"), 404)
        _codemie_error(c.get("/no/such/route"), 404)
        jira = c.post("/index/knowledge_base/jira", json={"name": "tickets", "jql": "project = X"})
        assert "not supported" in _codemie_error(jira, 400)["details"]
        assert c.get("/index").json() == []  # nothing refused was half-written


def test_wrong_password_and_disabled_user_are_refused(world: World) -> None:
    err = _codemie_error(world.login(ADMIN_EMAIL, "not the password"), 401)
    assert err["details"] == "Invalid email or password"
    assert _codemie_error(world.login("nobody@example.com", "whatever1"), 401) == err  # no enumeration
    _codemie_error(world.login("", ""), 422)
    made = world.cli("users", "create", "carol@example.com", "--password-stdin", stdin="carol password\n")
    assert made.returncode == 0, made.stderr
    token = world.login("carol@example.com", "carol password").json()["access_token"]
    with world.http(token) as c:
        assert c.get("/user").status_code == 200
        assert world.cli("users", "disable", "carol@example.com").returncode == 0
        _codemie_error(c.get("/user"), 401)  # her token stops at once
    err = _codemie_error(world.login("carol@example.com", "carol password"), 403)
    assert "disabled" in err["details"]
    listed = json.loads(world.cli("users", "list", "--json").stdout)
    carol = next(u for u in listed if u["email"] == "carol@example.com")
    assert carol["disabled"] is True and "password" not in json.dumps(carol).lower()
    dup = world.cli("users", "create", "ADA@example.com", "--password-stdin", stdin="another password\n")
    assert dup.returncode != 0 and "already exists" in dup.stderr  # emails are unique whatever their case


def test_oidc_tokens_are_checked_against_the_issuers_jwks(world: World) -> None:
    provider = world.provider
    with world.http(provider.token()) as c:
        me = c.get("/user").json()
        assert (me["email"], me["name"], me["isAdmin"], me["applications"]) == (
            "kc.user@example.com",
            "Keycloak User",
            False,
            [PROJECT],
        )
    with world.http(provider.token({"applications_admin": [PROJECT]})) as c:
        assert c.get("/user").json()["isAdmin"] is True
    assert any(p.endswith("/certs") for p in provider.requests)  # the keys came from the JWKS
    refusals = {
        "wrong issuer": (provider.token(issuer="http://127.0.0.1:9/realms/other"), 401),
        "expired": (provider.token(expires_in=-3600), 401),
        "forged signature": (provider.token(key=new_key()), 401),
        "unknown key": (provider.token(key=new_key(), kid="rotated-away"), 401),
        "wrong audience": (provider.token({"aud": "someone-else"}), 401),
        "another project": (provider.token({"applications": ["elsewhere"]}), 403),
    }
    for what, (token, status) in refusals.items():
        with world.http(token) as c:
            err = _codemie_error(c.get("/user"), status)
            assert err["details"], what
