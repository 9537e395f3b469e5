"""Identity: ids and names are separate namespaces, clone folders belong to one source each, and
a folder gets the same default name from the CLI, `repolens up` and the API."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import MakeRepo, commit_tree, git
from gitserver import serve_git
from repolens.services import Services
from server import start_server, wait_for_job

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_a_name_shaped_like_an_id_is_refused_so_no_source_can_take_over_another_id(tmp_path: Path) -> None:
    """Naming a repository or a workspace after another source's id is a 400; a key scoped to
    that id keeps seeing exactly its source."""
    allowed = tmp_path / "allowed"
    commit_tree(allowed / "first", {"a.py": "def first_only():\n    return 1\n"})
    commit_tree(allowed / "second", {"b.py": "def second_only():\n    return 2\n"})
    server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)})
    try:
        with server.client() as c:
            first = c.post("/api/datasources", json={"path": str(allowed / "first")}).json()
            first_id = first["dataSource"]["id"]
            assert wait_for_job(c, first["job"]["id"])["state"] == "Ready"
            for body in (
                {"path": str(allowed / "second"), "name": first_id},
                {"path": str(allowed / "second"), "name": first_id.upper()},
                {"type": "Workspace", "name": first_id, "repositoryIds": [first_id]},
            ):
                refused = c.post("/api/datasources", json=body)
                assert refused.status_code == 400, refused.text
                assert "id" in refused.json()["message"]
            key = c.post("/api/admin/keys", json={"name": "scoped", "scopes": [first_id]}).json()["key"]
            assert [d["name"] for d in c.get("/api/datasources/all").json()] == ["first"]
        with server.client(key) as scoped:
            assert scoped.get(f"/api/datasources/{first_id}").json()["name"] == "first"
            hits = scoped.get("/api/search", params={"Query": "first_only"}).json()["results"]
            assert hits and hits[0]["identifier"].startswith("first::")
    finally:
        server.stop()


@pytest.mark.backends
def test_lookup_by_id_never_matches_another_source_by_name(services: Services) -> None:
    """A source stored with another's id as its name (an old database) never shadows that id."""
    store = services.store
    owner = store.create_source(name="owner", location="/srv/owner", branch=None)
    impostor = store.create_source(name=owner.public_id, location="/srv/impostor", branch=None)
    for _ in range(3):
        found = store.get_source(owner.public_id)
        assert found is not None and found.id == owner.id
    found = store.get_source(impostor.public_id)
    assert found is not None and found.id == impostor.id


def _bare(served: Path, work: Path, rel: str) -> None:
    git(served, "clone", "-q", "--bare", str(work), rel)


def test_sources_whose_names_look_alike_have_their_own_clones(make_repo: MakeRepo, tmp_path: Path) -> None:
    """`o/r` and `o__r` are cloned into folders of their own; deleting one leaves the other's clone."""
    served = tmp_path / "served"
    served.mkdir()
    _bare(served, make_repo({"one.py": "def from_slash_repo():\n    return 1\n"}, name="w1"), "a/one.git")
    _bare(served, make_repo({"two.py": "def from_underscore_repo():\n    return 2\n"}, name="w2"), "b/two.git")
    server = start_server(tmp_path / "home")
    clones = tmp_path / "home" / "clones"
    try:
        with serve_git(served) as base, server.client() as c:
            ids = {}
            for url, name in ((f"{base}/a/one.git", "o/r"), (f"{base}/b/two.git", "o__r")):
                made = c.post("/api/datasources", json={"url": url, "name": name})
                assert made.status_code == 202, made.text
                assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
                ids[name] = made.json()["dataSource"]["id"]
            assert c.get("/api/search/grep", params={"Query": "from_underscore_repo", "Names": "o__r"}).json()["results"]
            assert not c.get("/api/search/grep", params={"Query": "from_slash_repo", "Names": "o__r"}).json()["results"]
            assert len(list(clones.iterdir())) == 2
            assert c.delete(f"/api/datasources/{ids['o__r']}").status_code == 204
            (kept,) = clones.iterdir()
            assert (kept / "one.py").exists()
            again = c.post(f"/api/datasources/{ids['o/r']}/sync").json()
            assert wait_for_job(c, again["id"])["state"] == "Ready"
            assert c.get("/api/search/grep", params={"Query": "from_slash_repo", "Names": "o/r"}).json()["results"]
    finally:
        server.stop()


def test_a_folder_gets_the_same_default_name_from_the_cli_up_and_the_api(tmp_path: Path, run_cli: Run) -> None:
    """A folder is named by its folder wherever it comes from, remote or not; a git URL by owner/repo."""
    allowed = tmp_path / "allowed"
    with_remote = commit_tree(allowed / "flask-checkout", {"app.py": "def app():\n    return 1\n"})
    git(with_remote, "remote", "add", "origin", "https://github.com/pallets/flask.git")
    # A clone of a clone: its origin is a path (the CLI used to name it after the path's last two parts).
    local_origin = commit_tree(allowed / "upstream" / "click", {"c.py": "def c():\n    return 1\n"})
    from_path = allowed / "click-work"
    git(allowed, "clone", "-q", str(local_origin), str(from_path))
    plain = allowed / "notes"
    plain.mkdir()
    (plain / "n.md").write_text("# notes\n")
    expected = {with_remote: "flask-checkout", from_path: "click-work", plain: "notes"}

    cli = {folder: json.loads(run_cli("index", str(folder), "--json", check=True).stdout)["source"] for folder in expected}
    up_home = {"REPOLENS_HOME": str(tmp_path / "up-home")}
    run_cli("up", str(with_remote), env=up_home, check=True)
    up = [s["name"] for s in json.loads(run_cli("sources", "list", "--json", env=up_home, check=True).stdout)]
    server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)})
    try:
        with server.client() as c:
            api = {
                folder: c.post("/api/datasources", json={"path": str(folder)}).json()["dataSource"]["name"]
                for folder in expected
            }
    finally:
        server.stop()
    assert cli == expected
    assert api == expected
    assert up == ["flask-checkout"]
