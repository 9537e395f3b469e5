"""Per-key rate limits: requests per hour and requests in flight.

A fixed one-hour window per key that starts with the key's first request in it: simple to
explain in the ``X-RateLimit-*`` headers (``Reset`` is the window's end) and exact per key.
State lives in this process; the embedded server is one process. (Sharing it across replicas
belongs to the PostgreSQL deployment.)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(slots=True)
class _Window:
    start: float
    used: int
    in_flight: int


class RateLimiter:
    """Counts requests per key; thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._now = clock

    def acquire(self, key_id: str, *, per_hour: int, concurrency: int) -> Decision:
        """Take one request from the key's quota and one concurrency slot, or refuse."""
        now = self._now()
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
                return Decision(False, per_hour, per_hour - window.used, reset, CONCURRENCY_RETRY_S,
                                f"more than {concurrency} concurrent requests for this key")  # fmt: skip
            window.used += 1
            window.in_flight += 1
            return Decision(True, per_hour, per_hour - window.used, reset, 0)

    def release(self, key_id: str) -> None:
        """The request that took a slot has finished."""
        with self._lock:
            window = self._windows.get(key_id)
            if window is not None and window.in_flight > 0:
                window.in_flight -= 1
