"""The answer engine: plan the retrieval, pack the context, stream a grounded, cited answer.

One engine serves every chat surface (CodeAlive's ``/api/chat/completions``, OpenAI's
``/v1/chat/completions``, the MCP and tool-API ``chat`` tool, ``repolens ask``). A turn:

1. Conversation: a stored one (CodeAlive's 24-hex ``conversationId``, owned by the key that
   started it) supplies the history and the data-source scope of follow-ups.
2. Retrieval, planned by this code and never by the model or the repository text: a hybrid
   search for the question (plus, for a short follow-up, one for the previous question and this
   one together); the search's own symbol lookups put definitions of named identifiers first;
   then the calls graph of the top symbols adds their callers and callees.
3. Packing: the best artifacts that fit the model's window after the rules, the history and a
   reserve for the answer, each delimited with provenance (``chat/prompt.py``).
4. Answer: streamed from the model through the leak filter (``chat/guard.py``); with no model
   configured, a labelled retrieval-only summary instead; with nothing retrieved, "Not enough
   context" without calling the model at all.
5. Citations: the ``[n]`` markers of the answer, kept only when ``n`` is an artifact that was
   actually in the prompt, resolved to identifier, path, lines and commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from repolens import catalog
from repolens.access.ratelimit import RateLimiter, SharedQuota
from repolens.chat.guard import LeakGuard
from repolens.chat.llm import LLM, ChatMessage, Completion
from repolens.chat.prompt import (
    HISTORY_SHARE,
    ContextItem,
    estimate_tokens,
    message_tokens,
    pack,
    system_prompt,
    user_message,
)
from repolens.errors import InvalidInput, NotFound, RateLimited, RepolensError
from repolens.retrieval import graph

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.domain import Artifact, Conversation, Source
    from repolens.services import Services

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 20_000  # a question longer than this is a document; index it instead
SEARCH_LIMIT = 12  # hits per planned search: more than a window holds, so packing can choose
FOLLOWUP_WORDS = 8  # a question this short after earlier turns ("and the tests?") leans on them
RELATED_FROM = 2  # top symbols whose calls graph is followed
RELATED_PER_DIRECTION = 3
PROMPT_SAFETY_TOKENS = 256  # slack for estimate error in the rules and the question wrapper
RETRIEVAL_ONLY_ITEMS = 8
# An answer costs a model call (seconds, and money on a hosted model) where a search costs
# milliseconds, so a key's chat allowance is this fraction of its plan's requests and slots.
CHAT_SHARE = 10
LOCAL_OWNER = "local"  # conversations started without a key (the CLI on this machine)
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_CALLABLE = frozenset({"function", "method", "class", "struct"})

NOT_ENOUGH_CONTEXT = (
    "Not enough context: no indexed code in the searched data sources matches this question. "
    "Check the data source names, or rephrase with the names of files, classes or functions."
)
RETRIEVAL_ONLY_HEADER = (
    "Retrieval-only answer (no language model is configured on this server, so instead of an "
    "explanation here is the code most relevant to the question, best first):\n"
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One question, with where to look and what came before."""

    question: str
    names: tuple[str, ...] = ()
    conversation_id: str | None = None
    history: tuple[ChatMessage, ...] = ()  # turns the caller sends itself (OpenAI clients do)
    remember: bool = True  # keep the turn in a server-side conversation
    debug: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    """First event: ids and how the answer is made."""

    conversation_id: str
    message_id: str
    model: str
    mode: str  # "llm" | "retrieval-only" | "no-context"
    plan: tuple[str, ...]  # the retrieval steps taken (shown with ``debug``)
    artifacts: int  # artifacts in the prompt


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """Last event: the whole answer, its checked citations and the tokens used."""

    answer: str
    citations: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    redactions: int = 0


ChatEvent = Started | Delta | Finished


@dataclass(frozen=True, slots=True)
class _Checked:
    """A request that passed every check; nothing has been written or counted for it yet."""

    conversation: Conversation | None  # the stored conversation it continues
    sources: list[Source]
    history: list[ChatMessage]  # the turns that fit the history share of the window
    system: str
    budget: int  # tokens left for retrieved code


@dataclass(slots=True)
class _Prepared:
    conversation: Conversation | None
    items: list[ContextItem]
    plan: list[str]
    messages: list[ChatMessage] = field(default_factory=list)
    created: bool = False  # the conversation was started by this turn


def citations_in(answer: str, items: Sequence[ContextItem]) -> list[dict[str, Any]]:
    """The artifacts the answer cites, in order of first citation; unknown numbers are dropped."""
    by_number = {item.number: item for item in items}
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        for raw in match.group(1).split(","):
            n = int(raw)
            if n in by_number and n not in seen:
                seen.append(n)
    return [citation(by_number[n]) for n in seen]


def citation(item: ContextItem) -> dict[str, Any]:
    """A citation in the shape every surface returns."""
    a, s = item.artifact, item.source
    return {
        "n": item.number,
        "identifier": item.identifier,
        "kind": a.kind,
        "path": a.path,
        "startLine": a.start_line,
        "endLine": a.end_line,
        "commit": s.commit,
        "dataSource": {"id": s.public_id, "name": s.name},
    }


def split_turns(turns: Sequence[tuple[str, str]]) -> tuple[str, tuple[ChatMessage, ...]]:
    """(question, history) of a client's message list: the last user message is the question, the
    user and assistant turns before it the history (the client's system messages are not ours to pass)."""
    users = [i for i, (role, _) in enumerate(turns) if role == "user"]
    if not users:
        raise InvalidInput("messages must contain a user message (the question)")
    last = users[-1]
    history = tuple(
        ChatMessage("assistant" if role == "assistant" else "user", text)
        for role, text in turns[:last]
        if role in ("user", "assistant")
    )
    return turns[last][1], history


async def finished_event(events: AsyncIterator[ChatEvent]) -> Finished:
    """Run the rest of an answer and return its ``Finished`` event."""
    finished: Finished | None = None
    async for event in events:
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


def _strip_citations(text: str) -> str:
    # Earlier answers cite the numbering of their own prompt; in history it would mislead.
    return _CITATION.sub("", text)


class AnswerEngine:
    """Answers questions over the indexed repositories, for every chat surface."""

    def __init__(self, services: Services, llm: LLM | None) -> None:
        self.services = services
        self.llm = llm
        store = services.store
        self.limiter = RateLimiter(shared=store if isinstance(store, SharedQuota) else None, bucket="chat")

    @property
    def model_name(self) -> str:
        return self.llm.name if self.llm is not None else "retrieval-only"

    # -- limits ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def chat_slot(self, principal: Principal | None) -> Iterator[None]:
        """Hold one of the key's chat slots (agents share the allowance: each turn is an answer)."""
        if principal is None:  # the local CLI: no key, no plan
            yield
            return
        key = principal.key
        per_hour = max(1, key.requests_per_hour // CHAT_SHARE)
        decision = self.limiter.acquire(key.key_id, per_hour=per_hour, concurrency=max(1, key.concurrency // CHAT_SHARE))
        if not decision.allowed:
            # The refusal carries the chat quota's numbers: the search quota's would tell the
            # client it has requests left when its chat allowance is what ran out.
            raise RateLimited(
                f"chat {decision.reason} (chat allows {per_hour} answers per hour on this key)",
                decision.retry_after,
                limit=decision.limit,
                remaining=decision.remaining,
                reset=decision.reset,
            )
        try:
            yield
        finally:
            self.limiter.release(key.key_id)

    # -- the turn -------------------------------------------------------------------------

    async def answer(self, principal: Principal | None, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        """The events of one answer: ``Started``, ``Delta``s, ``Finished``.

        Closing the iterator early (a client that went away) closes the model's stream too.
        """
        question = request.question.strip()
        if not question:
            raise InvalidInput("the question (the last user message) is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidInput(f"the question is over {MAX_QUESTION_CHARS} characters; ask about less at once")
        # Every refusal (unknown source or conversation, no room in the window) happens here,
        # before the chat quota is counted and before anything is written.
        checked = await anyio.to_thread.run_sync(self._check, principal, request, question)
        with self.chat_slot(principal):
            prepared = await anyio.to_thread.run_sync(self._prepare, principal, request, question, checked)
            message_id = secrets.token_hex(12)
            conversation_id = prepared.conversation.public_id if prepared.conversation else ""
            mode = "no-context" if not prepared.items else ("llm" if self.llm is not None else "retrieval-only")
            parts: list[str] = []
            done = Completion()
            guard = LeakGuard(prepared.messages[0].content if prepared.messages else "")
            asked = recorded = False
            try:
                yield Started(conversation_id, message_id, self.model_name, mode, tuple(prepared.plan), len(prepared.items))
                if mode == "llm":
                    assert self.llm is not None
                    asked = True
                    stream = self.llm.stream(
                        prepared.messages, max_tokens=self.services.settings.llm_answer_tokens, done=done
                    )
                    async with contextlib.aclosing(stream) as deltas:
                        async for text in deltas:
                            safe = guard.feed(text)
                            if safe:
                                parts.append(safe)
                                yield Delta(safe)
                    tail = guard.finish()
                    if tail:
                        parts.append(tail)
                        yield Delta(tail)
                else:
                    text = NOT_ENOUGH_CONTEXT if mode == "no-context" else self._retrieval_only(prepared.items)
                    for line in text.splitlines(keepends=True):
                        parts.append(line)
                        yield Delta(line)
                answer = "".join(parts)
                cites = citations_in(answer, prepared.items)
                prompt_tokens = done.usage.prompt_tokens or (message_tokens(prepared.messages) if mode == "llm" else 0)
                completion_tokens = done.usage.completion_tokens or (estimate_tokens(answer) if mode == "llm" else 0)
                await anyio.to_thread.run_sync(
                    self._record,
                    principal,
                    prepared,
                    request,
                    question,
                    message_id,
                    answer,
                    cites,
                    prompt_tokens,
                    completion_tokens,
                )
                recorded = True
                yield Finished(answer, cites, prompt_tokens, completion_tokens, done.finish_reason, guard.redactions)
            finally:
                if not recorded:
                    self._abandon(principal, prepared, spent=estimate_tokens("".join(parts)) if asked else None)

    async def complete(self, principal: Principal | None, request: ChatRequest) -> tuple[Started, Finished]:
        """The whole answer at once (non-streaming surfaces)."""
        async with contextlib.aclosing(self.answer(principal, request)) as events:
            started = await anext(events)
            assert isinstance(started, Started)
            return started, await finished_event(events)

    # -- steps ----------------------------------------------------------------------------

    def owned_conversation(self, principal: Principal | None, conversation_id: str) -> Conversation:
        """The caller's conversation ``conversation_id``.

        Another key's conversation is reported exactly like a missing one (``NotFound``), so a
        key cannot learn which conversation ids exist.
        """
        owner = principal.key.key_id if principal is not None else LOCAL_OWNER
        conversation = self.services.store.get_conversation(conversation_id.strip().lower())
        if conversation is None or conversation.key_id != owner:
            raise NotFound(f"conversation {conversation_id!r} not found")
        return conversation

    def _check(self, principal: Principal | None, request: ChatRequest, question: str) -> _Checked:
        """Everything that can refuse the request, read-only: the conversation, the scope and
        the room left in the window."""
        store = self.services.store
        settings = self.services.settings
        conversation = self.owned_conversation(principal, request.conversation_id) if request.conversation_id else None
        names = request.names or (conversation.scope if conversation else ())
        sources = catalog.resolve_scope(store, principal, list(names))
        if not sources:
            raise NotFound("there are no data sources to answer from: index a repository first")

        history = list(request.history)
        if conversation is not None:
            history += [
                ChatMessage("user" if m.role == "user" else "assistant", m.content) for m in store.messages(conversation.id)
            ]
        history = [
            ChatMessage(m.role, _strip_citations(m.content) if m.role == "assistant" else m.content)
            for m in history
            if m.role in ("user", "assistant") and m.content.strip()
        ]
        kept: list[ChatMessage] = []
        allowance = int(settings.llm_context_tokens * HISTORY_SHARE)
        for message in reversed(history):  # the newest turns matter most
            allowance -= estimate_tokens(message.content)
            if allowance < 0:
                break
            kept.insert(0, message)

        system = system_prompt(settings.chat_system_prompt)
        fixed = message_tokens([ChatMessage("system", system), *kept, ChatMessage("user", user_message(question, []))])
        budget = settings.llm_context_tokens - settings.llm_answer_tokens - fixed - PROMPT_SAFETY_TOKENS
        if budget <= 0:
            raise InvalidInput(
                f"REPOLENS_LLM_CONTEXT_TOKENS={settings.llm_context_tokens} leaves no room for code after the rules, "
                "the history and the answer reserve; raise it or lower REPOLENS_LLM_ANSWER_TOKENS"
            )
        return _Checked(conversation, sources, kept, system, budget)

    def _prepare(self, principal: Principal | None, request: ChatRequest, question: str, checked: _Checked) -> _Prepared:
        store = self.services.store
        kept, budget = checked.history, checked.budget
        with store.snapshot():  # hits, graph and file text from one state of the index
            plan, candidates = self._retrieve(question, kept, checked.sources)
        items = pack(candidates, budget)
        messages = [ChatMessage("system", checked.system), *kept, ChatMessage("user", user_message(question, items))]
        plan.append(f"packed {len(items)} of {len(candidates)} artifacts into {budget} tokens")
        conversation, created = checked.conversation, False
        if conversation is None and request.remember:
            # Last, once nothing before it can fail: a refused request leaves no empty conversation.
            owner = principal.key.key_id if principal is not None else LOCAL_OWNER
            title = question.splitlines()[0][:120]
            conversation = store.create_conversation(key_id=owner, title=title, scope=list(request.names))
            created = True
        return _Prepared(conversation, items, plan, messages, created)

    def _retrieve(
        self, question: str, history: Sequence[ChatMessage], sources: Sequence[Source]
    ) -> tuple[list[str], list[tuple[Artifact, Source, str]]]:
        store = self.services.store
        queries = [question]
        earlier = [m.content for m in history if m.role == "user"]
        if earlier and len(question.split()) < FOLLOWUP_WORDS:
            queries.append(f"{earlier[-1]} {question}")
        plan: list[str] = []
        ranked: list[tuple[Artifact, Source]] = []
        seen: set[int] = set()
        for query in queries:
            outcome = self.services.searcher.search(query, limit=SEARCH_LIMIT, sources=sources)
            plan.append(f"search {json.dumps(query)} -> {len(outcome.hits)} hits")
            for hit in outcome.hits:
                if hit.artifact.id not in seen:
                    seen.add(hit.artifact.id)
                    ranked.append((hit.artifact, hit.source))
        related: list[tuple[Artifact, Source]] = []
        symbols = [(a, s) for a, s in ranked if a.kind == "Symbol" and a.symbol_kind in _CALLABLE][:RELATED_FROM]
        for artifact, source in symbols:
            groups = graph.relations(store, source, artifact, profile="calls", max_per_type=RELATED_PER_DIRECTION)
            found = [row for group in groups for row, _ in group.items if row.id not in seen]
            plan.append(f"calls graph of {artifact.qualified_name} -> {len(found)} related")
            for row in found:
                seen.add(row.id)
                related.append((row, source))
        candidates = []
        texts: dict[int, list[str]] = {}
        for artifact, source in [*ranked, *related]:
            if artifact.file_id not in texts:
                texts[artifact.file_id] = store.file_content(artifact.file_id).split("\n")
            lines = texts[artifact.file_id][artifact.start_line - 1 : artifact.end_line]
            candidates.append((artifact, source, "\n".join(lines)))
        return plan, candidates

    @staticmethod
    def _retrieval_only(items: Sequence[ContextItem]) -> str:
        lines = [RETRIEVAL_ONLY_HEADER]
        for item in items[:RETRIEVAL_ONLY_ITEMS]:
            a = item.artifact
            what = a.symbol_kind if a.kind == "Symbol" else a.kind.lower()
            name = a.qualified_name if a.kind == "Symbol" else a.path
            lines.append(
                f"{item.number}. `{name}` ({what}) in {item.source.name}: {a.path}, "
                f"lines {a.start_line}-{a.end_line} [{item.number}]"
            )
            summary = " - ".join(p for p in (a.signature.strip(), a.doc.strip().split("\n", 1)[0]) if p)
            if summary:
                lines.append(f"   {summary[:200]}")
        return "\n".join(lines) + "\n"

    def _abandon(self, principal: Principal | None, prepared: _Prepared, *, spent: int | None) -> None:
        """Clean up after an answer that did not finish (the model failed, the client left);
        ``spent`` is the tokens the model streamed, None if it was never asked."""
        store = self.services.store
        try:
            if prepared.created and prepared.conversation is not None:
                store.delete_conversation(prepared.conversation.id)  # it holds no turn: nothing to continue
            if principal is not None and spent is not None:
                # The tokens the model spent still count against the key.
                store.record_usage(
                    principal.key.key_id, prompt_tokens=message_tokens(prepared.messages), completion_tokens=spent
                )
        except RepolensError as exc:  # the answer's own error is the one to report
            log.warning("could not clean up an unfinished answer: %s", exc)

    def _record(
        self,
        principal: Principal | None,
        prepared: _Prepared,
        request: ChatRequest,
        question: str,
        message_id: str,
        answer: str,
        cites: list[dict[str, Any]],
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        store = self.services.store
        if prepared.conversation is not None:
            store.add_message(prepared.conversation.id, message_id=secrets.token_hex(12), role="user", content=question)
            store.add_message(
                prepared.conversation.id,
                message_id=message_id,
                role="assistant",
                content=answer,
                citations=json.dumps(cites),
            )
        if principal is not None:
            store.record_usage(principal.key.key_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
