"""Batch webhooks: the URL check, the signature, and the dispatcher that delivers events.

* A webhook URL must be ``https`` to a public address, checked like a git clone's host
  (``sources/git.check_host``); plain ``http`` and private addresses only for the hosts an
  operator lists in ``REPOLENS_WEBHOOK_ALLOW_HOSTS`` (their own receivers; loopback in tests).
  The host is checked again before every attempt, since a name can resolve elsewhere later.
* The body is JSON ``{"id", "event", "batch", "timestamp"}``: ``id`` is the event's id, the same on
  every attempt (receivers de-duplicate on it: delivery is at least once); ``timestamp`` is the
  attempt's time, also sent as ``X-Codeer-Timestamp``. With a secret, ``X-Codeer-Signature:
  sha256=<hex>`` is HMAC-SHA256 of the secret over the raw body, so the signature covers the
  timestamp too and a receiver can refuse an old (replayed) body.
* The dispatcher is a thread of the server (and of each worker): it takes due events with a lease,
  sends each from a small pool with a short timeout (``REPOLENS_WEBHOOK_TIMEOUT_MS``), records
  every attempt, and schedules the next one with exponential backoff and jitter until the
  event's retry window closes. Batch items run in job processes, so a slow or dead receiver
  never holds the queue; at worst it holds one of the pool's threads for one timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from repolens.errors import InvalidInput, RepolensError
from repolens.sources import git
from repolens.storage.batch_store import EVENT_DELIVERED, EVENT_FAILED, EVENT_PENDING, WebhookEvent

if TYPE_CHECKING:
    from repolens.settings import Settings
    from repolens.storage.base import Database

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Codeer-Signature"
TIMESTAMP_HEADER = "X-Codeer-Timestamp"
EVENT_ID_HEADER = "X-Codeer-Event-Id"
EVENTS = ("completed", "failed", "cancelled")
DEFAULT_EVENTS = ("completed", "failed")  # Codeer's default subscription
MAX_URL_CHARS = 2_000
MAX_SECRET_CHARS = 255  # Codeer's limit
POLL_S = 0.2  # how often the dispatcher looks for due events
POOL_THREADS = 4  # attempts in flight per dispatcher: a few dead receivers cannot starve the rest
LEASE_TIMEOUTS = 3  # an attempt's lease is this many timeouts long: no second sender meanwhile
BATCH_EVENTS_PER_POLL = 32
JITTER = 0.25  # each delay is randomly up to 25 % shorter, so retries of many events spread out


def check_url(url: object, *, allow_hosts: tuple[str, ...]) -> str:
    """The webhook URL if it may be called, else ``InvalidInput`` saying why."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"webhook.url must be a URL of 1 to {MAX_URL_CHARS} characters")
    url = url.strip()
    if any(c in url for c in "\n\r\t\0 "):
        raise InvalidInput("webhook.url must be a single token without whitespace")
    try:
        parts = git.split_url(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # an out-of-range or malformed port raises here
    except (ValueError, InvalidInput):
        raise InvalidInput(f"webhook.url is not a valid URL: {url[:80]!r}") from None
    if not host:
        raise InvalidInput(f"webhook.url has no host: {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("webhook.url must not carry credentials; use webhook.secret to sign instead")
    scheme = parts.scheme.lower()
    allowed = host in allow_hosts
    if scheme != "https" and not (scheme == "http" and allowed):
        raise InvalidInput(f"webhook.url must be https (got {scheme or 'no scheme'!r})")
    if not allowed:
        try:
            git.check_host(url, allow_hosts=allow_hosts)
        except RepolensError as exc:
            raise InvalidInput(f"webhook.url refused: {str(exc).replace('git host', 'host')}") from None
    return url


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether a signature header matches the body (what a receiver does), in constant time."""
    return hmac.compare_digest(sign(secret, body), header)


def body_of(event: WebhookEvent, batch: dict[str, Any], at: float) -> bytes:
    """The raw body of one attempt."""
    doc = {"id": event.public_id, "event": event.event, "batch": batch, "timestamp": int(at)}
    return json.dumps(doc, separators=(",", ":")).encode()


def next_delay_s(attempt: int, settings: Settings) -> float:
    """The wait before attempt ``attempt + 1``: doubling from the base, capped, with jitter."""
    base = settings.webhook_retry_base_ms / 1000 * 2 ** (attempt - 1)
    capped = min(base, settings.webhook_retry_max_ms / 1000)
    return float(capped * (1 - JITTER * random.random()))


class Dispatcher:
    """Delivers due webhook events from a thread; ``batch_json(public_id)`` renders the batch."""

    def __init__(self, db: Database, settings: Settings, batch_json: Any) -> None:
        self.db = db
        self.settings = settings
        self.batch_json = batch_json
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="repolens-webhook")
        self._inflight: set[int] = set()
        self._lock = threading.Lock()
        self._timeout_s = settings.webhook_timeout_ms / 1000
        self._client = httpx.Client(timeout=self._timeout_s, follow_redirects=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="repolens-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._timeout_s + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the database is briefly unreachable: look again later
                log.exception("webhook dispatcher: poll failed")
            self._stop.wait(POLL_S)

    def poll(self) -> int:
        """Start an attempt for each due event a free thread can take; how many were started."""
        with self._lock:
            free = POOL_THREADS - len(self._inflight)
        if free <= 0:
            return 0
        started = 0
        for event in self.db.due_webhook_events(time.time(), BATCH_EVENTS_PER_POLL):
            if started >= free:
                break
            with self._lock:
                if event.id in self._inflight:
                    continue
            lease = time.time() + LEASE_TIMEOUTS * self._timeout_s
            if not self.db.lease_webhook_event(event.id, seen_next_attempt_at=event.next_attempt_at, lease_until=lease):
                continue  # another dispatcher took it
            with self._lock:
                self._inflight.add(event.id)
            self._pool.submit(self._attempt, event)
            started += 1
        return started

    def _attempt(self, event: WebhookEvent) -> None:
        try:
            self.deliver(event)
        except Exception:
            log.exception("webhook %s: attempt crashed", event.public_id)
        finally:
            with self._lock:
                self._inflight.discard(event.id)

    def deliver(self, event: WebhookEvent) -> str:
        """One attempt at an event, recorded; the event's state after it."""
        attempt = event.attempts + 1
        now = time.time()
        status: int | None = None
        error = ""
        started = time.monotonic()
        try:
            check_url(event.url, allow_hosts=self.settings.webhook_allow_hosts)
            body = body_of(event, self.batch_json(event.payload["batch_id"]), now)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "repolens-webhooks/1",
                TIMESTAMP_HEADER: str(int(now)),
                EVENT_ID_HEADER: event.public_id,
            }
            if event.secret:
                headers[SIGNATURE_HEADER] = sign(event.secret, body)
            response = self._client.post(event.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except InvalidInput as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        elapsed_ms = (time.monotonic() - started) * 1000
        if not error:
            outcome, next_at = EVENT_DELIVERED, now
        else:
            next_at = time.time() + next_delay_s(attempt, self.settings)
            outcome = EVENT_PENDING if next_at < event.give_up_at else EVENT_FAILED
        self.db.record_webhook_attempt(
            event.id,
            attempt=attempt,
            status_code=status,
            error=error,
            duration_ms=round(elapsed_ms, 1),
            outcome=outcome,
            next_attempt_at=next_at,
        )
        if outcome != EVENT_DELIVERED:
            log.warning("webhook %s: attempt %d failed (%s); %s", event.public_id, attempt, error, outcome)
        return outcome
