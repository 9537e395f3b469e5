"""Knowledge bases below the HTTP surface and across restarts, on both backends: the whitelist
check the chat routes will call, a base as a data source an agent can search, durability.

Kept apart from ``test_codeer.py``, whose server is module-wide: these tests take a fresh
database each (``backend``), which a module-wide one would otherwise leak into.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codeer_api import FAQS, KB, ZANZIBAR, children, data, new_kb, upload, wait_ready
from repolens import knowledge
from repolens.access.keys import Principal, create_key, plan_for
from repolens.errors import ClientNotAllowed
from repolens.services import Services
from server import start_server

pytestmark = pytest.mark.backends


def test_the_whitelist_check_chats_will_call(services: Services) -> None:
    db = services.store
    admin = Principal(create_key(db, name="a", plan=plan_for("free"), role="admin").row)
    ws = knowledge.home_workspace(db, admin)
    knowledge.check_client(db, ws, None)  # mode off: anyone
    knowledge.set_whitelist(db, admin, ws.public_id, enabled=True, external_user_ids=["user-1"])
    knowledge.check_client(db, ws, "user-1")
    for who in (None, "", "user-2", 7):
        with pytest.raises(ClientNotAllowed):
            knowledge.check_client(db, ws, who)


def test_a_base_is_a_data_source_searchable_by_its_id(services: Services) -> None:
    # What an agent's knowledge-base tool will do: resolve the base to its source, search only it.
    from repolens import operations
    from repolens.indexing.jobs import run_job

    db = services.store
    admin = Principal(create_key(db, name="a", plan=plan_for("free"), role="admin").row)
    root = knowledge.create_node(db, services.settings, admin, name="Agent base")
    (node,) = knowledge.upload_files(
        db,
        services.settings,
        admin,
        parent_id=root.public_id,
        uploads=[knowledge.IncomingFile("zanzibar.md", ZANZIBAR.encode())],
    )
    source = knowledge.source_of(db, admin, node.public_id)
    assert source.name == knowledge.source_name(root.public_id)
    assert knowledge.file_status(db, node)[0] == "PENDING"
    job = db.claim_job("test")
    assert job is not None and job.source_id == source.id
    assert run_job(services.settings, job.public_id) == 0
    assert knowledge.file_status(db, node) == ("READY", "")
    request = operations.SearchRequest(query="quokka colonies", names=(source.public_id,))
    outcome = operations.run_search(services, admin, request)
    assert [h.artifact.path for h in outcome.hits][:1] == ["zanzibar.md"], outcome


def test_bases_survive_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home)
    try:
        with first.client() as c:
            kb = new_kb(c, "Durable")
            (node,) = data(upload(c, kb, {"keep.md": b"# Keep\n\nme\n"}))["nodes"]
            wait_ready(c, [node["node_id"]])
            snapshot = data(c.get(f"{KB}/files/{node['node_id']}"))["snapshot_object_id"]
            data(c.post(FAQS, json={"context_object_id": snapshot, "question": "kept?"}))
    finally:
        first.stop()
    second = start_server(home, admin_key=first.admin_key)
    try:
        with second.client() as c:
            assert [n["name"] for n in children(c, kb)] == ["keep.md"]
            assert data(c.get(f"{KB}/files/{node['node_id']}/content"))["content"] == "# Keep\n\nme\n"
            assert [f["question"] for f in data(c.get(FAQS, params={"context_object_id": snapshot}))] == ["kept?"]
    finally:
        second.stop()


def test_a_crawl_is_a_queued_job_and_a_cancelled_one_stores_nothing(services: Services) -> None:
    from dataclasses import replace

    from repolens.indexing.jobs import run_job

    db = services.store
    settings = replace(services.settings, git_allow_hosts=("127.0.0.1",))
    admin = Principal(create_key(db, name="a", plan=plan_for("free"), role="admin").row)
    root, target = knowledge.create_crawl(
        db, settings, admin, start_url="http://127.0.0.1:9/", folder_name="Site", config=None
    )
    queued = knowledge.sync_crawl(db, settings, admin, target.id)
    assert queued.state == "queued" and queued.runs == 1
    job = db.claim_job("test")
    assert job is not None and job.kind == knowledge.CRAWL_JOB and job.source_id == root.source_id
    knowledge.cancel_crawl(db, admin, target.id)
    assert run_job(settings, job.public_id) == 0  # the job child's entry point, as the runner calls it
    ran = db.get_job(job.public_id)
    assert ran is not None and ran.state == "Ready" and ran.phase == "cancelled"
    assert db.child_nodes(root.id) == [] and db.claim_job("test") is None  # nothing stored, nothing indexed
    # Synced again and run: the refused connection is the run's failure, recorded on the target.
    knowledge.sync_crawl(db, settings, admin, target.id)
    job = db.claim_job("test")
    assert job is not None
    assert knowledge.run_crawl_job(db, settings, job.public_id) == "failed"
    failed = knowledge.crawl_target(db, admin, target.id)[0]
    assert failed.state == "failed" and failed.runs == 2 and "127.0.0.1:9" in failed.failures
