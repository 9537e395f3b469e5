"""The whole database: the index and the registry (``base.Store``, ``base.Registry``) with the stores
of assistants, chats, knowledge bases, workflows, batches and evaluations.

Kept apart from ``storage.base`` and ``storage.relational`` so that a command that only searches
(``repolens search``) opens an ``IndexDatabase`` without importing the other stores (~70 ms).
"""

from __future__ import annotations

from typing import Protocol

from repolens.storage.agents import AgentRegistry, AgentRegistryMixin
from repolens.storage.base import Registry, Store
from repolens.storage.batch_store import BatchStore, BatchStoreMixin
from repolens.storage.chats import ChatStore, ChatStoreMixin
from repolens.storage.eval_store import EvalStore, EvalStoreMixin
from repolens.storage.knowledge import KnowledgeMixin, KnowledgeStore
from repolens.storage.relational import SqlIndexStore
from repolens.storage.workflow_store import WorkflowStore, WorkflowStoreMixin


class Database(Store, Registry, AgentRegistry, ChatStore, KnowledgeStore, WorkflowStore, BatchStore, EvalStore, Protocol):
    """A backend: the index (``Store``), the control data (``Registry``, ``AgentRegistry``,
    ``ChatStore``), the knowledge bases (``KnowledgeStore``), the workflows (``WorkflowStore``),
    Codeer's batches (``BatchStore``) and agent evaluations (``EvalStore``) in one database."""


class SqlStore(
    SqlIndexStore, AgentRegistryMixin, ChatStoreMixin, KnowledgeMixin, WorkflowStoreMixin, BatchStoreMixin, EvalStoreMixin
):
    """The shared SQL of every store; a backend subclasses its own index store and this."""
