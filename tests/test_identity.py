"""Identity: ids and names are separate namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import commit_tree
from repolens.services import Services
from server import start_server, wait_for_job


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
            for body in ({"path": str(allowed / "second"), "name": first_id},
                         {"path": str(allowed / "second"), "name": first_id.upper()},
                         {"type": "Workspace", "name": first_id, "repositoryIds": [first_id]}):  # fmt: skip
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
