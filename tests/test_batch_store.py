"""The batch queue's guarantees in both backends, without a server: slots shared fairly between
workspaces, an item finished only by the job that holds it, a dead job's items back in the
queue, a batch settled (and its webhook event made) exactly once; and the webhook URL check,
signature and backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from repolens.batches import webhooks
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.batch_store import NewItem

GIVE_UP_S = 60.0


def _batch(db: Database, workspace: int, n: int, *, events: list[str] | None = None) -> int:
    items = [NewItem(f"c{i}", "agent", f"m{i}") for i in range(n)]
    hook = {"url": "https://example.com/h", "events": events, "secret": "s"} if events else {}
    made = db.create_batch(
        workspace_id=workspace, owner="k", principal={"key_id": "k"}, agent_id="a", webhook=hook, items=items
    )
    return made.id


def _states(db: Database, batch_id: int) -> list[str]:
    return [i.state for i in db.batch_items(batch_id, offset=0, limit=100)]


@pytest.mark.backends
def test_claims_share_slots_fairly_and_each_item_finishes_once(services: Services) -> None:
    db = services.store
    big = _batch(db, 1, 10, events=["completed"])
    small = _batch(db, 2, 2)
    job = db.claim_job("w1")
    assert job is not None and job.kind == "batch"
    assert db.claim_job("w2") is None  # one waiting batch job serves every batch
    first = db.claim_items(job.public_id, slots=4, per_workspace=3)
    assert sorted(i.workspace_id for i in first) == [1, 1, 2, 2]  # the small workspace is not starved
    second = db.claim_items(job.public_id, slots=4, per_workspace=3)
    assert [i.workspace_id for i in second] == [1]  # workspace 1 is at its 3 slots
    held = first[0]
    assert db.finish_item(held.id, "another-job", give_up_after_s=GIVE_UP_S, state="completed") == []
    assert db.reclaim_items("a-dead-job") == 0  # this job is running: its items stay its own
    assert db.reclaim_items(job.public_id) == 5  # a re-run of this job: its previous process died
    events = []
    while claimed := db.claim_items(job.public_id, slots=20, per_workspace=20):
        for item in claimed:
            events += db.finish_item(item.id, job.public_id, give_up_after_s=GIVE_UP_S, state="completed", response="ok")
    assert db.finish_item(held.id, job.public_id, give_up_after_s=GIVE_UP_S, state="failed") == []  # already done
    assert _states(db, big) == ["completed"] * 10 and _states(db, small) == ["completed"] * 2
    (event,) = events  # the big batch's, once; the small one has no webhook
    assert (event.event, event.url, event.state, event.payload["event"]) == (
        "completed",
        "https://example.com/h",
        "pending",
        "completed",
    )
    got = db.get_batch(event.payload["batch_id"])
    assert got is not None and got.status == "completed" and got.counts == {"completed": 10}
    assert not db.cancel_batch(big, give_up_after_s=GIVE_UP_S)  # an ended batch cannot be cancelled


@pytest.mark.backends
def test_cancel_lets_running_items_finish_then_fires_once(services: Services) -> None:
    db = services.store
    batch = _batch(db, 1, 3, events=["cancelled", "completed"])
    job = db.claim_job("w1")
    assert job is not None
    (running,) = db.claim_items(job.public_id, slots=1, per_workspace=1)
    assert db.cancel_batch(batch, give_up_after_s=GIVE_UP_S)
    assert _states(db, batch) == ["running", "cancelled", "cancelled"]
    assert db.claim_items(job.public_id, slots=5, per_workspace=5) == []
    (event,) = db.finish_item(running.id, job.public_id, give_up_after_s=GIVE_UP_S, state="completed", response="x")
    assert event.event == "cancelled"
    due = db.due_webhook_events(event.next_attempt_at + 1, 10)
    assert [e.id for e in due] == [event.id]
    assert db.lease_webhook_event(
        event.id, seen_next_attempt_at=event.next_attempt_at, lease_until=event.next_attempt_at + 30
    )
    assert not db.lease_webhook_event(event.id, seen_next_attempt_at=event.next_attempt_at, lease_until=0)  # taken
    db.record_webhook_attempt(
        event.id,
        attempt=1,
        status_code=500,
        error="boom",
        duration_ms=3,
        outcome="pending",
        next_attempt_at=event.next_attempt_at + 2,
    )
    db.record_webhook_attempt(
        event.id,
        attempt=2,
        status_code=200,
        error="",
        duration_ms=2,
        outcome="delivered",
        next_attempt_at=event.next_attempt_at + 2,
    )
    ((stored, attempts),) = db.webhook_events(batch)
    assert stored.state == "delivered" and stored.delivered_at is not None
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 200)]
    assert db.due_webhook_events(event.next_attempt_at + 100, 10) == []


def test_webhook_urls_signatures_and_backoff(tmp_path: Path) -> None:
    allow = ("127.0.0.1",)
    assert webhooks.check_url("http://127.0.0.1:9/h", allow_hosts=allow) == "http://127.0.0.1:9/h"
    for url, why in [
        ("http://127.0.0.1:9/h", "must be https"),  # not allowed without the operator's list
        ("https://127.0.0.1/h", "private"),
        ("https://[::1]/h", "private"),
        ("https://192.168.1.10/h", "private"),
        ("https://user@example.com/h", "credentials"),
        ("https://exa mple.com/h", "whitespace"),
        ("", "1 to"),
        (42, "1 to"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            webhooks.check_url(url, allow_hosts=())
    body = b'{"id":"e1","event":"completed"}'
    signature = webhooks.sign("secret", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert webhooks.verify("secret", body, signature) and not webhooks.verify("secret", body + b" ", signature)
    settings = Settings(home=tmp_path, webhook_retry_base_ms=1000, webhook_retry_max_ms=8000)
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [webhooks.next_delay_s(attempt, settings) for _ in range(50)]
        assert all(nominal * (1 - webhooks.JITTER) <= d <= nominal for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered


def test_judge_verdicts_are_parsed_strictly_and_templates_filled() -> None:
    from repolens.evals.runner import parse_verdict, render

    assert parse_verdict('Sure. {"score": 0.75, "reason": "mostly"} done') == (0.75, "mostly")
    assert parse_verdict('{"score": 7, "reason": "generous"}') == (1.0, "generous")  # clamped to 0..1
    assert parse_verdict('{"score": -1}') == (0.0, "")
    for bad in ["no json here", '{"score": "high"}', '{"reason": "no score"}', '{"score": NaN}', "{broken"]:
        score, reason = parse_verdict(bad)
        assert score == 0.0 and reason.startswith("the judge's reply was not a JSON verdict"), bad
    template = 'Grade {output} for {input} by {rubric}; keep {unknown} and {"json": 1}'
    filled = render(template, {"output": "A", "input": "Q", "rubric": "R"})
    assert filled == 'Grade A for Q by R; keep {unknown} and {"json": 1}'
