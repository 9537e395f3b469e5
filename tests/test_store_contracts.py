"""The narrow storage protocols keep one contract on every implementation: the in-memory fakes
(storage/memory.py) behave as SQLite and PostgreSQL do, so fast-tier tests over the fakes say
something true about the server."""

from __future__ import annotations

import time

import pytest

from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.storage.base import JobQueue, KeyStore
from repolens.storage.memory import MemoryJobs, MemoryKeys


def keys_contract(keys: KeyStore) -> None:
    org = keys.organization("acme")
    assert org[1:] == ("acme", True)
    assert keys.organization("other") == (org[0], "acme", False), "created once, then read"
    common = {"role": "member", "plan": "free", "requests_per_hour": 60, "concurrency": 2, "expires_at": None}
    first = keys.create_key(key_id="1001", digest="d1", name="ci", scopes=("abc",), **common)  # type: ignore[arg-type]
    keys.create_key(key_id="1002", digest="d2", name="bot", scopes=(), **common)  # type: ignore[arg-type]
    assert (first.key_id, first.digest, first.scopes, first.revoked_at) == ("1001", "d1", ("abc",), None)
    assert [k.key_id for k in keys.list_keys()] == ["1001", "1002"], "oldest first"
    assert keys.get_key("1003") is None
    assert keys.revoke_key("1001") and not keys.revoke_key("1003")
    revoked = keys.get_key("1001")
    assert revoked is not None and revoked.revoked_at is not None
    assert keys.revoke_key("1001")
    again = keys.get_key("1001")
    assert again is not None and again.revoked_at == revoked.revoked_at, "revoking twice keeps the first time"


def jobs_contract(jobs: JobQueue, one: int, two: int) -> None:
    queued = jobs.enqueue_job(kind="index", source_id=one)
    assert (queued.state, queued.attempts) == ("New", 0)
    assert jobs.enqueue_job(kind="index", source_id=one).public_id == queued.public_id, "a New job is reused"
    claimed = jobs.claim_job("w1")
    assert claimed is not None and (claimed.public_id, claimed.state, claimed.attempts) == (
        queued.public_id,
        "Processing",
        1,
    )
    behind = jobs.enqueue_job(kind="index", source_id=one)
    assert behind.public_id != queued.public_id, "a running job may have read the files: one more run"
    assert jobs.claim_job("w2") is None, "a source's jobs run one at a time"
    other = jobs.enqueue_job(kind="index", source_id=two)
    got = jobs.claim_job("w2")
    assert got is not None and got.public_id == other.public_id
    with pytest.raises(InvalidInput):
        jobs.update_job(claimed.id, worker="me")
    jobs.update_job(claimed.id, state="Ready", percent=100.0, finished_at=time.time())
    done = jobs.get_job(claimed.public_id)
    assert done is not None and (done.state, done.percent) == ("Ready", 100.0)
    nxt = jobs.claim_job("w1")
    assert nxt is not None and nxt.public_id == behind.public_id
    assert [j.public_id for j in jobs.jobs_for_source(one)] == [behind.public_id, queued.public_id]
    assert jobs.requeue_stale_jobs(time.time() + 60) == 2, "both Processing jobs are stale"
    requeued = jobs.get_job(other.public_id)
    assert requeued is not None and requeued.state == "New"
    assert jobs.get_job("0" * 24) is None


@pytest.mark.backends
def test_database_keeps_the_key_contract(services: Services) -> None:
    keys_contract(services.store)


def test_memory_fake_keeps_the_key_contract() -> None:
    keys_contract(MemoryKeys())


@pytest.mark.backends
def test_database_keeps_the_job_contract(services: Services) -> None:
    store = services.store
    one = store.create_source(name="one", location="/one", branch=None)
    two = store.create_source(name="two", location="/two", branch=None)
    jobs_contract(store, one.id, two.id)


def test_memory_fake_keeps_the_job_contract() -> None:
    jobs_contract(MemoryJobs(), 1, 2)
