"""Allowed roots hold at every sync, not only at registration: a folder swapped for a symlink
(itself or a parent) fails its job, nothing outside is indexed, the stored location never moves,
and a swap between the walk and the read cannot make the indexer read outside the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import commit_tree, write_tree
from repolens.indexing.pipeline import index_source
from repolens.services import Services
from repolens.storage.sqlite.store import SqliteStore
from server import start_server, wait_for_job

INSIDE = {"app.py": "def inside_marker():\n    return 'inside'\n"}
OUTSIDE = {
    "app.py": "def outside_marker():\n    return 'OUTSIDE_SECRET_TOKEN'\n",
    "secret.py": "OUTSIDE_SECRET_TOKEN = 'leaked'\n",
}


def _swap_for_symlink(folder: Path, target: Path) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(target, target_is_directory=True)


def test_a_registered_folder_swapped_for_a_symlink_outside_the_roots_fails_its_sync(tmp_path: Path) -> None:
    """Swap the folder (or a parent of it) for a symlink out of the roots: the sync fails saying
    why, grep and fetch never see the outside files, and the stored location stays put."""
    allowed = tmp_path / "allowed"
    direct, nested = allowed / "proj", allowed / "team" / "svc"
    commit_tree(direct, INSIDE)
    commit_tree(nested, INSIDE)
    outside = tmp_path / "outside"
    write_tree(outside / "proj", OUTSIDE)
    write_tree(outside / "team" / "svc", OUTSIDE)
    server = start_server(tmp_path / "home", env={"REPOLENS_ALLOWED_ROOTS": str(allowed)})
    try:
        with server.client() as c:
            ids = {}
            for folder in (direct, nested):
                made = c.post("/api/datasources", json={"path": str(folder)})
                assert made.status_code == 202, made.text
                assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
                ids[folder] = made.json()["dataSource"]["id"]
            _swap_for_symlink(direct, outside / "proj")
            _swap_for_symlink(allowed / "team", outside / "team")
            for source_id in ids.values():
                job = c.post(f"/api/datasources/{source_id}/sync").json()
                done = wait_for_job(c, job["id"])
                assert done["state"] == "Failed", done
                assert "symlink" in done["reason"], done["reason"]
                assert str(outside) not in done["reason"]  # where the link points is not told
                source = c.get(f"/api/datasources/{source_id}").json()
                # The last good index keeps answering; the failure is on the source too.
                assert source["state"] == "Ready" and "symlink" in source["stateReason"], source
            grep = c.get("/api/search/grep", params={"Query": "OUTSIDE_SECRET_TOKEN"}).json()
            assert grep["results"] == [], grep
            fetched = c.post("/api/search/artifacts", json={"identifiers": ["proj::secret.py", "svc::secret.py"]})
            assert [a["found"] for a in fetched.json()["artifacts"]] == [False, False]
            assert c.get("/api/search", params={"Query": "inside_marker"}).json()["results"]
    finally:
        server.stop()
    store = SqliteStore(tmp_path / "home" / "repolens.db")
    try:
        assert {s.location for s in store.list_sources()} == {str(direct), str(nested)}
    finally:
        store.close()


class _SwapBeforeRead:
    """Progress that swaps a sub-folder for a symlink to ``target`` once the walk is over and
    before any file is read: the race a hostile user of a shared folder would try to win."""

    def __init__(self, folder: Path, target: Path) -> None:
        self.folder, self.target = folder, target

    def start(self, phase: str, total: int | None) -> None:
        if phase == "read":
            _swap_for_symlink(self.folder, self.target)

    def advance(self, phase: str, n: int = 1) -> None:
        """Nothing to record."""

    def finish(self, phase: str) -> None:
        """Nothing to record."""


def test_a_folder_swapped_between_the_walk_and_the_read_is_not_followed(tmp_path: Path, services: Services) -> None:
    """Files are opened beneath the tree the walk listed, never through a symlink swapped in since."""
    root = tmp_path / "repo"
    write_tree(root, {"top.py": "def top_level():\n    return 1\n", "pkg/app.py": INSIDE["app.py"]})
    outside = tmp_path / "outside"
    write_tree(outside, OUTSIDE)
    source, report = index_source(
        services.store, services.settings, str(root), name="raced", progress=_SwapBeforeRead(root / "pkg", outside)
    )
    contents = {f.path: content for f, content in services.store.iter_contents([source.id])}
    assert "top.py" in contents
    assert all("OUTSIDE_SECRET_TOKEN" not in text for text in contents.values()), contents
    assert "pkg/app.py" in {s.path for s in report.skipped}
