"""The CodeAlive REST API over HTTP against a real server process with real repositories."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import GEO_CODE, commit_tree
from gitserver import serve_git
from server import Server, running_server, wait_for_job

pytestmark = pytest.mark.backends

SHAPES = {
    **GEO_CODE,
    "README.md": "# Geo\n\nCompute the total area of shapes.\n\n## Usage\n\nCall report().\n",
    "data.bin": b"\x00\x01\x02\x03" * 100,
    "dump.txt": "x = 1\n" * 200_000,  # 1.2 MB: over the file size cap
}
BILLING = {
    "billing/invoice.py": (
        "def compute_invoice_total(lines: list[float], tax_rate: float) -> float:\n"
        '    """Invoice total including tax."""\n'
        "    return sum(lines) * (1 + tax_rate)\n"
    ),
    "geo/report.py": "def report() -> str:\n    return 'billing also has a report'\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[tuple[Server, dict[str, str]]]:
    """One server with two indexed repositories (created over the API) and a workspace."""
    base = tmp_path_factory.mktemp("api")
    allowed = base / "allowed"
    commit_tree(allowed / "geo", SHAPES)
    commit_tree(allowed / "billing", BILLING)
    with running_server(base / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)}) as server, server.client() as c:
        ids: dict[str, str] = {}
        for name in ("geo", "billing"):
            created = c.post("/api/datasources", json={"path": str(allowed / name), "description": f"the {name} code"})
            assert created.status_code == 202, created.text
            ids[name] = created.json()["dataSource"]["id"]
            job = wait_for_job(c, created.json()["job"]["id"])
            assert job["state"] == "Ready", job
            assert job["percent"] == 100.0
        ws = c.post(
            "/api/datasources", json={"type": "Workspace", "name": "everything", "repositoryIds": ["geo", "billing"]}
        )
        assert ws.status_code == 201, ws.text
        ids["everything"] = ws.json()["dataSource"]["id"]
        yield server, ids


def test_health_ready_and_openapi_need_no_key(world: tuple[Server, dict[str, str]]) -> None:
    """Probes and the OpenAPI document are public; the document lists the CodeAlive routes."""
    server, _ = world
    with server.client(key="") as anon:
        assert anon.get("/health").json()["status"] == "healthy"
        assert anon.get("/ready").status_code == 200
        doc = anon.get("/openapi.json").json()
    for path in (
        "/api/datasources/all",
        "/api/search",
        "/api/search/semantic",
        "/api/search/grep",
        "/api/search/artifacts",
        "/api/search/artifact-relationships",
        "/api/knowledge-retrieval/dify/retrieval",
        "/api/tools/semantic_search",
    ):
        assert path in doc["paths"], path
    # each tool's arguments are documented from the model MCP derives its schema from
    body = doc["paths"]["/api/tools/semantic_search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["question"] and body["properties"]["max_results"]["maximum"] == 500


def test_every_api_route_requires_a_key_and_answers_in_problem_json(world: tuple[Server, dict[str, str]]) -> None:
    """No key, a malformed key and a wrong secret all get 401 problem+json with error{code}."""
    server, _ = world
    admin = server.admin_key
    wrong_secret = admin[: admin.rindex("_") + 1] + "A" * 43
    for key in ("", "not-a-key", wrong_secret):
        with server.client(key=key) as c:
            r = c.get("/api/datasources/all")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["status"] == 401 and body["error"]["code"] == "UNAUTHORIZED"
        assert "Traceback" not in r.text


def test_x_api_key_header_is_accepted_and_rate_headers_are_sent(world: tuple[Server, dict[str, str]]) -> None:
    """``x-api-key`` works like Bearer; every response carries the X-RateLimit-* headers."""
    server, _ = world
    r = httpx.get(f"{server.url}/api/datasources/ready", headers={"x-api-key": server.admin_key})
    assert r.status_code == 200
    assert int(r.headers["X-RateLimit-Limit"]) >= int(r.headers["X-RateLimit-Remaining"]) >= 0
    assert int(r.headers["X-RateLimit-Reset"]) > 1_700_000_000


def test_data_source_listings_filter_by_type_name_and_readiness(world: tuple[Server, dict[str, str]]) -> None:
    """/all, /ready and /alive list repositories and workspaces in CodeAlive's shape."""
    server, ids = world
    with server.client() as c:
        every = c.get("/api/datasources/all").json()
        assert {d["name"] for d in every} == {"geo", "billing", "everything"}
        geo = next(d for d in every if d["name"] == "geo")
        assert geo["id"] == ids["geo"] and geo["type"] == "Repository" and geo["state"] == "Ready"
        assert geo["description"] == "the geo code"
        ws = next(d for d in every if d["type"] == "Workspace")
        assert sorted(ws["repositoryIds"]) == sorted([ids["geo"], ids["billing"]])
        repos = c.get("/api/datasources/ready", params={"type": "Repository"}).json()
        assert {d["name"] for d in repos} == {"geo", "billing"}
        assert [d["name"] for d in c.get("/api/datasources/alive", params={"searchTerm": "BILL"}).json()] == ["billing"]
        relevant = c.get("/api/datasources/ready", params={"query": "invoice billing totals"}).json()
        assert [d["name"] for d in relevant] == ["billing"] and relevant[0]["relevanceReason"]
        assert c.get("/api/datasources/all", params={"type": "Folder"}).status_code == 400
        one = c.get(f"/api/datasources/{ids['geo']}").json()
        assert one["job"]["state"] == "Ready" and one["files"] >= 3


def test_search_routes_return_codealive_shapes(world: tuple[Server, dict[str, str]]) -> None:
    """Legacy, POST, semantic: ranked artifacts with identifiers, ranges, scores, descriptions."""
    server, ids = world
    with server.client() as c:
        r = c.get(
            "/api/search",
            params={
                "Query": "total area of shapes",
                "Names": "geo",
                "Mode": "auto",
                "IncludeContent": "true",
                "DescriptionDetail": "Full",
            },
        )
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        top = results[0]
        assert top["identifier"] == "geo::geo/shapes.py::total_area"
        assert top["kind"] == "Symbol" and top["dataSource"] == {"type": "repository", "id": ids["geo"], "name": "geo"}
        assert top["location"]["range"]["start"]["line"] == 21
        assert "def total_area" in top["content"] and top["contentByteSize"] == len(top["content"].encode())
        assert 0 < top["score"] <= 1
        posted = c.post("/api/search", json={"query": "total area of shapes", "datasource_ids": [ids["geo"]]}).json()
        assert posted["results"][0]["identifier"] == top["identifier"] and "content" not in posted["results"][0]
        sem = c.get(
            "/api/search/semantic",
            params=[("Query", "invoice tax"), ("Names", "everything"), ("Extensions", ".py"), ("MaxResults", "3")],
        ).json()
        assert sem["results"][0]["identifier"] == "billing::billing/invoice.py::compute_invoice_total"
        assert len(sem["results"]) <= 3
        only_paths = c.get("/api/search/semantic", params={"Query": "report", "Paths": "geo/"}).json()["results"]
        assert only_paths and all(x["location"]["path"].startswith("geo/") for x in only_paths)
        no_md = c.get("/api/search/semantic", params={"Query": "usage", "Names": "geo", "ExcludeMarkdown": "true"})
        assert all(not x["location"]["path"].endswith(".md") for x in no_md.json()["results"])
        for bad in (
            {"Query": ""},
            {"Query": "x", "MaxResults": "0"},
            {"Query": "x", "Mode": "psychic"},
            {"Query": "x", "Names": "ghost"},
        ):
            r = c.get("/api/search", params=bad)
            assert r.status_code in (400, 404), (bad, r.status_code)
            assert r.json()["error"]["code"] in ("BAD_REQUEST", "NOT_FOUND")


def test_grep_is_literal_by_default_and_matches_file_names(world: tuple[Server, dict[str, str]]) -> None:
    """Literal grep gives 1-based lines and columns; names match too; regex errors are 400."""
    server, _ = world
    with server.client() as c:
        hits = c.get("/api/search/grep", params={"Query": "3.14159", "Names": "geo"}).json()["results"]
        assert len(hits) == 1 and hits[0]["matchCount"] == 1
        m = hits[0]["matches"][0]
        assert hits[0]["identifier"] == "geo::geo/shapes.py" and m["lineNumber"] == 18
        assert m["lineText"][m["startColumn"] - 1 : m["endColumn"] - 1] == "3.14159"
        by_name = c.get("/api/search/grep", params={"Query": "invoice.py"}).json()["results"]
        assert any(h.get("matchedByName") for h in by_name)
        rx = c.get("/api/search/grep", params={"Query": r"def \w+_area", "Regex": "true"}).json()["results"]
        assert rx and rx[0]["matches"][0]["lineText"].startswith("def total_area")
        assert c.get("/api/search/grep", params={"Query": "(", "Regex": "true"}).status_code == 400


def test_artifacts_fetch_previews_calls_and_reports_misses_and_ambiguity(world: tuple[Server, dict[str, str]]) -> None:
    """Content with startLine and a call preview; found:false; 409 with candidates; the cap."""
    server, _ids = world
    with server.client() as c:
        r = c.post("/api/search/artifacts", json={"identifiers": ["geo::geo/shapes.py::total_area", "geo::nope.py::X"]})
        assert r.status_code == 200, r.text
        found, missing = r.json()["artifacts"]
        assert found["found"] is True and found["startLine"] == 21 and "sum(s.area()" in found["content"]
        assert found["relationships"]["incomingCallsCount"] == 1
        assert found["relationships"]["incomingCalls"][0]["identifier"] == "geo::geo/report.py::report"
        assert missing == {"identifier": "geo::nope.py::X", "found": False, "content": None}
        suffix = c.post("/api/search/artifacts", json={"identifiers": ["x/geo::geo/report.py::report"]})
        assert suffix.json()["artifacts"][0]["found"] is True  # resolved by the unique repo name 'geo'
        by_ds = c.post(
            "/api/search/artifacts", json={"identifiers": ["geo::geo/report.py::report"], "dataSource": "billing"}
        )
        assert "billing also has a report" in by_ds.json()["artifacts"][0]["content"]
        too_many = c.post("/api/search/artifacts", json={"identifiers": [f"geo::a{i}.py" for i in range(21)]})
        assert too_many.status_code == 400 and "at most 20" in too_many.json()["message"]
        huge = c.post("/api/search/artifacts", json={"identifiers": ["geo::x.py"] * 10_000})
        assert huge.status_code == 400
        assert c.post("/api/search/artifacts", json={"identifiers": []}).status_code == 400
        assert c.post("/api/search/artifacts", json={"identifiers": "geo::x"}).status_code == 400
        unknown_ds = c.post("/api/search/artifacts", json={"identifiers": ["geo::x.py"], "dataSource": "ghost"})
        assert unknown_ds.status_code == 404


def test_relationships_follow_calls_and_inheritance(world: tuple[Server, dict[str, str]]) -> None:
    """Callers and callees, ancestors and descendants, with counts; unknown ids are found:false."""
    server, _ = world
    with server.client() as c:
        calls = c.post(
            "/api/search/artifact-relationships", json={"identifier": "geo::geo/report.py::report", "profile": "CallsOnly"}
        ).json()
        out = next(g for g in calls["relationships"] if g["relationType"] == "OutgoingCalls")
        assert {i["identifier"] for i in out["items"]} >= {"geo::geo/shapes.py::total_area", "geo::geo/shapes.py::Circle"}
        # both callees are imported by name (resolved); the builtin `str` is kept by name, unlinked
        assert {i["resolution"] for i in out["items"]} == {"resolved"}
        assert out["unresolved"] == [{"name": "str", "line": 6}]
        inh = c.post(
            "/api/search/artifact-relationships",
            json={"identifier": "geo::geo/shapes.py::Shape", "profile": "InheritanceOnly"},
        ).json()
        desc = next(g for g in inh["relationships"] if g["relationType"] == "Descendants")
        assert [i["identifier"] for i in desc["items"]] == ["geo::geo/shapes.py::Circle"]
        assert inh["availableRelationshipCounts"]["descendants"] == 1
        missing = c.post("/api/search/artifact-relationships", json={"identifier": "geo::x.py::Y"})
        assert missing.status_code == 200 and missing.json() == {
            "sourceIdentifier": "geo::x.py::Y",
            "profile": "CallsOnly",
            "found": False,
        }
        bad = c.post("/api/search/artifact-relationships", json={"identifier": "geo::x.py::Y", "maxCountPerType": 0})
        assert bad.status_code == 400 and bad.json()["errors"]


def test_scoped_keys_see_only_their_sources_and_revoked_keys_stop(world: tuple[Server, dict[str, str]]) -> None:
    """A key scoped to billing cannot list, search or fetch geo; a member key cannot administer."""
    server, _ids = world
    with server.client() as admin:
        made = admin.post("/api/admin/keys", json={"name": "billing-bot", "plan": "pro", "scopes": ["billing"]})
        assert made.status_code == 201, made.text
        token, key_id = made.json()["key"], made.json()["id"]
        assert made.json()["requestsPerHour"] == 1000 and made.json()["concurrency"] == 20
        listed = admin.get("/api/admin/keys").json()
        assert all("key" not in k for k in listed) and any(k["id"] == key_id for k in listed)
    with server.client(key=token) as c:
        assert [d["name"] for d in c.get("/api/datasources/all").json()] == ["billing"]
        assert c.get("/api/search", params={"Query": "area", "Names": "geo"}).status_code == 404
        everything = c.get("/api/search/semantic", params={"Query": "report"}).json()["results"]
        assert everything and all(r["dataSource"]["name"] == "billing" for r in everything)
        hidden = c.post("/api/search/artifacts", json={"identifiers": ["geo::geo/shapes.py::total_area"]})
        assert hidden.json()["artifacts"][0]["found"] is False
        assert c.post("/api/datasources", json={"url": "https://example.com/o/r.git"}).status_code == 403
        assert c.get("/api/admin/keys").status_code == 403
    with server.client() as admin:
        assert admin.delete(f"/api/admin/keys/{key_id}").status_code == 204
    with server.client(key=token) as c:
        r = c.get("/api/datasources/all")
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_rate_limit_is_per_key_with_retry_after(world: tuple[Server, dict[str, str]]) -> None:
    """A custom plan of 3 requests per hour: the 4th is a 429; another key is unaffected."""
    server, _ = world
    with server.client() as admin:
        token = admin.post(
            "/api/admin/keys", json={"name": "tiny", "plan": "custom", "requestsPerHour": 3, "concurrency": 2}
        ).json()["key"]
    with server.client(key=token) as c:
        seen = [c.get("/api/datasources/ready") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen[:3]] == ["2", "1", "0"]
    limited = seen[3]
    assert int(limited.headers["Retry-After"]) > 0 and limited.json()["error"]["code"] == "RATE_LIMITED"
    with server.client() as admin:
        assert admin.get("/api/datasources/ready").status_code == 200


def test_dify_retrieval_probe_errors_and_filters(world: tuple[Server, dict[str, str]]) -> None:
    """Dify's probe gets 400, a bad key 403, unknown knowledge 404/2001; filters apply."""
    server, ids = world
    path = "/api/knowledge-retrieval/dify/retrieval"
    with server.client() as c:
        probe = c.post(path)
        assert probe.status_code == 400 and probe.json()["error_code"] == 1001
        ok = c.post(
            path,
            json={
                "knowledge_id": ids["geo"],
                "query": "total area",
                "retrieval_setting": {"top_k": 2, "score_threshold": 0.0},
            },
        )
        assert ok.status_code == 200, ok.text
        records = ok.json()["records"]
        assert 1 <= len(records) <= 2
        assert records[0]["title"] == "shapes.py" and records[0]["metadata"]["file_extension"] == ".py"
        assert records[0]["metadata"]["artifact_kind"] == "symbol" and records[0]["metadata"]["start_line"] >= 1
        only_md = {"conditions": [{"name": ["file_extension"], "comparison_operator": "is", "value": ".md"}]}
        md = c.post(
            path,
            json={
                "knowledge_id": ids["geo"],
                "query": "usage report",
                "retrieval_setting": {"top_k": 5},
                "metadata_condition": only_md,
            },
        )
        assert md.json()["records"] and all(r["title"] == "README.md" for r in md.json()["records"])
        nope = c.post(path, json={"knowledge_id": "0" * 24, "query": "x", "retrieval_setting": {"top_k": 1}})
        assert nope.status_code == 404 and nope.json()["error_code"] == 2001
        bad = c.post(path, content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error_code"] == 1001
    with server.client(key="ca_1234567890123_" + "x" * 43) as c:
        denied = c.post(path, json={"knowledge_id": ids["geo"], "query": "x"})
        assert denied.status_code == 403 and denied.json()["error_code"] == 1002


def test_dify_metadata_filters_apply_before_the_top_k_cut(world: tuple[Server, dict[str, str]]) -> None:
    """Three guides match an extension filter that 40 better-ranked modules fail: all three come back."""
    server, _ = world
    repo = commit_tree(
        Path(server.env["REPOLENS_ALLOWED_ROOTS"]) / "invoices",
        {
            **{
                f"billing/invoice_{i:02d}.py": f"def invoice_total_{i}(invoice: list[float]) -> float:\n"
                f'    """Total of invoice {i}: the invoice lines summed."""\n'
                "    return sum(invoice)\n"
                for i in range(40)
            },
            **{f"docs/guide_{j}.md": f"# Guide {j}\n\nOne paragraph that mentions an invoice.\n" for j in range(3)},
        },
    )
    path = "/api/knowledge-retrieval/dify/retrieval"
    with server.client() as c:
        made = c.post("/api/datasources", json={"path": str(repo)})
        assert made.status_code == 202, made.text
        source_id = made.json()["dataSource"]["id"]
        try:
            assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
            ask = {"knowledge_id": source_id, "query": "invoice", "retrieval_setting": {"top_k": 3}}
            unfiltered = c.post(path, json=ask).json()["records"]
            assert len(unfiltered) == 3 and all(r["metadata"]["file_extension"] == ".py" for r in unfiltered)
            guides = {"conditions": [{"name": ["file_extension"], "comparison_operator": "is", "value": ".md"}]}
            filtered = c.post(path, json={**ask, "metadata_condition": guides})
            assert filtered.status_code == 200, filtered.text
            titles = sorted(r["title"] for r in filtered.json()["records"])
            assert titles == ["guide_0.md", "guide_1.md", "guide_2.md"]
            either = {
                "logical_operator": "or",
                "conditions": [
                    {"name": ["path"], "comparison_operator": "start with", "value": "docs/guide_1"},
                    {"name": ["path"], "comparison_operator": "end with", "value": "guide_2.md"},
                ],
            }
            two = c.post(path, json={**ask, "metadata_condition": either}).json()["records"]
            assert sorted(r["title"] for r in two) == ["guide_1.md", "guide_2.md"]
        finally:
            assert c.delete(f"/api/datasources/{source_id}").status_code == 204


def test_tool_api_envelope(world: tuple[Server, dict[str, str]]) -> None:
    """POST /api/tools/{name} answers {rendered, obj}; repairable mistakes are 200 with obj.error."""
    server, _ = world
    with server.client() as c:
        sources = c.post("/api/tools/get_data_sources", json={"ready_only": True, "output_format": "json"}).json()
        assert {d["name"] for d in sources["obj"]["data_sources"]} == {"geo", "billing", "everything"}
        found = c.post("/api/tools/semantic_search", json={"question": "sum of areas", "data_sources": '["geo"]'}).json()
        assert "geo::geo/shapes.py::total_area" in found["rendered"]
        read = c.post(
            "/api/tools/read_file", json={"data_source": "geo", "path": "geo/shapes.py", "start_line": 21, "end_line": 23}
        ).json()
        assert read["obj"]["content"].startswith("def total_area") and "21 | def total_area" in read["rendered"]
        escape = c.post("/api/tools/read_file", json={"data_source": "geo", "path": "../../etc/passwd"}).json()
        assert escape["obj"]["error"]["code"] == "invalid_path"
        tree = c.post("/api/tools/get_file_tree", json={"data_source": "geo"}).json()
        tree_paths = {e["path"] for e in tree["obj"]["entries"]}
        assert {"geo/shapes.py", "README.md"} <= tree_paths
        assert not {"data.bin", "dump.txt"} & tree_paths  # binary and oversized files are skipped
        onto = c.post("/api/tools/get_repository_ontology", json={"data_source": "geo"}).json()["obj"]
        assert onto["languages"]["python"] == 2 and any(m["name"] == "Circle" for m in onto["mostReferenced"])
        fetched = c.post("/api/tools/fetch_artifacts", json={"identifiers": "geo::geo/shapes.py::Circle"}).json()
        assert "class Circle(Shape)" in fetched["rendered"]
        rel = c.post(
            "/api/tools/get_artifact_relationships",
            json={"identifier": "geo::geo/shapes.py::Shape", "profile": "inheritance_only"},
        ).json()
        assert "geo::geo/shapes.py::Circle" in rel["rendered"]
        missing = c.post("/api/tools/semantic_search", json={}).json()
        assert missing["obj"]["error"]["code"] == "invalid_tool_arguments"
        chat = c.post("/api/tools/chat", json={"question": "how is the total area computed?", "data_sources": "geo"})
        assert chat.json()["obj"]["mode"] == "retrieval-only", chat.text  # no model configured on this server
        assert any(c["identifier"] == "geo::geo/shapes.py::total_area" for c in chat.json()["obj"]["citations"])
        aliased = c.post("/api/tools/chat", json={"query": "how is the total area computed?", "data_sources": "geo"})
        assert aliased.json()["obj"]["citations"], aliased.text  # query works for question, as in semantic_search
        assert c.post("/api/tools/drop_tables", json={}).status_code == 404


def test_cli_keys_create_prints_the_key_once_on_its_own_line(world: tuple[Server, dict[str, str]]) -> None:
    """`repolens keys create` prints only the key on stdout; it then works against the server."""
    server, _ = world
    exe = Path(sys.executable).with_name("repolens")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
    made = subprocess.run(
        [*cmd, "keys", "create", "--name", "cli", "--plan", "team", "--scope", "geo"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = made.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ca_")
    with server.client(key=lines[0]) as c:
        assert [d["name"] for d in c.get("/api/datasources/all").json()] == ["geo"]
    listed = json.loads(
        subprocess.run([*cmd, "keys", "list", "--json"], env=server.env, capture_output=True, text=True, check=True).stdout
    )
    assert any(k["name"] == "cli" and k["requestsPerHour"] == 5000 and k["concurrency"] == 50 for k in listed)
    assert lines[0] not in json.dumps(listed)


def test_git_sources_over_the_api_and_unsafe_locations(world: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    """A git URL (a real smart-HTTP server on loopback, allow-listed) indexes; unsafe ones are 400."""
    server, _ = world
    repo = commit_tree(tmp_path / "remote" / "acme" / "tools.git", {"tool.py": "def hammer():\n    return 'nail'\n"})
    commit_tree(tmp_path / "remote" / "other" / "tools.git", {"tool.py": "def hammer():\n    return 'screw'\n"})
    with serve_git(tmp_path / "remote") as base_url, server.client() as c:
        made = c.post("/api/datasources", json={"url": f"{base_url}/acme/tools.git", "branch": "main"})
        assert made.status_code == 202, made.text
        assert made.json()["dataSource"]["name"] == "acme/tools"
        assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
        hit = c.get("/api/search", params={"Query": "hammer", "Names": "acme/tools"}).json()["results"][0]
        assert hit["identifier"] == "acme/tools::tool.py::hammer" and len(hit["commit"]) == 40
        twin = c.post("/api/datasources", json={"url": f"{base_url}/other/tools.git"})
        assert wait_for_job(c, twin.json()["job"]["id"])["state"] == "Ready"
        amb = c.post("/api/search/artifacts", json={"identifiers": ["tools::tool.py::hammer"]})
        assert amb.status_code == 409, amb.text
        assert sorted(amb.json()["candidates"]) == ["acme/tools", "other/tools"]
        pick = c.post("/api/search/artifacts", json={"identifiers": ["tools::tool.py::hammer"], "dataSource": "other/tools"})
        assert "screw" in pick.json()["artifacts"][0]["content"]
        again = c.post(f"/api/datasources/{made.json()['dataSource']['id']}/sync")
        assert again.status_code == 202 and wait_for_job(c, again.json()["id"])["state"] == "Ready"
        assert repo.exists()
        outside = tmp_path / "outside"
        outside.mkdir()
        link = Path(server.env["REPOLENS_ALLOWED_ROOTS"]) / "escape"
        link.symlink_to(outside)
        for body in (
            {"url": "file:///etc"},
            {"url": "ext::sh -c id"},
            {"url": "--upload-pack=touch /tmp/x"},
            {"url": "https://user:pw@example.com/o/r.git"},
            {"url": "https://10.1.2.3/o/r.git"},
            {"url": "https://169.254.169.254/latest/meta-data"},
            {"url": "ssh://git@example.com/o/r.git"},
            {"path": "/etc"},
            {"path": str(link)},
            {"path": str(Path(server.env["REPOLENS_ALLOWED_ROOTS"]) / ".." / "home")},
            {"path": "relative/dir"},
            {},
            {"url": "https://example.com/o/r.git", "path": "/tmp"},
            {"url": "https://example.com/o/r.git", "branch": "--orphan"},
        ):
            r = c.post("/api/datasources", json=body)
            assert r.status_code == 400, (body, r.status_code, r.text)
            assert "pw" not in r.text
        names = {d["name"] for d in c.get("/api/datasources/all").json()}
        assert {"geo", "billing", "acme/tools", "other/tools"} <= names and len(names) == 5


def test_bad_json_wrong_types_and_oversized_bodies_are_clear_4xx(world: tuple[Server, dict[str, str]]) -> None:
    """Malformed JSON, wrong types, unknown routes and a 2 MB body: 4xx problem+json, never 500."""
    server, _ = world
    with server.client() as c:
        cases = [
            c.post("/api/search/artifacts", content=b"{oops", headers={"content-type": "application/json"}),
            c.post("/api/search/artifacts", json={"identifiers": [1, 2]}),
            c.post("/api/search/artifact-relationships", json={"identifier": ["a"]}),
            c.post("/api/search", json={"query": 5}),
            c.post("/api/search/artifacts", content=b"\xff\xfe\x00binary", headers={"content-type": "application/json"}),
            c.get("/api/nope"),
            c.post("/api/search/artifacts", content=b"x" * 2_000_000, headers={"content-type": "application/json"}),
        ]
    assert [r.status_code for r in cases] == [400, 400, 400, 400, 400, 404, 413]
    for r in cases:
        assert r.headers["content-type"].startswith("application/problem+json") and "Traceback" not in r.text


def test_requests_the_http_parser_refuses_get_problem_json(world: tuple[Server, dict[str, str]]) -> None:
    """A 120 KB URL and non-HTTP bytes never reach the app; the 400 is still problem+json."""
    server, _ = world
    host, port = server.url.removeprefix("http://").split(":")
    for raw in (
        f"GET /api/search?Query={'a' * 120_000} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
        b"\x16\x03\x01 this is not HTTP\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(raw)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), head
        assert b"content-type: application/problem+json" in head.lower(), head
        problem = json.loads(body)
        assert problem["status"] == 400 and problem["error"]["code"] == "BAD_REQUEST" and "POST body" in problem["detail"]
