"""In-memory fakes of the narrow storage protocols, beside the real backends.

They keep the contract of ``KeyStore`` and ``JobQueue`` (tests/test_store_contracts.py runs the
same scenarios over these, SQLite and PostgreSQL) so the core's key and job logic can be tested
in the fast tier without a database. Not thread-safe, not durable: never a backend.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import replace

from repolens.domain import ApiKey, Job, KeyRole
from repolens.errors import InvalidInput

# The job fields a caller may set (the SQL backends refuse the others the same way).
_UPDATABLE_JOB_FIELDS = frozenset(
    {"state", "reason", "phase", "done", "total", "percent", "heartbeat_at", "finished_at", "started_at"}
)


class MemoryKeys:
    """``KeyStore`` in a dict."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._org: tuple[str, str] | None = None

    def create_key(
        self,
        *,
        key_id: str,
        digest: str,
        name: str,
        role: KeyRole,
        plan: str,
        requests_per_hour: int,
        concurrency: int,
        scopes: Sequence[str],
        expires_at: float | None,
    ) -> ApiKey:
        """Store a new key."""
        key = ApiKey(
            id=len(self._keys) + 1,
            key_id=key_id,
            digest=digest,
            name=name,
            role=role,
            plan=plan,
            requests_per_hour=requests_per_hour,
            concurrency=concurrency,
            scopes=tuple(scopes),
            created_at=time.time(),
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        self._keys[key_id] = key
        return key

    def get_key(self, key_id: str) -> ApiKey | None:
        """A key by its public id (revoked ones included)."""
        return self._keys.get(key_id)

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return sorted(self._keys.values(), key=lambda k: k.id)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key."""
        key = self._keys.get(key_id)
        if key is None:
            return False
        if key.revoked_at is None:
            self._keys[key_id] = replace(key, revoked_at=time.time())
        return True

    def organization(self, default_name: str) -> tuple[str, str, bool]:
        """(public id, name, created now) of the install's organization, created on first call."""
        if self._org is not None:
            return (*self._org, False)
        self._org = (secrets.token_hex(12), default_name)
        return (*self._org, True)


class MemoryJobs:
    """``JobQueue`` in a list, one source's jobs running one at a time as in the SQL backends."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []

    def _new(self, kind: str, source_id: int) -> Job:
        job = Job(
            id=len(self._jobs) + 1,
            public_id=secrets.token_hex(12),
            source_id=source_id,
            kind=kind,
            state="New",
            reason="",
            phase="",
            done=0,
            total=0,
            percent=0.0,
            attempts=0,
            created_at=time.time(),
            started_at=None,
            finished_at=None,
            heartbeat_at=None,
        )
        self._jobs.append(job)
        return job

    def enqueue_job(self, *, kind: str, source_id: int) -> Job:
        """A new job in state New, or the source's unfinished job of that kind if there is one."""
        for job in self._jobs:
            if job.source_id == source_id and job.kind == kind and job.state in ("New", "Processing"):
                if job.state == "New":
                    return job
                break  # a running job may have read the files already: queue one more behind it
        return self._new(kind, source_id)

    def get_job(self, job_id: str) -> Job | None:
        """A job by public id."""
        return next((j for j in self._jobs if j.public_id == job_id), None)

    def jobs_for_source(self, source_id: int, limit: int = 20) -> list[Job]:
        """The source's jobs, newest first."""
        return [j for j in reversed(self._jobs) if j.source_id == source_id][:limit]

    def claim_job(self, worker: str, *, kinds: Sequence[str] | None = None, exclude_kinds: Sequence[str] = ()) -> Job | None:
        """Move the oldest New job (of ``kinds``, not of ``exclude_kinds``) whose source has no job in
        Processing to Processing."""
        busy = {j.source_id for j in self._jobs if j.state == "Processing" and j.source_id is not None}
        for index, job in enumerate(self._jobs):
            if (kinds is not None and job.kind not in kinds) or job.kind in exclude_kinds:
                continue
            if job.state == "New" and (job.source_id is None or job.source_id not in busy):
                now = time.time()
                claimed = replace(
                    job,
                    state="Processing",
                    attempts=job.attempts + 1,
                    started_at=job.started_at or now,
                    heartbeat_at=now,
                    reason="",
                )
                self._jobs[index] = claimed
                return claimed
        return None

    def update_job(self, job_id: int, **fields: object) -> None:
        """Set state, reason, phase, done, total, percent, heartbeat_at or finished_at."""
        unknown = set(fields) - _UPDATABLE_JOB_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update job fields {sorted(unknown)!r}")
        for index, job in enumerate(self._jobs):
            if job.id == job_id:
                self._jobs[index] = replace(job, **fields)  # type: ignore[arg-type]

    def requeue_stale_jobs(self, older_than: float) -> int:
        """Put Processing jobs whose heartbeat is older than ``older_than`` back to New."""
        count = 0
        for index, job in enumerate(self._jobs):
            if job.state == "Processing" and (job.heartbeat_at or 0) < older_than:
                self._jobs[index] = replace(job, state="New")
                count += 1
        return count
