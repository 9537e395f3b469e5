"""Codeer's batch API in the core: submit, list, get, results, cancel, webhook deliveries.

A batch belongs to the caller's workspace (``knowledge.home_workspace``) and is visible to the
keys of that workspace. Everything is checked before anything is stored: the request count
(1 to 1,000), unique ``custom_id``s, every agent the items name (the default and the per-item
overrides) and every chat they continue must be the caller's to use, every ``external_user_id``
must pass the workspace's whitelist mode, the webhook URL must be callable; one bad item refuses
the whole batch with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repolens import knowledge, views
from repolens.agents.runtime import MAX_TURN_CHARS
from repolens.batches import webhooks
from repolens.batches.answer import attachments_of, check_agent
from repolens.errors import ClientNotAllowed, InvalidInput, NotFound
from repolens.storage.batch_store import BatchRecord, ItemRecord, NewItem, WebhookAttempt, WebhookEvent

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.services import Services
    from repolens.storage.base import Database

MAX_REQUESTS = 1_000  # Codeer's limit per batch
MAX_CUSTOM_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_ATTACHMENTS = 20  # files attached to one item
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Submission:
    """A batch as the caller sent it, before it is checked."""

    agent_id: object
    requests: object
    webhook: object = None


def _text(value: object, what: str, *, max_chars: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > max_chars:
        raise InvalidInput(f"{what} is over {max_chars} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold it, and no message needs it
        raise InvalidInput(f"{what} must not contain NUL (\\u0000) characters")
    return value


def _webhook(value: object, allow_hosts: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("webhook must be an object with url, events and secret")
    url = webhooks.check_url(value.get("url"), allow_hosts=allow_hosts)
    events = value.get("events")
    if events is None:
        events = list(webhooks.DEFAULT_EVENTS)
    if not isinstance(events, list) or not events or any(e not in webhooks.EVENTS for e in events):
        raise InvalidInput(f"webhook.events must be a non-empty list of {', '.join(webhooks.EVENTS)}")
    secret = value.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) > webhooks.MAX_SECRET_CHARS or "\x00" in secret):
        raise InvalidInput(f"webhook.secret must be a string of at most {webhooks.MAX_SECRET_CHARS} characters")
    return {"url": url, "events": sorted(set(events), key=webhooks.EVENTS.index), "secret": secret or ""}


def principal_snapshot(principal: Principal) -> dict[str, Any]:
    """Who submitted (or started) something, as ``runner.principal_from`` reads it back in a job."""
    key = principal.key
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role,
        "plan": key.plan,
        "requests_per_hour": key.requests_per_hour,
        "concurrency": key.concurrency,
        "scopes": list(key.scopes),
    }


def submit(services: Services, principal: Principal, submission: Submission) -> BatchRecord:
    """Check a batch whole and store it with the job that answers it."""
    db = services.store
    workspace = knowledge.home_workspace(db, principal)
    agent_id = _text(submission.agent_id, "agent_id", max_chars=64)
    assert agent_id is not None
    requests = submission.requests
    if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
        count = len(requests) if isinstance(requests, list) else "no"
        raise InvalidInput(f"requests must be a list of 1 to {MAX_REQUESTS} items (got {count})")
    webhook = _webhook(submission.webhook, services.settings.webhook_allow_hosts)
    agents = {agent_id}
    seen: set[str] = set()
    items: list[NewItem] = []
    for n, raw in enumerate(requests):
        where = f"requests[{n}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be an object")
        custom_id = _text(raw.get("custom_id"), f"{where}.custom_id", max_chars=MAX_CUSTOM_ID_CHARS)
        assert custom_id is not None
        if custom_id in seen:
            raise InvalidInput(f"{where}.custom_id {custom_id!r} is used twice; custom_id must be unique in a batch")
        seen.add(custom_id)
        message = _text(raw.get("message"), f"{where}.message", max_chars=MAX_TURN_CHARS)
        item_agent = _text(raw.get("agent_id"), f"{where}.agent_id", max_chars=64, required=False) or agent_id
        agents.add(item_agent)
        user = _text(raw.get("external_user_id"), f"{where}.external_user_id", max_chars=256, required=False)
        try:
            knowledge.check_client(db, workspace, user)
        except ClientNotAllowed as exc:
            raise ClientNotAllowed(f"{where} ({custom_id}): {exc}") from None
        name = _text(raw.get("name"), f"{where}.name", max_chars=MAX_NAME_CHARS, required=False)
        files = raw.get("attached_file_uuids") or []
        if not isinstance(files, list) or len(files) > MAX_ATTACHMENTS or not all(isinstance(f, str) for f in files):
            raise InvalidInput(f"{where}.attached_file_uuids must be a list of at most {MAX_ATTACHMENTS} file ids")
        try:
            attachments_of(db, files, owner=principal)  # each the caller's, and text
        except (NotFound, InvalidInput) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        history = raw.get("history_id")
        if history is not None:
            if isinstance(history, bool) or not isinstance(history, int) or not 1 <= history <= MAX_ROW_ID:
                raise InvalidInput(f"{where}.history_id must be a chat id (a positive integer)")
            if db.batch_chat_owner(history) != registry_owner(services, principal):
                raise NotFound(f"{where}: history {history} not found")
        assert message is not None
        items.append(NewItem(custom_id, item_agent, message, user, name, tuple(files), history))
    for one in sorted(agents):
        check_agent(services, principal, one)
    return db.create_batch(
        workspace_id=workspace.id,
        owner=principal.key.key_id,
        principal=principal_snapshot(principal),
        agent_id=agent_id,
        webhook=webhook,
        items=items,
    )


def registry_owner(services: Services, principal: Principal) -> str:
    """Who owns the chats the caller starts (the agents registry's owner id)."""
    from repolens.agents.assistants import viewer_for

    return viewer_for(services.store, principal).owner


def _visible_ids(db: Database, principal: Principal) -> list[int]:
    return [w.id for w in knowledge.workspaces_of(db, principal)]


def get(db: Database, principal: Principal, batch_id: str) -> BatchRecord:
    """A batch of one of the caller's workspaces (any other is reported as missing)."""
    found = db.get_batch(batch_id.strip().lower()) if isinstance(batch_id, str) else None
    if found is None or found.workspace_id not in _visible_ids(db, principal):
        raise NotFound(f"batch {batch_id!r} not found")
    return found


def list_(db: Database, principal: Principal, *, offset: int, limit: int) -> tuple[list[BatchRecord], int]:
    """The caller's workspaces' batches, newest first."""
    return db.list_batches(_visible_ids(db, principal), offset=offset, limit=limit)


def results(
    db: Database, principal: Principal, batch_id: str, *, offset: int, limit: int
) -> tuple[BatchRecord, list[ItemRecord]]:
    """A page of a batch's items in submission order."""
    batch = get(db, principal, batch_id)
    return batch, db.batch_items(batch.id, offset=offset, limit=limit)


def cancel(services: Services, principal: Principal, batch_id: str) -> BatchRecord:
    """Cancel a batch: items not started are cancelled, running ones finish."""
    db = services.store
    batch = get(db, principal, batch_id)
    if not db.cancel_batch(batch.id, give_up_after_s=services.settings.webhook_retry_for_s):
        raise InvalidInput(
            f"batch {batch.public_id} has already ended ({batch.status}); "
            "only a pending or processing batch can be cancelled"
        )
    fresh = db.get_batch(batch.public_id)
    assert fresh is not None
    return fresh


def deliveries(db: Database, principal: Principal, batch_id: str) -> list[tuple[WebhookEvent, list[WebhookAttempt]]]:
    """A batch's webhook events with every attempt."""
    return db.webhook_events(get(db, principal, batch_id).id)


# -- what a batch looks like on the wire (the API and the webhook body) -----------------------


def counts(batch: BatchRecord) -> dict[str, int]:
    """Requests by outcome; ``completed`` counts answered items."""
    c = batch.counts
    return {
        "total_requests": batch.total,
        "completed_requests": c.get("completed", 0),
        "failed_requests": c.get("failed", 0),
        "cancelled_requests": c.get("cancelled", 0),
        "pending_requests": c.get("pending", 0),
        "running_requests": c.get("running", 0),
    }


def view(batch: BatchRecord) -> dict[str, Any]:
    """The batch object (specs/codemie_codeer.md §2.7); the webhook secret is never shown."""
    hook = batch.webhook
    return {
        "id": batch.public_id,
        "status": batch.status,
        "error": batch.error or None,  # why a batch ``failed`` as a whole
        "agent_id": batch.agent_id,
        **counts(batch),
        "webhook": {"url": hook["url"], "events": hook["events"], "has_secret": bool(hook.get("secret"))} if hook else None,
        "created_at": views.iso(batch.created_at),
        "started_at": views.iso(batch.started_at),
        "completed_at": views.iso(batch.completed_at),
        "cancelled_at": views.iso(batch.cancelled_at),
    }


def view_by_id(db: Database, public_id: str) -> dict[str, Any]:
    """The batch object for a webhook body (the batch as it is when the attempt is made)."""
    batch = db.get_batch(public_id)
    if batch is None:
        return {"id": public_id, "status": "deleted"}
    return view(batch)
