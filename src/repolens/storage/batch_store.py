"""Batches, their items and their webhook events in both SQL backends (the shared SQL).

The writes that carry the guarantees:

* ``create_batch``: the batch, every item and the job that runs them in one transaction;
* ``claim_items``: pending items move to ``running`` for one job, the slots shared fairly between
  workspaces (the workspace with the fewest items running goes first);
* ``finish_item``: an item's outcome is written only while the same job still holds it, and the
  batch is settled (status, webhook event) in the same transaction, so a job that lost its items
  to a resume can never write over them, and an event is created exactly once;
* ``record_turn_once``: an answered item's chat messages are written once per idempotency key,
  so an item re-run after a crash between the answer and ``finish_item`` finds its answer.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from repolens.storage.relational import Conn

JOB_KIND = "batch"
PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED = "pending", "processing", "completed", "failed", "cancelled"
ITEM_PENDING, ITEM_RUNNING = "pending", "running"
ITEM_DONE = (COMPLETED, FAILED, CANCELLED)
EVENT_PENDING, EVENT_DELIVERED, EVENT_FAILED = "pending", "delivered", "failed"
ALL_FAILED = "every request of the batch failed; each result says why"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: int
    public_id: str
    workspace_id: int
    owner: str
    principal: dict[str, Any]
    agent_id: str
    status: str
    total: int
    webhook: dict[str, Any]
    error: str
    created_at: float
    started_at: float | None
    completed_at: float | None
    cancelled_at: float | None
    counts: dict[str, int]  # items by state


@dataclass(frozen=True, slots=True)
class ItemRecord:
    id: int
    batch_id: int
    workspace_id: int
    seq: int
    custom_id: str
    agent_id: str
    message: str
    external_user_id: str | None
    name: str | None
    attachments: tuple[str, ...]
    history_id: int | None
    state: str
    claimed_by: str
    attempts: int
    chat_id: int | None
    message_id: int | None
    response: str | None
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class NewItem:
    custom_id: str
    agent_id: str
    message: str
    external_user_id: str | None = None
    name: str | None = None
    attachments: tuple[str, ...] = ()
    history_id: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: int
    public_id: str
    batch_id: int
    event: str
    url: str
    secret: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: float
    give_up_at: float
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    attempt: int
    at: float
    status_code: int | None
    error: str
    duration_ms: float


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """Where an answered message landed: the chat (conversation row id) and the answer's row id."""

    chat_id: int
    message_id: int
    existed: bool  # True: the key had been recorded before (a re-run after a crash)


_B = (
    "id, public_id, workspace_id, owner, principal, agent_id, status, total, webhook, error, created_at, "
    "started_at, completed_at, cancelled_at"
)
_B_NAMES = tuple(n.strip() for n in _B.split(","))
_I = (
    "id, batch_id, workspace_id, seq, custom_id, agent_id, message, external_user_id, name, attachments, history_id, "
    "state, claimed_by, attempts, chat_id, message_id, response, usage, error, started_at, finished_at"
)
_E = (
    "id, public_id, batch_id, event, url, secret, payload, state, attempts, next_attempt_at, give_up_at, created_at, "
    "delivered_at"
)


def _item(row: Sequence[Any]) -> ItemRecord:
    r = list(row)
    r[9] = tuple(json.loads(r[9] or "[]"))
    r[17] = json.loads(r[17]) if r[17] else None
    r[18] = json.loads(r[18]) if r[18] else None
    return ItemRecord(*r)


def _event(row: Sequence[Any]) -> WebhookEvent:
    r = list(row)
    r[6] = json.loads(r[6])
    return WebhookEvent(*r)


class BatchStore(Protocol):
    """Batches, items, webhook events and the once-only chat write of an answered item."""

    def create_batch(
        self,
        *,
        workspace_id: int,
        owner: str,
        principal: dict[str, Any],
        agent_id: str,
        webhook: dict[str, Any],
        items: Sequence[NewItem],
    ) -> BatchRecord: ...
    def get_batch(self, public_id: str) -> BatchRecord | None: ...
    def batch_principal(self, batch_id: int) -> dict[str, Any]: ...
    def list_batches(self, workspace_ids: Sequence[int], *, offset: int, limit: int) -> tuple[list[BatchRecord], int]: ...
    def batch_items(self, batch_id: int, *, offset: int, limit: int) -> list[ItemRecord]: ...
    def cancel_batch(self, batch_id: int, *, give_up_after_s: float) -> bool: ...
    def enqueue_batch_job(self) -> str: ...
    def reclaim_items(self, job_public_id: str) -> int: ...
    def claim_items(self, job_public_id: str, *, slots: int, per_workspace: int) -> list[ItemRecord]: ...
    def finish_item(
        self, item_id: int, job_public_id: str, *, give_up_after_s: float, **fields: object
    ) -> list[WebhookEvent]: ...
    def pending_items(self) -> int: ...
    def release_item(self, item_id: int, job_public_id: str) -> bool: ...
    def record_turn_once(
        self,
        *,
        key: str,
        history_id: int | None,
        owner: str,
        title: str,
        scope: Sequence[str],
        assistant_id: str,
        question: str,
        answer: str,
        citations: str,
        thoughts: str,
        elapsed_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> RecordedTurn: ...
    def find_turn(self, key: str) -> RecordedTurn | None: ...
    def batch_chat_owner(self, chat_id: int) -> str | None: ...
    def batch_chat_history(self, chat_id: int) -> list[tuple[str, str]]: ...
    def recorded_answer(self, message_row_id: int) -> str | None: ...
    def due_webhook_events(self, now: float, limit: int) -> list[WebhookEvent]: ...
    def lease_webhook_event(self, event_id: int, *, seen_next_attempt_at: float, lease_until: float) -> bool: ...
    def record_webhook_attempt(
        self,
        event_id: int,
        *,
        attempt: int,
        status_code: int | None,
        error: str,
        duration_ms: float,
        outcome: str,
        next_attempt_at: float,
    ) -> None: ...
    def webhook_events(self, batch_id: int) -> list[tuple[WebhookEvent, list[WebhookAttempt]]]: ...


class BatchStoreMixin:
    """``BatchStore`` over a backend's connection and write transaction."""

    _integrity_errors: tuple[type[Exception], ...] = ()
    _skip_locked = ""

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    def _serialize_claims(self, conn: Conn) -> None:  # provided by RegistryMixin / the backend
        raise NotImplementedError

    # -- batches ------------------------------------------------------------------------------

    def create_batch(
        self,
        *,
        workspace_id: int,
        owner: str,
        principal: dict[str, Any],
        agent_id: str,
        webhook: dict[str, Any],
        items: Sequence[NewItem],
    ) -> BatchRecord:
        """A new batch with its items, and the job that answers them, in one transaction."""
        public_id = str(uuid.uuid4())
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO batches(public_id, workspace_id, owner, principal, agent_id, status, total, webhook, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    public_id,
                    workspace_id,
                    owner,
                    json.dumps(principal),
                    agent_id,
                    PENDING,
                    len(items),
                    json.dumps(webhook),
                    now,
                ),
            )
            batch_row = conn.execute("SELECT id FROM batches WHERE public_id = ?", (public_id,)).fetchone()
            conn.executemany(
                "INSERT INTO batch_items(batch_id, workspace_id, seq, custom_id, agent_id, message, external_user_id, "
                "name, attachments, history_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        batch_row[0],
                        workspace_id,
                        n,
                        it.custom_id,
                        it.agent_id,
                        it.message,
                        it.external_user_id,
                        it.name,
                        json.dumps(list(it.attachments)),
                        it.history_id,
                    )
                    for n, it in enumerate(items)
                ],
            )
            self._enqueue_batch_job(conn)
        made = self.get_batch(public_id)
        assert made is not None
        return made

    def _enqueue_batch_job(self, conn: Conn) -> str:
        """The queued batch job, made if none is waiting: one job answers the items of every batch,
        so a second waiting job would only find nothing to do."""
        row = conn.execute("SELECT public_id FROM jobs WHERE kind = ? AND state = 'New' LIMIT 1", (JOB_KIND,)).fetchone()
        if row is not None:
            return str(row[0])
        job_id = secrets.token_hex(12)
        conn.execute(
            "INSERT INTO jobs(public_id, source_id, kind, created_at) VALUES (?, NULL, ?, ?)",
            (job_id, JOB_KIND, time.time()),
        )
        return job_id

    def enqueue_batch_job(self) -> str:
        """Queue a batch job (unless one is already waiting); its public id."""
        with self._write(content=False) as conn:
            return self._enqueue_batch_job(conn)

    def _counts(self, batch_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        if not batch_ids:
            return {}
        marks = ",".join("?" * len(batch_ids))
        rows = self._conn.execute(
            f"SELECT batch_id, state, count(*) FROM batch_items WHERE batch_id IN ({marks}) GROUP BY batch_id, state",
            tuple(batch_ids),
        ).fetchall()
        out: dict[int, dict[str, int]] = {b: {} for b in batch_ids}
        for batch_id, state, n in rows:
            out[int(batch_id)][str(state)] = int(n)
        return out

    def _batches(self, rows: Sequence[Sequence[Any]]) -> list[BatchRecord]:
        counts = self._counts([int(r[0]) for r in rows])
        out = []
        for row in rows:
            r = list(row)
            r[4] = json.loads(r[4] or "{}")
            r[8] = json.loads(r[8] or "{}")
            out.append(BatchRecord(**dict(zip(_B_NAMES, r, strict=True)), counts=counts.get(int(r[0]), {})))
        return out

    def get_batch(self, public_id: str) -> BatchRecord | None:
        """A batch by public id, with its item counts."""
        row = self._conn.execute(f"SELECT {_B} FROM batches WHERE public_id = ?", (public_id,)).fetchone()
        return self._batches([row])[0] if row else None

    def batch_principal(self, batch_id: int) -> dict[str, Any]:
        """Who submitted a batch (its key's id, name, role, plan and scopes), by row id."""
        row = self._conn.execute("SELECT principal FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def list_batches(self, workspace_ids: Sequence[int], *, offset: int, limit: int) -> tuple[list[BatchRecord], int]:
        """The batches of these workspaces, newest first, and how many there are."""
        if not workspace_ids:
            return [], 0
        marks = ",".join("?" * len(workspace_ids))
        total = self._conn.execute(
            f"SELECT count(*) FROM batches WHERE workspace_id IN ({marks})", tuple(workspace_ids)
        ).fetchone()[0]
        rows = self._conn.execute(
            f"SELECT {_B} FROM batches WHERE workspace_id IN ({marks}) ORDER BY id DESC LIMIT ? OFFSET ?",
            (*workspace_ids, limit, offset),
        ).fetchall()
        return self._batches(rows), int(total)

    def batch_items(self, batch_id: int, *, offset: int, limit: int) -> list[ItemRecord]:
        """A page of a batch's items in submission order."""
        rows = self._conn.execute(
            f"SELECT {_I} FROM batch_items WHERE batch_id = ? ORDER BY seq LIMIT ? OFFSET ?", (batch_id, limit, offset)
        ).fetchall()
        return [_item(r) for r in rows]

    def cancel_batch(self, batch_id: int, *, give_up_after_s: float) -> bool:
        """Cancel a pending or processing batch: its items not started become cancelled (running
        ones finish). False when the batch had already ended."""
        now = time.time()
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE batches SET status = ?, cancelled_at = ? WHERE id = ? AND status IN (?, ?)",
                (CANCELLED, now, batch_id, PENDING, PROCESSING),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "UPDATE batch_items SET state = ?, finished_at = ? WHERE batch_id = ? AND state = ?",
                (CANCELLED, now, batch_id, ITEM_PENDING),
            )
            self._settle(conn, batch_id, give_up_after_s)
        return True

    # -- the queue ------------------------------------------------------------------------------

    def reclaim_items(self, job_public_id: str) -> int:
        """Put back to pending the running items of this job (a re-run of it: its previous process
        died) and of every job that is no longer running; how many."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE batch_items SET state = ?, claimed_by = '' WHERE state = ? AND (claimed_by = ? OR claimed_by "
                "NOT IN (SELECT public_id FROM jobs WHERE state = 'Processing'))",
                (ITEM_PENDING, ITEM_RUNNING, job_public_id),
            )
            return int(cur.rowcount or 0)

    def claim_items(self, job_public_id: str, *, slots: int, per_workspace: int) -> list[ItemRecord]:
        """Up to ``slots`` pending items for this job, at most ``per_workspace`` running per
        workspace (counting other jobs' items), the workspace with the fewest running first and
        each workspace's oldest item first."""
        if slots <= 0:
            return []
        now = time.time()
        claimed: list[int] = []
        with self._write(content=False) as conn:
            self._serialize_claims(conn)
            running = {
                int(w): int(n)
                for w, n in conn.execute(
                    "SELECT workspace_id, count(*) FROM batch_items WHERE state = ? GROUP BY workspace_id", (ITEM_RUNNING,)
                ).fetchall()
            }
            waiting = [
                int(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT workspace_id FROM batch_items WHERE state = ?", (ITEM_PENDING,)
                ).fetchall()
            ]
            exhausted: set[int] = set()
            while len(claimed) < slots:
                open_ = [w for w in waiting if w not in exhausted and running.get(w, 0) < per_workspace]
                if not open_:
                    break
                ws = min(open_, key=lambda w: (running.get(w, 0), w))
                row = conn.execute(
                    "SELECT id, batch_id FROM batch_items WHERE state = ? AND workspace_id = ? ORDER BY id LIMIT 1"
                    f"{self._skip_locked}",
                    (ITEM_PENDING, ws),
                ).fetchone()
                if row is None:
                    exhausted.add(ws)
                    continue
                conn.execute(
                    "UPDATE batch_items SET state = ?, claimed_by = ?, attempts = attempts + 1, "
                    "started_at = coalesce(started_at, ?) WHERE id = ?",
                    (ITEM_RUNNING, job_public_id, now, row[0]),
                )
                conn.execute(
                    "UPDATE batches SET status = ?, started_at = coalesce(started_at, ?) WHERE id = ? AND status = ?",
                    (PROCESSING, now, row[1], PENDING),
                )
                running[ws] = running.get(ws, 0) + 1
                claimed.append(int(row[0]))
            if not claimed:
                return []
            marks = ",".join("?" * len(claimed))
            rows = conn.execute(f"SELECT {_I} FROM batch_items WHERE id IN ({marks}) ORDER BY id", tuple(claimed)).fetchall()
        return [_item(r) for r in rows]

    def pending_items(self) -> int:
        """How many items wait to be claimed, in every batch."""
        row = self._conn.execute("SELECT count(*) FROM batch_items WHERE state = ?", (ITEM_PENDING,)).fetchone()
        return int(row[0])

    def release_item(self, item_id: int, job_public_id: str) -> bool:
        """Put an item this job holds back in the queue, unanswered (it will be claimed again)."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE batch_items SET state = ?, claimed_by = '' WHERE id = ? AND state = ? AND claimed_by = ?",
                (ITEM_PENDING, item_id, ITEM_RUNNING, job_public_id),
            )
            return bool(cur.rowcount)

    _ITEM_FIELDS = frozenset({"state", "chat_id", "message_id", "response", "usage", "error"})

    def finish_item(
        self, item_id: int, job_public_id: str, *, give_up_after_s: float, **fields: object
    ) -> list[WebhookEvent]:
        """Record an item's outcome if this job still holds it, and settle its batch; the webhook
        events this made (none when the job had lost the item or the batch is not done)."""
        unknown = set(fields) - self._ITEM_FIELDS
        if unknown:
            raise ValueError(f"not item fields: {sorted(unknown)}")
        values = {k: (json.dumps(v) if k in ("usage", "error") and v is not None else v) for k, v in fields.items()}
        with self._write(content=False) as conn:
            found = conn.execute("SELECT batch_id FROM batch_items WHERE id = ?", (item_id,)).fetchone()
            if found is None:
                return []
            batch_id = int(found[0])
            # Take the batch's row lock first: two items of one batch finishing at once would
            # each count the other as still running (PostgreSQL reads what is committed) and
            # neither would settle the batch. SQLite's single writer serializes them anyway.
            conn.execute("UPDATE batches SET status = status WHERE id = ?", (batch_id,))
            cur = conn.execute(
                f"UPDATE batch_items SET {', '.join(f'{k} = ?' for k in values)}, finished_at = ? "
                "WHERE id = ? AND state = ? AND claimed_by = ?",
                (*values.values(), time.time(), item_id, ITEM_RUNNING, job_public_id),
            )
            if cur.rowcount == 0:
                return []
            return self._settle(conn, batch_id, give_up_after_s)

    def _settle(self, conn: Conn, batch_id: int, give_up_after_s: float) -> list[WebhookEvent]:
        """End a batch whose items are all done and create its webhook event (once)."""
        open_items = conn.execute(
            "SELECT count(*) FROM batch_items WHERE batch_id = ? AND state IN (?, ?)", (batch_id, ITEM_PENDING, ITEM_RUNNING)
        ).fetchone()[0]
        if int(open_items):
            return []
        now = time.time()
        # ``failed`` when the batch as a whole could not run: not one item was answered (its agent
        # is gone, the key revoked, the model refusing). Items that fail beside answered ones
        # leave the batch ``completed`` with ``failed_requests`` > 0 (specs/codemie_codeer.md §2.7).
        answered, failed = conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0) FROM batch_items WHERE batch_id = ?",
            (COMPLETED, FAILED, batch_id),
        ).fetchone()
        ended = FAILED if int(answered) == 0 and int(failed) > 0 else COMPLETED
        conn.execute(
            "UPDATE batches SET status = ?, completed_at = ?, error = ? WHERE id = ? AND status IN (?, ?)",
            (ended, now, ALL_FAILED if ended == FAILED else "", batch_id, PENDING, PROCESSING),
        )
        row = conn.execute(f"SELECT {_B} FROM batches WHERE id = ?", (batch_id,)).fetchone()
        status = str(row[6])
        webhook = json.loads(row[8] or "{}")
        if not webhook.get("url") or status not in webhook.get("events", ()):
            return []
        event_id = str(uuid.uuid4())
        payload = {"id": event_id, "event": status, "batch_id": str(row[1]), "created_at": now}
        conn.execute(
            "INSERT INTO webhook_events(public_id, batch_id, event, url, secret, payload, next_attempt_at, give_up_at, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id, event) DO NOTHING",
            (
                event_id,
                batch_id,
                status,
                webhook["url"],
                webhook.get("secret") or "",
                json.dumps(payload),
                now,
                now + give_up_after_s,
                now,
            ),
        )
        made = conn.execute(f"SELECT {_E} FROM webhook_events WHERE public_id = ?", (event_id,)).fetchone()
        return [_event(made)] if made else []

    # -- chats ------------------------------------------------------------------------------------

    def find_turn(self, key: str) -> RecordedTurn | None:
        """The chat and answer row recorded under ``key``, if any."""
        row = self._conn.execute(
            "SELECT conversation_id, id FROM messages WHERE message_id = ? AND role = 'assistant'", (key,)
        ).fetchone()
        return RecordedTurn(int(row[0]), int(row[1]), True) if row else None

    def batch_chat_owner(self, chat_id: int) -> str | None:
        """The owner (key id) of a chat by its row id; None if there is no such chat."""
        row = self._conn.execute("SELECT key_id FROM conversations WHERE id = ?", (chat_id,)).fetchone()
        return str(row[0]) if row else None

    def batch_chat_history(self, chat_id: int) -> list[tuple[str, str]]:
        """(role, content) of a chat's messages, oldest first."""
        rows = self._conn.execute("SELECT role, content FROM messages WHERE conversation_id = ? ORDER BY id", (chat_id,))
        return [(str(r[0]), str(r[1])) for r in rows]

    def recorded_answer(self, message_row_id: int) -> str | None:
        """The text of an answer row."""
        row = self._conn.execute("SELECT content FROM messages WHERE id = ?", (message_row_id,)).fetchone()
        return str(row[0]) if row else None

    def record_turn_once(
        self,
        *,
        key: str,
        history_id: int | None,
        owner: str,
        title: str,
        scope: Sequence[str],
        assistant_id: str,
        question: str,
        answer: str,
        citations: str,
        thoughts: str,
        elapsed_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> RecordedTurn:
        """Write a question and its answer to a chat (``history_id``, or a new one owned by
        ``owner``) in one transaction, once per ``key``: a second call finds the first one's rows."""
        now = time.time()
        with self._write(content=False) as conn:
            seen = conn.execute(
                "SELECT conversation_id, id FROM messages WHERE message_id = ? AND role = 'assistant'", (key,)
            ).fetchone()
            if seen is not None:
                return RecordedTurn(int(seen[0]), int(seen[1]), True)
            if history_id is None:
                public_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO conversations(public_id, key_id, title, scope, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (public_id, owner, title, json.dumps(list(scope)), now, now),
                )
                chat_id = int(conn.execute("SELECT id FROM conversations WHERE public_id = ?", (public_id,)).fetchone()[0])
                conn.execute(
                    "INSERT INTO agent_conversations(conversation_id, assistant_id) VALUES (?, ?)", (chat_id, assistant_id)
                )
            else:
                chat_id = history_id
            conn.execute(
                "INSERT INTO messages(conversation_id, message_id, role, content, citations, created_at) "
                "VALUES (?, ?, 'user', ?, '[]', ?)",
                (chat_id, f"{key}-q", question, now),
            )
            conn.execute(
                "INSERT INTO messages(conversation_id, message_id, role, content, citations, created_at) "
                "VALUES (?, ?, 'assistant', ?, ?, ?)",
                (chat_id, key, answer, citations, now),
            )
            message_id = int(
                conn.execute("SELECT id FROM messages WHERE message_id = ? AND role = 'assistant'", (key,)).fetchone()[0]
            )
            conn.execute(
                "INSERT INTO agent_turns(conversation_id, message_id, assistant_id, thoughts, elapsed_s, prompt_tokens, "
                "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chat_id, key, assistant_id, thoughts, elapsed_s, prompt_tokens, completion_tokens, now),
            )
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, chat_id))
        return RecordedTurn(chat_id, message_id, False)

    # -- webhooks ---------------------------------------------------------------------------------

    def due_webhook_events(self, now: float, limit: int) -> list[WebhookEvent]:
        """Pending events whose next attempt is due, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_E} FROM webhook_events WHERE state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
            (EVENT_PENDING, now, limit),
        ).fetchall()
        return [_event(r) for r in rows]

    def lease_webhook_event(self, event_id: int, *, seen_next_attempt_at: float, lease_until: float) -> bool:
        """Take an event for one attempt (its next attempt moves to the lease's end, so another
        dispatcher leaves it alone until then); False if someone else took it first."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE webhook_events SET next_attempt_at = ? WHERE id = ? AND state = ? AND next_attempt_at = ?",
                (lease_until, event_id, EVENT_PENDING, seen_next_attempt_at),
            )
            return bool(cur.rowcount)

    def record_webhook_attempt(
        self,
        event_id: int,
        *,
        attempt: int,
        status_code: int | None,
        error: str,
        duration_ms: float,
        outcome: str,
        next_attempt_at: float,
    ) -> None:
        """Keep one attempt and move the event on: delivered, failed (given up) or pending again."""
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO webhook_attempts(event_id, attempt, at, status_code, error, duration_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, attempt, now, status_code, error[:500], duration_ms),
            )
            conn.execute(
                "UPDATE webhook_events SET state = ?, attempts = ?, next_attempt_at = ?, "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END WHERE id = ?",
                (outcome, attempt, next_attempt_at, outcome, now, event_id),
            )

    def webhook_events(self, batch_id: int) -> list[tuple[WebhookEvent, list[WebhookAttempt]]]:
        """A batch's webhook events, each with its attempts in order."""
        events = [
            _event(r)
            for r in self._conn.execute(f"SELECT {_E} FROM webhook_events WHERE batch_id = ? ORDER BY id", (batch_id,))
        ]
        out = []
        for ev in events:
            attempts = [
                WebhookAttempt(int(a[0]), float(a[1]), None if a[2] is None else int(a[2]), str(a[3]), float(a[4]))
                for a in self._conn.execute(
                    "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE event_id = ? "
                    "ORDER BY id",
                    (ev.id,),
                )
            ]
            out.append((ev, attempts))
        return out
