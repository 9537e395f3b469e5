"""The batch job: answers pending items of every batch, a few at a time, in the job's process.

``run_batch_job`` is what the job child process runs for a job of kind ``batch``
(``indexing/jobs.py`` looks the kind up by module name). One job serves every workspace's
batches: it claims items with ``BatchStore.claim_items`` (at most ``REPOLENS_BATCH_SLOTS`` in
flight, at most ``REPOLENS_BATCH_WORKSPACE_SLOTS`` of one workspace, the workspace with the
fewest running first), answers each through an ``ItemAnswerer`` concurrently (each mostly waits
on the model), and writes each outcome with ``finish_item``. After ``REPOLENS_BATCH_SLICE``
seconds it stops claiming, lets its items finish, and queues its successor if items remain, so
indexing jobs get their turn on the queue between slices.

Durability: an item is ``running`` under this job's id until its outcome is written. A job that
starts (or restarts after a crash: the queue hands the same job id to the new process) first puts
back every running item of a job that is no longer running, so none is lost; an answer already
written under an item's key is reused, not asked again (``answer.ItemAnswerer``), so none is
answered twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from repolens.access.keys import Principal
from repolens.batches.answer import ItemAnswerer, ItemQuestion, RuntimeAnswerer
from repolens.domain import ApiKey
from repolens.errors import Forbidden, RateLimited, RepolensError, status_of
from repolens.services import Services
from repolens.settings import Settings
from repolens.storage.base import Database
from repolens.storage.batch_store import COMPLETED, FAILED, ItemRecord

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.25  # how long the loop waits for an item to finish before it looks for more work
KEY_PREFIX = "batch-item-"  # the idempotency key of an item's answer: this plus the item's row id


def principal_from(db: Database, snapshot: dict[str, Any]) -> Principal:
    """The submitter's principal: its API key as it is now (a revoked key answers no more
    items), else (a signed-in person) as stored with the batch."""
    stored = db.get_key(str(snapshot["key_id"]))
    if stored is not None:
        if stored.revoked_at is not None:
            raise Forbidden("the API key that submitted this batch was revoked")
        return Principal(stored)
    key = ApiKey(
        id=0,
        key_id=str(snapshot["key_id"]),
        digest="",
        name=str(snapshot.get("name", "")),
        role=snapshot.get("role", "user"),
        plan=str(snapshot.get("plan", "")),
        requests_per_hour=int(snapshot.get("requests_per_hour", 0)),
        concurrency=int(snapshot.get("concurrency", 0)),
        scopes=tuple(snapshot.get("scopes", ())),
        created_at=0.0,
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
    )
    return Principal(key)


class BatchRunner:
    """Runs one slice of the batch queue for one job."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        job_public_id: str,
        answerer: ItemAnswerer,
        still_mine: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.job_id = job_public_id
        self.answerer = answerer
        self.still_mine = still_mine or (lambda: None)
        self._principals: dict[int, Principal] = {}
        self._paused_until = 0.0  # the submitter's chat allowance ran out: claim nothing until then
        self.answered = 0

    async def run(self) -> int:
        """Answer items until none is left or the slice ends; how many this job answered."""
        resumed = await asyncio.to_thread(self.db.reclaim_items, self.job_id)
        if resumed:
            log.info("batch job %s: %d interrupted item(s) back in the queue", self.job_id, resumed)
        deadline = time.monotonic() + self.settings.batch_slice_s
        inflight: set[asyncio.Task[None]] = set()
        while True:
            self.still_mine()
            now = time.monotonic()
            free = self.settings.batch_slots - len(inflight)
            if free > 0 and now < deadline and now >= self._paused_until:
                claimed = await asyncio.to_thread(
                    self.db.claim_items, self.job_id, slots=free, per_workspace=self.settings.batch_workspace_slots
                )
                for item in claimed:
                    inflight.add(asyncio.create_task(self._one(item)))
            if not inflight:
                if now < min(self._paused_until, deadline):  # waiting for the allowance, within the slice
                    await asyncio.sleep(min(IDLE_WAIT_S, self._paused_until - now))
                    continue
                break
            done, inflight = await asyncio.wait(inflight, timeout=IDLE_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # _one handles its own errors; anything else is a bug to surface
        if time.monotonic() >= deadline and await asyncio.to_thread(self.db.pending_items) > 0:
            successor = await asyncio.to_thread(self.db.enqueue_batch_job)
            log.info("batch job %s: slice over; %s continues", self.job_id, successor)
        return self.answered

    def _principal(self, item: ItemRecord) -> Principal:
        if item.batch_id not in self._principals:
            self._principals[item.batch_id] = principal_from(self.db, self.db.batch_principal(item.batch_id))
        return self._principals[item.batch_id]

    async def _one(self, item: ItemRecord) -> None:
        question = ItemQuestion(
            key=f"{KEY_PREFIX}{item.id}",
            agent_id=item.agent_id,
            message=item.message,
            history_id=item.history_id,
            external_user_id=item.external_user_id,
            name=item.name,
            attachments=item.attachments,
        )
        give_up = self.settings.webhook_retry_for_s
        try:
            principal = await asyncio.to_thread(self._principal, item)
            answer = await self.answerer.answer(principal, question)
        except RateLimited as exc:
            # Batch items count against the submitter's chat allowance: an item over it waits
            # for the allowance instead of failing.
            self._paused_until = time.monotonic() + max(1, exc.retry_after)
            await asyncio.to_thread(self.db.release_item, item.id, self.job_id)
            return
        except RepolensError as exc:
            error = {"status": status_of(exc), "message": str(exc)[:1000]}
            await asyncio.to_thread(
                lambda: self.db.finish_item(item.id, self.job_id, give_up_after_s=give_up, state=FAILED, error=error)
            )
            return
        except Exception as exc:  # a crash answering one item fails that item, not the batch
            log.exception("batch item %s crashed", item.id)
            error = {"status": 500, "message": f"internal error: {type(exc).__name__}"}
            await asyncio.to_thread(
                lambda: self.db.finish_item(item.id, self.job_id, give_up_after_s=give_up, state=FAILED, error=error)
            )
            return
        await asyncio.to_thread(
            lambda: self.db.finish_item(
                item.id,
                self.job_id,
                give_up_after_s=give_up,
                state=COMPLETED,
                chat_id=answer.chat_id,
                message_id=answer.message_id,
                response=answer.response,
                usage=answer.usage,
            )
        )
        self.answered += 1


def run_batch_job(db: Database, settings: Settings, job_public_id: str, still_mine: Any = None) -> str:
    """Run a batch job's slice; what it did, for the job row."""
    services = Services(settings)
    try:
        runner = BatchRunner(db, settings, job_public_id, RuntimeAnswerer(services), still_mine)
        answered = asyncio.run(runner.run())
    finally:
        services.close()
    return f"answered {answered}"
