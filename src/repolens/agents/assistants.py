"""Stored assistants, scoped: who may see, change and run which, and background turns.

Visibility, checked on every read (a surface never filters rows itself):

* an assistant belongs to one organisation; another organisation's assistant is reported
  exactly like a missing one (``NotFound``), so ids cannot be probed;
* within the organisation, a ``shared`` assistant is visible to everyone, a private one to its
  owner (and admins);
* an assistant whose context names data sources outside the caller's key scope is hidden from
  that key, as the data sources themselves are;
* only the owner (or an admin) may change or delete it; others get ``Forbidden``.

Background turns (``start_task``) run in the server's event loop and are stored as tasks; a task
still ``STARTED`` long after a turn's wall-time budget belonged to a server that stopped, and is
reported as failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from repolens import catalog
from repolens.agents.model import Assistant, Definition, Viewer, dump_definition, load_definition, validate
from repolens.agents.runtime import TurnRequest, finished
from repolens.errors import Forbidden, NotFound, RepolensError
from repolens.storage.agents import AgentTaskRow, AgentTurnRow, AssistantRow
from repolens.storage.chats import VersionRow

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.domain import Conversation, Message
    from repolens.services import Services
    from repolens.storage.base import Database

log = logging.getLogger(__name__)

LOCAL_OWNER = "local"  # the CLI on this machine, without a key
TASK_STARTED, TASK_COMPLETED, TASK_FAILED = "STARTED", "COMPLETED", "FAILED"
MAX_CONVERSATIONS = 500  # listed per viewer, newest first
TASK_GRACE_S = 60  # past the wall-time budget, a STARTED task's server is gone
MAX_NOTE_CHARS = 2_000  # a version note is a line or a paragraph, not a changelog
_RUNNING: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


def viewer_for(db: Database, principal: Principal | None) -> Viewer:
    """The viewer an API key (or the local CLI) is: its organisation is the install's."""
    organization, _, _ = db.organization("default")
    if principal is None:
        return Viewer(LOCAL_OWNER, organization, "Local user", admin=True)
    key = principal.key
    return Viewer(key.key_id, organization, key.name, admin=principal.is_admin)


def _assistant(row: AssistantRow) -> Assistant:
    return Assistant(
        id=row.public_id,
        organization=row.organization,
        owner=row.owner,
        owner_name=row.owner_name,
        definition=load_definition(row.definition),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _in_scope(db: Database, principal: Principal | None, definition: Definition) -> bool:
    if principal is None or not definition.context:
        return True
    for name in definition.context:
        try:
            catalog.get_data_source(db, principal, name)
        except NotFound:
            if db.get_source(name) is not None or db.get_workspace(name) is not None:
                return False  # it exists, outside this key's scope
            # removed since: the assistant stays visible, and its turns say what is missing
    return True


def _visible(db: Database, viewer: Viewer, principal: Principal | None, assistant: Assistant) -> bool:
    if assistant.organization != viewer.organization:
        return False
    if not (assistant.definition.shared or assistant.owner == viewer.owner or viewer.admin):
        return False
    return _in_scope(db, principal, assistant.definition)


def get(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> Assistant:
    """An assistant the viewer may see."""
    row = db.get_assistant(assistant_id.strip())
    found = _assistant(row) if row is not None else None
    if found is None or not _visible(db, viewer, principal, found):
        raise NotFound(f"assistant {assistant_id!r} not found")
    return found


def by_slug(db: Database, viewer: Viewer, principal: Principal | None, slug: str, project: str | None = None) -> Assistant:
    """The visible assistant with ``slug`` (in ``project`` if given)."""
    for row in db.assistant_by_slug(viewer.organization, slug.strip().lower(), project):
        found = _assistant(row)
        if _visible(db, viewer, principal, found):
            return found
    raise NotFound(f"assistant with slug {slug!r} not found")


def list_visible(db: Database, viewer: Viewer, principal: Principal | None, *, mine_only: bool = False) -> list[Assistant]:
    """The assistants the viewer may see (only its own with ``mine_only``), newest first."""
    found = [_assistant(row) for row in db.list_assistants(viewer.organization)]
    return [a for a in found if _visible(db, viewer, principal, a) and (not mine_only or a.owner == viewer.owner)]


def _check_context(db: Database, principal: Principal | None, definition: Definition) -> None:
    """Refuse a context the caller's key could not search (``Forbidden``) or that names nothing."""
    if definition.context:
        catalog.resolve_scope(db, principal, list(definition.context))


def _check_subs(db: Database, viewer: Viewer, principal: Principal | None, definition: Definition, own_id: str) -> None:
    for sub_id in definition.sub_assistants:
        if sub_id == own_id:
            raise Forbidden("an assistant cannot be its own sub-assistant")
        get(db, viewer, principal, sub_id)


def create(
    db: Database,
    viewer: Viewer,
    principal: Principal | None,
    definition: Definition,
    *,
    publish: bool = True,
    note: str = "",
) -> Assistant:
    """Store a new assistant owned by the viewer as its version 1, published (the default: a
    dialect without drafts) or a draft to publish later; every check runs before the write."""
    definition = validate(definition)
    _check_context(db, principal, definition)
    assistant_id = str(uuid.uuid4())
    _check_subs(db, viewer, principal, definition, assistant_id)
    now = time.time()
    row = AssistantRow(
        public_id=assistant_id,
        organization=viewer.organization,
        owner=viewer.owner,
        owner_name=viewer.name,
        name=definition.name,
        slug=definition.slug,
        project=definition.project,
        shared=definition.shared,
        definition=dump_definition(definition),
        version=1,
        created_at=now,
        updated_at=now,
    )
    return _assistant(db.create_assistant(row, note=note[:MAX_NOTE_CHARS], publish=publish))


def _owned(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> Assistant:
    found = get(db, viewer, principal, assistant_id)
    if found.owner != viewer.owner and not viewer.admin:
        raise Forbidden("only the owner of an assistant (or an admin) may change or delete it")
    return found


def update(
    db: Database,
    viewer: Viewer,
    principal: Principal | None,
    assistant_id: str,
    definition: Definition,
    *,
    publish: bool = True,
    note: str = "",
) -> Assistant:
    """Replace an assistant's definition: a new version, published (the default) or a draft;
    every check runs before the write."""
    current = _owned(db, viewer, principal, assistant_id)
    if not definition.slug:  # a rename keeps the slug links were made with
        definition = replace(definition, slug=current.definition.slug)
    definition = validate(definition)
    _check_context(db, principal, definition)
    _check_subs(db, viewer, principal, definition, current.id)
    now = time.time()
    db.update_assistant(
        AssistantRow(
            public_id=current.id,
            organization=current.organization,
            owner=current.owner,
            owner_name=current.owner_name,
            name=definition.name,
            slug=definition.slug,
            project=definition.project,
            shared=definition.shared,
            definition=dump_definition(definition),
            version=current.version + 1,
            created_at=current.created_at,
            updated_at=now,
        ),
        note=note[:MAX_NOTE_CHARS],
        publish=publish,
    )
    return replace(current, definition=definition, version=current.version + 1, updated_at=now)


def delete(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> None:
    """Remove an assistant (its past conversations stay with their owners)."""
    current = _owned(db, viewer, principal, assistant_id)
    db.delete_assistant(current.id)


def sub_loader(db: Database, viewer: Viewer, principal: Principal | None) -> Callable[[str], Assistant]:
    """What the runtime calls to load a sub-assistant: only ones the caller may see."""
    return lambda assistant_id: get(db, viewer, principal, assistant_id)


# -- versions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    """One stored definition of an assistant: ``draft`` (never published), ``published`` (what
    chats run; at most one) or ``archived`` (published once, replaced since)."""

    id: str
    assistant_id: str
    number: int
    definition: Definition
    note: str
    status: str
    created_at: float
    published_at: float | None

    @property
    def was_published(self) -> bool:
        return self.published_at is not None


def _version(row: VersionRow) -> Version:
    return Version(
        id=row.public_id,
        assistant_id=row.assistant_id,
        number=row.number,
        definition=load_definition(row.definition),
        note=row.note,
        status=row.status,
        created_at=row.created_at,
        published_at=row.published_at,
    )


def versions(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> list[Version]:
    """Every version of an assistant the viewer may see, newest first."""
    found = get(db, viewer, principal, assistant_id)
    return [_version(v) for v in db.assistant_versions(found.id)]


def version(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str, version_id: str) -> Version:
    """One version of an assistant the viewer may see."""
    for v in versions(db, viewer, principal, assistant_id):
        if v.id == version_id.strip():
            return v
    raise NotFound(f"assistant {assistant_id!r} has no version {version_id!r}")


def publish(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str, version_id: str) -> Version:
    """Make one version the one chats run (owner or admin only); the one before is archived."""
    current = _owned(db, viewer, principal, assistant_id)
    target = version(db, viewer, principal, current.id, version_id)
    _check_context(db, principal, target.definition)
    if not db.publish_assistant_version(current.id, target.id):
        raise NotFound(f"assistant {assistant_id!r} has no version {version_id!r}")
    return version(db, viewer, principal, current.id, target.id)


def published(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> Assistant:
    """The assistant as its published version defines it (``NotFound`` when it has none: a
    draft is edited, not talked to)."""
    found = get(db, viewer, principal, assistant_id)
    live = next((v for v in db.assistant_versions(found.id) if v.status == "published"), None)
    if live is None:
        raise NotFound(f"Agent version not found: assistant {assistant_id!r} has no published version")
    return replace(found, definition=load_definition(live.definition), version=live.number)


def at_version(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str, version_id: str) -> Assistant:
    """The assistant as one of its versions defines it, draft or not (what an evaluation of that
    version runs, before anyone publishes it)."""
    found = version(db, viewer, principal, assistant_id, version_id)
    return replace(get(db, viewer, principal, assistant_id), definition=found.definition, version=found.number)


def callers(db: Database, viewer: Viewer, principal: Principal | None, assistant_id: str) -> list[Assistant]:
    """The assistants the viewer sees that consult this one (what a change to it reaches)."""
    found = get(db, viewer, principal, assistant_id)
    return [a for a in list_visible(db, viewer, principal) if found.id in a.definition.sub_assistants]


# -- conversations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A conversation of the viewer's, with what its assistants' turns carried."""

    conversation: Conversation
    assistant_id: str | None  # the assistant it was started with
    messages: list[Message]
    turns: dict[str, AgentTurnRow]  # by the assistant message's id


def conversations(db: Database, viewer: Viewer) -> list[tuple[Conversation, str | None]]:
    """The viewer's conversations, newest first, with the assistant each was started with."""
    found = db.list_conversations(viewer.owner, limit=MAX_CONVERSATIONS)
    started_with = db.conversation_assistants([c.id for c in found])
    return [(c, started_with.get(c.id)) for c in found]


def conversation(db: Database, viewer: Viewer, conversation_id: str) -> ConversationView:
    """One of the viewer's conversations (another's is reported like a missing one)."""
    found = db.get_conversation(conversation_id.strip().lower())
    if found is None or found.key_id != viewer.owner:
        raise NotFound(f"conversation {conversation_id!r} not found")
    turns = {t.message_id: t for t in db.agent_turns(found.id)}
    return ConversationView(found, db.conversation_assistants([found.id]).get(found.id), db.messages(found.id), turns)


def delete_conversation(db: Database, viewer: Viewer, conversation_id: str) -> None:
    """Remove one of the viewer's conversations with its turns."""
    db.delete_conversation(conversation(db, viewer, conversation_id).conversation.id)


# -- background turns ------------------------------------------------------------------------


def start_task(
    services: Services, viewer: Viewer, principal: Principal | None, assistant: Assistant, request: TurnRequest
) -> AgentTaskRow:
    """Store a task and run the turn in the background (call from the server's event loop)."""
    now = time.time()
    row = AgentTaskRow(
        public_id=str(uuid.uuid4()),
        owner=viewer.owner,
        owner_name=viewer.name,
        assistant_id=assistant.id,
        task=request.text[:2000],
        status=TASK_STARTED,
        final_output="",
        current_step="",
        created_at=now,
        updated_at=now,
    )
    services.store.create_agent_task(row)
    loader = sub_loader(services.store, viewer, principal)

    async def run() -> None:
        try:
            events = services.agents.run(principal, viewer.owner, assistant, request, load_assistant=loader)
            done = await finished(events)
            # A turn cut off by a budget or whose answer broke the output schema did not do its task:
            # the sync call answers ``success: false`` for it, so the task is FAILED, with what was said.
            failed = bool(done.stopped or done.output_error)
            output = f"{done.answer}\n\n{done.output_error}".strip() if done.output_error else done.answer
            services.store.update_agent_task(
                row.public_id,
                status=TASK_FAILED if failed else TASK_COMPLETED,
                final_output=output,
                current_step=f"stopped: {done.stopped} budget" if done.stopped else "done",
            )
        except RepolensError as exc:
            services.store.update_agent_task(row.public_id, status=TASK_FAILED, final_output=str(exc))
        except Exception:
            log.exception("background task %s crashed", row.public_id)
            services.store.update_agent_task(row.public_id, status=TASK_FAILED, final_output="internal error")

    task = asyncio.get_running_loop().create_task(run())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return row


def get_task(services: Services, viewer: Viewer, task_id: str) -> AgentTaskRow:
    """A task of the viewer's (another's is reported like a missing one)."""
    row = services.store.get_agent_task(task_id.strip())
    if row is None or (row.owner != viewer.owner and not viewer.admin):
        raise NotFound(f"task {task_id!r} not found")
    stale = time.time() - row.updated_at > services.settings.agent_max_seconds + TASK_GRACE_S
    if row.status == TASK_STARTED and stale:
        return replace(row, status=TASK_FAILED, final_output="interrupted: the server stopped while the task ran")
    return row
