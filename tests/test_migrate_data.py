"""`repolens migrate-data`: an embedded install moves to PostgreSQL with its ids, keys,
conversations and index intact, and answers the same searches."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import httpx

from conftest import MakeRepo
from pgcluster import PgCluster
from repolens.agents import assistants
from repolens.agents.model import Definition
from repolens.services import build_services
from repolens.settings import Settings
from server import start_server
from test_cli import PROJECT, Run


def test_an_embedded_install_moves_to_postgres_intact(
    make_repo: MakeRepo, run_cli: Run, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    root = make_repo(PROJECT)
    run_cli("index", str(root), "--name", "acme/geo", check=True)
    token = run_cli("keys", "create", "--name", "ci", "--plan", "team", check=True).stdout.strip()
    made = run_cli("users", "create", "ada@example.com", "--password-stdin", input="ada's password\n")
    assert made.returncode == 0, made.stderr
    asked = run_cli("ask", "how is the total area of shapes computed?", check=True)
    conversation = re.search(r"--conversation (\w{24})", asked.stderr)
    assert conversation, asked.stderr
    home = Settings(home=tmp_path / "cli-home", embedder="hash")
    services = build_services(home)
    try:
        viewer = assistants.viewer_for(services.store, None)
        helper = assistants.create(services.store, viewer, None, Definition(name="Geo helper", context=("acme/geo",)))
    finally:
        services.close()
    queries = ["Square", "multiply a number by itself", "report"]
    before = [json.loads(run_cli("search", q, "--json", check=True).stdout) for q in queries]

    url = pg_cluster.new_database()
    moved = json.loads(run_cli("migrate-data", "--to", url, "--json", check=True).stdout)
    assert moved["sources"] == 1 and moved["files"] == 2 and moved["keys"] == 1 and moved["conversations"] == 1
    assert moved["users"] == 1
    assert moved["vectors"] > 0 and moved["assistants"] == 1
    again = run_cli("migrate-data", "--to", url)
    assert again.returncode != 0 and "already holds data sources" in again.stderr  # never merged twice

    on_pg = {"REPOLENS_DATABASE_URL": url}
    after = [json.loads(run_cli("search", q, "--json", env=on_pg, check=True).stdout) for q in queries]
    for b, a in zip(before, after, strict=True):
        assert [r["identifier"] for r in a["results"]] == [r["identifier"] for r in b["results"]]
        assert a["results"][0]["dataSource"] == b["results"][0]["dataSource"]  # same public id
    follow = json.loads(
        run_cli("ask", "and Square?", "--conversation", conversation[1], "--json", env=on_pg, check=True).stdout
    )
    assert follow["conversationId"] == conversation[1]
    services = build_services(replace(home, database_url=url))
    try:
        moved_helper = assistants.get(services.store, assistants.viewer_for(services.store, None), None, helper.id)
        assert moved_helper.definition == helper.definition and moved_helper.owner == helper.owner
    finally:
        services.close()

    # The key issued by the embedded install opens the PostgreSQL deployment's API.
    server = start_server(tmp_path / "pg-home", env={**on_pg, "REPOLENS_INDEX_WORKERS": "0"}, admin_key=token)
    try:
        with server.client() as c:
            assert [d["name"] for d in c.get("/api/datasources/all").json()] == ["acme/geo"]
            hit = c.post("/api/search", json={"query": "total_area", "names": ["acme/geo"]}).json()
            assert hit["results"][0]["identifier"] == "acme/geo::svc/shapes.py::total_area"
        # The local user moved with the password hash: signing in works on PostgreSQL.
        signed = httpx.post(
            f"{server.url}/code-assistant-api/v1/local-auth/login",
            json={"email": "ada@example.com", "password": "ada's password"},
        )
        assert signed.status_code == 200, signed.text
    finally:
        server.stop()
