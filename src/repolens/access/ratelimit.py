"""Per-key rate limits: requests per hour and requests in flight.

A fixed one-hour window per key that starts with the key's first request in it: simple to
explain in the ``X-RateLimit-*`` headers (``Reset`` is the window's end) and exact per key.
The embedded server is one process, so its counts live here. Replicas of the PostgreSQL
deployment count hourly quotas in the database instead (``SharedQuota``: one atomic upsert per
request, windows aligned to the clock hour so every replica agrees on them), so a key's quota
holds whichever replica serves it. Requests in flight are counted per replica: a replica that
crashes must not leave a key's slots taken forever.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

WINDOW_S = 3600  # plans are stated per hour
CONCURRENCY_RETRY_S = 1  # a slot frees up as soon as one of the key's requests finishes


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of asking for one more request, with the numbers the headers carry."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the window ends
    retry_after: int  # seconds; 0 when allowed
    reason: str = ""


@runtime_checkable
class SharedQuota(Protocol):
    """Quota counters kept where every replica sees them (the PostgreSQL store)."""

    def take_quota(self, bucket: str, window_start: int, limit: int) -> int | None:
        """Count one request in ``bucket``'s window; the count after it, or None if the window
        already holds ``limit`` (nothing is counted then)."""
        ...


@dataclass(slots=True)
class _Window:
    start: float
    used: int
    in_flight: int


class RateLimiter:
    """Counts requests per key; thread-safe."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, shared: SharedQuota | None = None, bucket: str = "api"
    ) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._now = clock
        self._shared = shared
        self._bucket = bucket  # separate quotas for separate limiters (search vs chat)

    def acquire(self, key_id: str, *, per_hour: int, concurrency: int) -> Decision:
        """Take one request from the key's quota and one concurrency slot, or refuse."""
        now = self._now()
        if self._shared is not None:
            return self._acquire_shared(key_id, now, per_hour=per_hour, concurrency=concurrency)
        with self._lock:
            window = self._windows.get(key_id)
            if window is None or now >= window.start + WINDOW_S:
                window = _Window(now, 0, window.in_flight if window else 0)
                self._windows[key_id] = window
            reset = math.ceil(window.start + WINDOW_S)
            if window.used >= per_hour:
                retry = max(1, math.ceil(window.start + WINDOW_S - now))
                return Decision(False, per_hour, 0, reset, retry, f"rate limit of {per_hour} requests per hour reached")
            if window.in_flight >= concurrency:
                return Decision(
                    False,
                    per_hour,
                    per_hour - window.used,
                    reset,
                    CONCURRENCY_RETRY_S,
                    f"more than {concurrency} concurrent requests for this key",
                )
            window.used += 1
            window.in_flight += 1
            return Decision(True, per_hour, per_hour - window.used, reset, 0)

    def _acquire_shared(self, key_id: str, now: float, *, per_hour: int, concurrency: int) -> Decision:
        assert self._shared is not None
        start = int(now // WINDOW_S) * WINDOW_S
        reset = start + WINDOW_S
        with self._lock:
            window = self._windows.setdefault(key_id, _Window(start, 0, 0))
            if window.in_flight >= concurrency:
                return Decision(
                    False,
                    per_hour,
                    max(0, per_hour - window.used),
                    reset,
                    CONCURRENCY_RETRY_S,
                    f"more than {concurrency} concurrent requests for this key",
                )
            window.in_flight += 1  # held while the database is asked, so a burst cannot overshoot
        try:
            used = self._shared.take_quota(f"{self._bucket}:{key_id}", start, per_hour)
        except BaseException:
            self.release(key_id)  # a database outage must not leave the slot taken for good
            raise
        if used is None:
            self.release(key_id)
            retry = max(1, math.ceil(reset - now))
            return Decision(False, per_hour, 0, reset, retry, f"rate limit of {per_hour} requests per hour reached")
        with self._lock:
            window.used = used
        return Decision(True, per_hour, per_hour - used, reset, 0)

    def release(self, key_id: str) -> None:
        """The request that took a slot has finished."""
        with self._lock:
            window = self._windows.get(key_id)
            if window is not None and window.in_flight > 0:
                window.in_flight -= 1
