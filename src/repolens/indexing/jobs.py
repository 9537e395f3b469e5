"""Durable indexing jobs: a table queue, a runner thread in the server, one child process per job.

States: ``New`` → ``Processing`` → ``Ready`` | ``Failed`` (with a reason). The runner claims the
oldest New job atomically and runs it in a child process (``python -m repolens.indexing.jobs
JOB_ID``), which keeps parsing and embedding off the server's cores' GIL and lets the pipeline
fork its own parse workers safely (forking a threaded server would not be).

Progress (phase, items done/total, overall percent) and a heartbeat are written to the job row,
at most every ``_PROGRESS_EVERY_S``. Nothing is lost when the server dies mid-job: the child
notices that its parent is gone and stops; on the next start every job still marked
Processing goes back to New and runs again. Indexing is incremental by content hash, so the
re-run skips what the first run already wrote, and each write is one transaction, so the
index is never left half-written.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from repolens.domain import Job
from repolens.errors import RepolensError
from repolens.settings import Settings, settings_env
from repolens.sources.git import scrub
from repolens.storage.base import Database

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often an idle runner looks for new jobs
# Shared database (many workers): a job whose heartbeat is older than the lease belongs to a
# worker that died; any worker puts it back in the queue. The runner beats every
# HEARTBEAT_S while its child works, whatever the child is doing, so a long transaction or a
# slow clone never looks dead; the lease is several beats long so one slow write is not fatal.
HEARTBEAT_S = 5.0
_PROGRESS_EVERY_S = 0.5  # job-row writes are throttled: each one takes the database write lock
_STOP_GRACE_S = 10  # a child asked to stop gets this long before it is killed
# A job whose process dies without recording an outcome (kill -9, the out-of-memory killer, a
# parser that crashes the interpreter) runs again, at most this many times in all: a crash that
# repeats on every attempt is a property of the job, not bad luck, and is reported as a failure.
MAX_JOB_ATTEMPTS = 3
# Seconds before the first retry of such a job, doubling for each later one: memory pressure or a
# kill from outside gets time to pass, and a poison job still fails within seconds.
RETRY_BACKOFF_S = 1.0
RETRY_BACKOFF_MAX_S = 60.0
# Share of the overall percentage per phase (sums to 100); measured proportions of a cold
# index with vectors on this machine kind, rounded.
PHASE_WEIGHTS: dict[str, float] = {
    "fetch": 5,
    "walk": 2,
    "read": 5,
    "parse": 25,
    "write": 8,
    "vectors": 55,
}
_PHASES = tuple(PHASE_WEIGHTS)
# What a phase's done/total count: files while the tree is walked, read, parsed and written,
# then search units (symbols, chunks, file summaries) while their vectors are computed.
PHASE_UNITS: dict[str, Literal["files", "units"]] = {
    "walk": "files",
    "read": "files",
    "parse": "files",
    "write": "files",
    "vectors": "units",
}
# A job of this kind embeds a source's units again without re-reading its files: the configured
# embedder changed (``queue_missing_vectors``), the lexical index is current and keeps answering.
VECTORS_JOB = "vectors"
# 100 % means done: a running job stops short of what any client would round up to 100.
_MAX_RUNNING_PERCENT = 99.0
# Phases whose items are reported from inside the store's write transaction: the job row
# cannot be updated there (same connection, and another one would wait for this very lock).
_IN_TRANSACTION = frozenset({"write"})


class _Orphaned(BaseException):
    """The server that started this child is gone: stop without touching the job's state."""


# Set by the child once its job's outcome (Ready or Failed) is in the database: a SIGTERM after
# that (the server stopping while this process exits) has nothing left to interrupt.
_OUTCOME_RECORDED = threading.Event()


class JobProgress:
    """``indexing.pipeline.Progress`` that writes phase, counts and percent to the job row."""

    def __init__(self, db: Database, job: Job, *, parent_pid: int | None) -> None:
        self.db = db
        self.job = job
        self.parent_pid = parent_pid
        self.phase = ""
        self.done = 0
        self.total = 0
        self._last_write = 0.0

    def check_parent(self) -> None:
        """Raise ``_Orphaned`` once the process that started this job is gone."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise _Orphaned

    def _percent(self) -> float:
        if self.phase not in PHASE_WEIGHTS:
            return 0.0
        before = sum(PHASE_WEIGHTS[p] for p in _PHASES[: _PHASES.index(self.phase)])
        share = (self.done / self.total) if self.total else 0.0
        return round(min(_MAX_RUNNING_PERCENT, before + PHASE_WEIGHTS[self.phase] * min(1.0, share)), 1)

    def _write(self, *, force: bool = False) -> None:
        self.check_parent()
        now = time.time()
        if not force and now - self._last_write < _PROGRESS_EVERY_S:
            return
        self._last_write = now
        self.db.update_job(
            self.job.id, phase=self.phase, done=self.done, total=self.total, percent=self._percent(), heartbeat_at=now
        )

    def start(self, phase: str, total: int | None) -> None:
        """A phase begins."""
        self.phase, self.done, self.total = phase, 0, total or 0
        self._write(force=True)

    def advance(self, phase: str, n: int = 1) -> None:
        """More items done."""
        self.done += n
        if phase in _IN_TRANSACTION:
            self.check_parent()
            return
        self._write()

    def finish(self, phase: str) -> None:
        """A phase ended."""
        if self.total:
            self.done = self.total
        self._write(force=True)

    def vectors(self, done: int, total: int) -> None:
        """Embedding progress in units (the backfill's callback); the first and the last count
        are always written, the ones between at the write throttle's pace."""
        first = self.phase != "vectors"
        self.phase, self.done, self.total = "vectors", done, total
        self._write(force=first or done >= total)


def phase_counts(job: Job) -> tuple[Literal["files", "units"], int, int] | None:
    """What the job's current phase has counted: (unit, done, total); None when it counts nothing."""
    unit = PHASE_UNITS.get(job.phase)
    return None if unit is None else (unit, job.done, job.total)


def run_job(settings: Settings, job_id: str, *, parent_pid: int | None = None) -> int:
    """Run one claimed job to its end in this process; return an exit code."""
    from repolens.embeddings.factory import load_embedder
    from repolens.indexing.pipeline import index_stored, record_failure
    from repolens.indexing.vectors import embed_and_compact
    from repolens.storage.factory import open_store

    db = open_store(settings)
    job = db.get_job(job_id)
    if job is not None and job.kind in JOB_KINDS:
        return _run_other(db, settings, job, parent_pid=parent_pid)
    if job is None or job.source_id is None:
        log.error("job %s does not exist", job_id)
        return 2
    progress = JobProgress(db, job, parent_pid=parent_pid)
    source = next((s for s in db.list_sources() if s.id == job.source_id), None)
    try:
        if source is None:
            raise RepolensError("the data source was deleted")
        embedder = load_embedder(settings)
        if job.kind != VECTORS_JOB:
            index_stored(db, settings, source, progress=progress, embedder=embedder)
        embed_and_compact(db, source.id, embedder, on_progress=progress.vectors)
        # An orphan does not record the outcome: its job may already be leased to another worker,
        # whose run would be marked Ready under it. The next run finds the index current and ends.
        progress.check_parent()
        db.update_job(job.id, state="Ready", phase="done", percent=100.0, finished_at=time.time(), heartbeat_at=time.time())
        _OUTCOME_RECORDED.set()
        return 0
    except _Orphaned:
        log.warning("job %s: the server went away; leaving the job to be resumed", job_id)
        return 3
    except Exception as exc:
        reason = scrub(str(exc) if isinstance(exc, RepolensError) else f"{type(exc).__name__}: {exc}")[:500]
        if not isinstance(exc, RepolensError):
            log.error("job %s crashed:\n%s", job_id, scrub(traceback.format_exc()))
        db.update_job(job.id, state="Failed", reason=reason or "failed", finished_at=time.time())
        _OUTCOME_RECORDED.set()
        fresh = next((s for s in db.list_sources() if s.id == job.source_id), None)
        if fresh is not None and fresh.state != "Failed":  # e.g. the vectors failed after the index
            record_failure(db, fresh, reason)
        return 1
    finally:
        db.close()


def queue_missing_vectors(db: Database, model: str) -> list[Job]:
    """Queue a ``VECTORS_JOB`` for every indexed source with units lacking a vector of ``model``.

    A server calls it on start-up, so switching ``REPOLENS_EMBEDDER`` and restarting re-embeds in
    the background while lexical search (and the vectors already there) keep answering. A source
    with an unfinished index job is left alone: that job embeds its units anyway.
    """
    queued: list[Job] = []
    for source in db.list_sources():
        if source.state != "Ready":
            continue
        ready, total = db.vector_counts(source.id, model)
        if ready >= total:
            continue
        if any(j.kind == "index" and j.state in ("New", "Processing") for j in db.jobs_for_source(source.id, limit=5)):
            continue
        queued.append(db.enqueue_job(kind=VECTORS_JOB, source_id=source.id))
    return queued


# Job kinds run by modules above this layer, looked up by name in the child process (importing
# them here would invert the layers): module, function(db, settings, job_public_id, still_mine).
JOB_KINDS: dict[str, tuple[str, str]] = {
    "workflow": ("repolens.workflows.jobs", "run_workflow_job"),
    "crawl": ("repolens.knowledge", "run_crawl_job"),  # a website crawled into a knowledge base
    "batch": ("repolens.batches.runner", "run_batch_job"),
    "eval": ("repolens.evals.runner", "run_eval_job"),
}


def _run_other(db: Database, settings: Settings, job: Job, *, parent_pid: int | None) -> int:
    """Run a job of one of ``JOB_KINDS``: its handler owns its own states; the job row only says
    whether the process got to the end (Ready) or crashed (Failed)."""
    import importlib

    module, function = JOB_KINDS[job.kind]
    progress = JobProgress(db, job, parent_pid=parent_pid)
    try:
        handler = getattr(importlib.import_module(module), function)
        outcome = handler(db, settings, job.public_id, progress.check_parent)
        progress.check_parent()
        db.update_job(
            job.id, state="Ready", phase=str(outcome), percent=100.0, finished_at=time.time(), heartbeat_at=time.time()
        )
        _OUTCOME_RECORDED.set()
        return 0
    except _Orphaned:
        log.warning("job %s: the server went away; leaving the job to be resumed", job.public_id)
        return 3
    except Exception as exc:
        reason = scrub(str(exc) if isinstance(exc, RepolensError) else f"{type(exc).__name__}: {exc}")[:500]
        log.error("job %s failed:\n%s", job.public_id, scrub(traceback.format_exc()))
        db.update_job(job.id, state="Failed", reason=reason or "failed", finished_at=time.time())
        _OUTCOME_RECORDED.set()
        return 1
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class Lane:
    """A kind of work with a runner slot of its own: one child process at a time per lane."""

    name: str
    kinds: tuple[str, ...] | None  # the job kinds it claims (None: any kind not excluded)
    exclude_kinds: tuple[str, ...] = ()


# Indexing and workflow executions share the queue but not a slot: a long indexing job (minutes
# for a big repository) must not hold back an execution a user is waiting on, nor a workflow
# waiting on slow model calls hold back indexing. Each lane claims only its own kinds, oldest
# first, so neither can starve the other. A workflow child is mostly waiting on the network, so
# the second slot costs little CPU on the two-core machine the defaults are sized for. A website
# crawl (``crawl``) waits on the network too, so it takes the second lane with the workflows.
LANES = (Lane("index", None, tuple(JOB_KINDS)), Lane("workflow", tuple(JOB_KINDS)))


@dataclass(slots=True)
class _Slot:
    """One lane's loop: its thread and the child (and job) it is running."""

    lane: Lane
    thread: threading.Thread | None = None
    child: subprocess.Popen[bytes] | None = None
    job: Job | None = None


class JobRunner:
    """Claims jobs and runs each in a child process, one at a time per lane (``LANES``: two cores,
    one for the child's parse workers and embedder, one for answering requests; a workflow child
    mostly waits on its model)."""

    def __init__(
        self, db: Database, settings: Settings, *, worker_name: str | None = None, lanes: Sequence[Lane] = LANES
    ) -> None:
        self.db = db
        self.settings = settings
        self.worker_name = worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self.lease_s = float(settings.job_lease_s)
        self.heartbeat_s = min(HEARTBEAT_S, self.lease_s / 4)  # several beats per lease, always
        self._stop = threading.Event()
        self._slots = [_Slot(lane) for lane in lanes]
        self._last_sweep = 0.0

    def start(self) -> None:
        """Resume interrupted jobs and start one loop per lane."""
        self._requeue_lost(force=True)
        for slot in self._slots:
            slot.thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"repolens-jobs-{slot.lane.name}", daemon=True
            )
            slot.thread.start()

    def _requeue_lost(self, *, force: bool = False) -> None:
        """Put the jobs of dead workers back in the queue."""
        now = time.time()
        if not force and now - self._last_sweep < self.lease_s / 4:
            return
        self._last_sweep = now
        if self.settings.uses_postgres:
            # Other workers may be alive and busy: only a job whose lease ran out is lost.
            resumed = self.db.requeue_stale_jobs(now - self.lease_s)
        elif force:
            # Embedded mode has one runner per data dir: any job still marked Processing lost
            # its process when the previous server stopped, so it starts again.
            resumed = self.db.requeue_stale_jobs(now + 1)
        else:
            return
        if resumed:
            log.info("resuming %d interrupted job(s)", resumed)

    def alive(self) -> bool:
        """Whether every lane's loop is running."""
        return bool(self._slots) and all(s.thread is not None and s.thread.is_alive() for s in self._slots)

    def stop(self) -> None:
        """Stop the loops; a running child is asked to stop and its job resumes (embedded: on the
        next start; shared database: at once, on any worker)."""
        self._stop.set()
        for slot in self._slots:
            child, job = slot.child, slot.job
            # A child whose job already has its outcome is only exiting: a signal now would
            # interrupt its interpreter's shutdown, not its work.
            if child is not None and child.poll() is None and (job is None or self._unfinished(job)):
                child.send_signal(signal.SIGTERM)
        for slot in self._slots:
            child, job = slot.child, slot.job
            if child is not None:
                try:
                    child.wait(_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.kill()
            if slot.thread is not None:
                slot.thread.join(_STOP_GRACE_S + 5)
            if job is not None and self.settings.uses_postgres:
                fresh = self.db.get_job(job.public_id)
                if fresh is not None and fresh.state == "Processing":
                    self.db.update_job(job.id, state="New")  # hand it to another worker now

    def _unfinished(self, job: Job) -> bool:
        try:
            fresh = self.db.get_job(job.public_id)
        except RepolensError:
            return True  # cannot tell: stop it, the job resumes either way
        return fresh is not None and fresh.state == "Processing"

    def _loop(self, slot: _Slot) -> None:
        lane = slot.lane
        while not self._stop.is_set():
            try:
                self._requeue_lost()
                job = self.db.claim_job(self.worker_name, kinds=lane.kinds, exclude_kinds=lane.exclude_kinds)
            except RepolensError as exc:
                log.warning("could not claim a job: %s", exc)
                job = None
            if job is None:
                self._stop.wait(POLL_S)
                continue
            self._run_child(slot, job)

    def _run_child(self, slot: _Slot, job: Job) -> None:
        log.info("job %s: started by %s (attempt %d)", job.public_id, self.worker_name, job.attempts)
        cmd: Sequence[str] = [sys.executable, "-m", "repolens.indexing.jobs", job.public_id, str(os.getpid())]
        env = {**os.environ, **settings_env(self.settings)}
        slot.job = job
        child = slot.child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        while True:
            try:
                code = child.wait(self.heartbeat_s)
                break
            except subprocess.TimeoutExpired:
                try:
                    self.db.update_job(job.id, heartbeat_at=time.time())
                except RepolensError as exc:  # the database is briefly unreachable: beat again later
                    log.warning("job %s: heartbeat failed: %s", job.public_id, exc)
        slot.child = None
        if self._stop.is_set():
            return  # stopping: see stop()
        fresh = self.db.get_job(job.public_id)
        if fresh is not None and fresh.state == "Processing":
            # The child died without recording an outcome (killed, out of memory).
            self._after_death(fresh, code)
            fresh = self.db.get_job(job.public_id)
        if not self._stop.is_set():
            slot.job = None
        log.info("job %s: %s", job.public_id, fresh.state if fresh else "deleted")

    def _after_death(self, job: Job, code: int) -> None:
        """Retry a job whose process died, after a backoff, up to ``MAX_JOB_ATTEMPTS``; then fail
        it and its source. The job stays Processing (and beating) while it waits, so no other
        worker takes it; a stop during the wait leaves it to be resumed like any running job."""
        from repolens.indexing.pipeline import record_failure

        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if job.attempts >= MAX_JOB_ATTEMPTS:
            reason = f"the indexing process {how} on each of {job.attempts} attempts; giving up"
            log.error("job %s: %s", job.public_id, reason)
            self.db.update_job(job.id, state="Failed", reason=reason, finished_at=time.time())
            source = next((s for s in self.db.list_sources() if s.id == job.source_id), None)
            if source is not None:
                record_failure(self.db, source, reason)
            return
        delay = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** (job.attempts - 1))
        reason = f"the indexing process {how}; retrying in {delay:.0f} s (attempt {job.attempts + 1} of {MAX_JOB_ATTEMPTS})"
        log.warning("job %s: %s", job.public_id, reason)
        self.db.update_job(job.id, reason=reason, heartbeat_at=time.time())
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, self.heartbeat_s)):
                return
            try:
                self.db.update_job(job.id, heartbeat_at=time.time())
            except RepolensError as exc:  # the database is briefly unreachable: beat again later
                log.warning("job %s: heartbeat failed: %s", job.public_id, exc)
        self.db.update_job(job.id, state="New")


def _child_main(argv: list[str]) -> int:
    from repolens.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s repolens.job %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    parent = int(argv[1]) if len(argv) > 1 else None
    if parent is not None:
        from repolens.indexing.pipeline import die_with_parent

        die_with_parent(parent)
    return run_job(load_settings(), argv[0], parent_pid=parent)


def _on_sigterm(signum: int, frame: object) -> None:
    if not _OUTCOME_RECORDED.is_set():
        raise _Orphaned


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
