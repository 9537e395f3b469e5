"""The one object every surface (CLI, REST, MCP) receives: settings, store, embedder, searcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from repolens.settings import Settings

if TYPE_CHECKING:
    from repolens.access.identity import Authenticator
    from repolens.agents.runtime import AgentRuntime
    from repolens.chat.engine import AnswerEngine
    from repolens.embeddings.base import Embedder
    from repolens.retrieval.search import Searcher
    from repolens.storage.base import Database, IndexDatabase


@dataclass(slots=True)
class Services:
    """Long-lived resources, built lazily so that cheap commands stay cheap."""

    settings: Settings
    # A long-lived process (the server, the MCP server): the store keeps its lexical index in memory.
    resident: bool = False
    # A command that only searches (``repolens search``): ``index`` opens the index store alone.
    index_only: bool = False
    _store: Database | None = field(default=None, init=False)
    _index: IndexDatabase | None = field(default=None, init=False)
    _embedder: Embedder | None = field(default=None, init=False)
    _embedder_loaded: bool = field(default=False, init=False)
    _searcher: Searcher | None = field(default=None, init=False)
    _answers: AnswerEngine | None = field(default=None, init=False)
    _authenticator: Authenticator | None = field(default=None, init=False)
    _agents: AgentRuntime | None = field(default=None, init=False)

    @property
    def store(self) -> Database:
        """The database (opened on first use)."""
        if self._store is None:
            from repolens.storage.factory import open_store

            self._store = open_store(self.settings, resident=self.resident)
        return self._store

    @property
    def index(self) -> IndexDatabase:
        """The index and the registry: the whole database, or with ``index_only`` (until something
        opens the whole database) a store without the other stores' code."""
        if self._store is not None or not self.index_only:
            return self.store
        if self._index is None:
            from repolens.storage.factory import open_index

            self._index = open_index(self.settings)
        return self._index

    @property
    def embedder(self) -> Embedder | None:
        """The configured embedder, or None for lexical-only search."""
        if not self._embedder_loaded:
            from repolens.embeddings.factory import load_embedder

            self._embedder = load_embedder(self.settings)
            self._embedder_loaded = True
        return self._embedder

    @property
    def searcher(self) -> Searcher:
        """The search engine over the store."""
        if self._searcher is None:
            from repolens.retrieval.search import Searcher

            self._searcher = Searcher(self.index, self.embedder)
        return self._searcher

    @property
    def answers(self) -> AnswerEngine:
        """The chat answer engine (with the configured model, or retrieval-only)."""
        if self._answers is None:
            from repolens.chat.engine import AnswerEngine
            from repolens.chat.llm import load_llm

            self._answers = AnswerEngine(self, load_llm(self.settings))
        return self._answers

    @property
    def authenticator(self) -> Authenticator:
        """Turns credentials (keys, sign-in tokens, OIDC tokens) into principals; signs people in."""
        if self._authenticator is None:
            from repolens.access.identity import Authenticator

            self._authenticator = Authenticator(self.settings)
        return self._authenticator

    @property
    def agents(self) -> AgentRuntime:
        """The assistant runtime (the same model as chat)."""
        if self._agents is None:
            from repolens.agents.runtime import AgentRuntime

            self._agents = AgentRuntime(self, self.answers.llm)
        return self._agents

    def close(self) -> None:
        """Release the database."""
        for opened in (self._index, self._store):
            if opened is not None:
                opened.close()
        self._store = self._index = None


def build_services(settings: Settings, *, resident: bool = False, index_only: bool = False) -> Services:
    """Services for ``settings``; nothing is opened until used (``resident``, ``index_only``: see ``Services``)."""
    return Services(settings, resident=resident, index_only=index_only)
