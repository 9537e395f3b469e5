"""Answer-quality benchmark of "chat with the codebase": do the answers cite the right files?

    python bench/chat.py                                  # index, ask every question, write bench/CHAT.md
    python bench/chat.py --home /tmp/chatbench-home       # keep the index for the next run (re-index is incremental)
    python bench/chat.py --only ws,raft                   # the questions about some corpora
    python bench/chat.py --no-vectors                     # lexical retrieval only (fast, not the default setup)

A fixed set of developer questions (``QUESTIONS`` below, 40 over 11 corpora and all 8 bench
languages), each a rephrasing of one labelled query of ../shared/bench/queries/<corpus>.json whose
``relevant`` files are its gold files. Per question the answer engine (``repolens.chat.engine``,
the one behind every chat surface) answers scoped to that corpus's data source, and the report
says whether the gold files are among the cited ones. In the same run, for comparison, the plain
top-k search for the same question (the ``Searcher`` with the engine's own settings, k = the
citations a retrieval-only answer makes) shows whether the chat's planning (follow-up query, calls
graph, packing into the window) adds or loses gold files relative to search alone, and the gold
files among all the artifacts packed into the prompt show what a model had to cite from.

The model is the one ``REPOLENS_LLM_PROVIDER`` / ``_BASE_URL`` / ``_API_KEY`` / ``_MODEL``
configure, as for ``repolens serve`` and ``repolens ask``; without them the answers are
retrieval-only (their citations are the first packed artifacts), and the report says which.
This is a benchmark, not a test: nothing fails on a low score.

Corpora are fetched by ../shared/bench/fetch_corpora.py (skipped when already there) into
../bench-data/corpora (``--corpora``), as ``bench/load.py`` does; the index is built with the same
``index_source`` + vector ``backfill`` as ``bench/run.py``. The report goes to bench/CHAT.md
(``--out``), per-question records to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# Both siblings put ../src on sys.path (this checkout is what gets measured) and own the helpers
# shared by the benchmarks: where the corpora and labels live, the machine line, percentiles.
from load import DEFAULT_CORPORA, git_commit, machine_line, percentile
from run import BENCH, HERE, REPO, peak_rss_mb

from repolens import catalog
from repolens.chat.engine import RETRIEVAL_ONLY_ITEMS, SEARCH_LIMIT, ChatRequest, Delta, Finished, Started
from repolens.indexing.pipeline import index_source
from repolens.indexing.vectors import backfill
from repolens.services import Services, build_services
from repolens.settings import Settings, load_settings

# The plain-search baseline returns as many results as a retrieval-only answer cites, so both
# sides get the same number of artifacts to find the gold files in. (An answer from a model may
# cite fewer or more of its packed artifacts; k stays fixed so the baseline does not move with it.)
BASELINE_K = RETRIEVAL_ONLY_ITEMS
# A search in no corpus's vocabulary, run once per corpus before the timed questions: it loads the
# embedding model and that source's vectors, which would otherwise land on the first question.
WARMUP_QUERY = "zzqx warm up"
DEFAULT_OUT = HERE / "CHAT.md"


@dataclass(frozen=True, slots=True)
class Question:
    """A developer's question and the labelled query it rephrases (whose ``relevant`` files are gold)."""

    corpus: str
    ask: str
    label: str


# Fixed on purpose (no sampling): figures from two runs, or two models, compare question by question.
# Per corpus a mix of the label categories: what a feature does, how a mechanism works, a named symbol.
QUESTIONS: tuple[Question, ...] = (
    # jinja2 (Python)
    Question(
        "jinja2",
        "How can I cache compiled templates on disk or in memcached so they are not recompiled at every start?",
        "persist compiled template code on disk or memcached",
    ),
    Question(
        "jinja2",
        "How does Jinja turn a template's source into Python code and then run it to render the output?",
        "how is template source compiled into python code and then executed to render output",
    ),
    Question(
        "jinja2",
        "When a child template extends a parent, how are blocks overridden and how does super() call "
        "the parent's version of a block?",
        "how does a child template override blocks of its parent and call the parent's version of a block",
    ),
    Question(
        "jinja2",
        "What does StrictUndefined do differently from the default undefined, and where is it defined?",
        "StrictUndefined",
    ),
    # werkzeug (Python)
    Question("werkzeug", "How should I hash and check user passwords with werkzeug?", "hash and verify user passwords"),
    Question(
        "werkzeug",
        "How does the URL map match an incoming path and HTTP method to an endpoint and extract its arguments?",
        "how does the url map match a request path and method to an endpoint and its arguments",
    ),
    Question(
        "werkzeug",
        "How do responses handle ETags, If-Modified-Since and Range requests to send a 304 or a 206?",
        "how does a response handle etag, if-modified-since and byte range requests to return 304 or 206",
    ),
    Question("werkzeug", "What is LimitedStream for and where is it implemented?", "LimitedStream"),
    # pytest (Python)
    Question(
        "pytest",
        "Where does pytest capture what a test prints to stdout and stderr?",
        "capture stdout and stderr printed during a test",
    ),
    Question(
        "pytest",
        "How does pytest rewrite assert statements so that a failing assert shows the intermediate values?",
        "how are assert statements rewritten at import time so failures show intermediate values",
    ),
    Question(
        "pytest",
        "How are fixtures resolved, cached per scope and torn down again?",
        "how are fixture dependencies resolved, cached according to their scope and finalized",
    ),
    Question("pytest", "How does the MonkeyPatch fixture undo the changes it made once the test is over?", "MonkeyPatch"),
    # ws (JavaScript)
    Question(
        "ws",
        "How are WebSocket messages compressed and decompressed with zlib?",
        "message compression with zlib deflate and inflate",
    ),
    Question(
        "ws",
        "How does the server handle the HTTP upgrade request and complete the opening handshake?",
        "how does the server answer an http upgrade request and finish the opening handshake",
    ),
    Question(
        "ws",
        "How does closing a connection work, and what happens if the other side never answers the close frame?",
        "how does the closing handshake work and what happens if the peer never replies",
    ),
    # knex (JavaScript)
    Question(
        "knex",
        "How do I insert thousands of rows in batches instead of one giant insert?",
        "insert a large array of rows in chunks",
    ),
    Question(
        "knex",
        "How does a chained query builder call get compiled into a SQL string with positional bindings?",
        "how does a chained query builder get compiled into a sql string with positional bindings",
    ),
    Question(
        "knex",
        "How do nested transactions work: are savepoints used, and how does a commit or rollback propagate?",
        "how do nested transactions use savepoints and propagate commit or rollback",
    ),
    Question("knex", "What does the JoinClause class do?", "JoinClause"),
    # rxjs (TypeScript)
    Question(
        "rxjs",
        "How do I retry a failing observable with a delay between attempts?",
        "resubscribe to a failing source with a delay between attempts",
    ),
    Question(
        "rxjs",
        "How can I await the first value an observable emits as a promise?",
        "await the first emitted value as a promise",
    ),
    Question(
        "rxjs",
        "How does mergeMap with a concurrency limit buffer inner observables until a slot frees up?",
        "how does flattening with a concurrency limit buffer inner sources until a slot is free",
    ),
    Question("rxjs", "How does BehaviorSubject give its current value to new subscribers?", "BehaviorSubject"),
    # raft (Go)
    Question(
        "raft", "How does leader election work: who sends vote requests, and when?", "leader election and vote requests"
    ),
    Question(
        "raft",
        "How does the leader replicate log entries to the followers and back off when one of them fails?",
        "how does the leader replicate log entries to each follower and back off when a follower fails",
    ),
    Question(
        "raft",
        "How is the commit index advanced from what the voters have matched?",
        "how is the commit index advanced from the match indexes of the voters",
    ),
    Question("raft", "Where is FileSnapshotStore implemented and how many old snapshots does it keep?", "FileSnapshotStore"),
    # rayon (Rust)
    Question(
        "rayon",
        "How can I turn an ordinary sequential iterator into a parallel one?",
        "turn an ordinary sequential iterator into a parallel one",
    ),
    Question(
        "rayon",
        "How do producers and consumers split the work recursively and join the partial results?",
        "how do producers and consumers cooperate to split work recursively and join the partial results",
    ),
    Question(
        "rayon",
        "How does try_reduce stop early once an error or a None shows up?",
        "how do fallible reductions short circuit as soon as an error or none is produced",
    ),
    # grape (Ruby)
    Question(
        "grape",
        "How do I declare that two parameters must not be sent together?",
        "parameters that must not be sent together",
    ),
    Question(
        "grape",
        "What happens when an endpoint runs: in which order do before filters, parameter validation, "
        "the route block and after filters execute?",
        "what happens when an endpoint runs: before filters, parameter validation, the route block and after filters",
    ),
    Question(
        "grape",
        "When an endpoint raises, how is the matching rescue_from handler found and turned into an HTTP response?",
        "how are exception handlers looked up for a raised error and turned into an http response",
    ),
    # doctrine-dbal (PHP)
    Question(
        "doctrine-dbal",
        "Can reads go to replicas and writes to the primary database? Where is that handled?",
        "send reads to replicas and writes to the primary database",
    ),
    Question(
        "doctrine-dbal",
        "How do nested transactions work with savepoints, and what happens when an inner level rolls back?",
        "how do nested transactions work using savepoints and what happens on rollback of an inner level",
    ),
    Question(
        "doctrine-dbal",
        "Where are driver error codes turned into exceptions such as a deadlock or a unique constraint violation?",
        "how are vendor error codes from the driver turned into specific exceptions such as deadlock or unique violation",
    ),
    Question(
        "doctrine-dbal", "How do I use the QueryBuilder to build a select with joins and bound parameters?", "QueryBuilder"
    ),
    # penlight (Lua)
    Question(
        "penlight",
        "How can I catch accidental use of undeclared global variables?",
        "catch accidental use of undeclared global variables",
    ),
    Question(
        "penlight",
        "How does the class helper implement inheritance and call the parent's constructor?",
        "how does the class helper implement inheritance, constructors calling the parent initializer, and "
        "computed properties",
    ),
    Question("penlight", "How does deepcompare compare two nested tables?", "deepcompare"),
)


@dataclass(frozen=True, slots=True)
class Labelled:
    """A question with what its label says: gold files and category."""

    question: Question
    gold: tuple[str, ...]
    category: str


@dataclass(slots=True)
class Outcome:
    """What the chat and the plain search returned for one question."""

    corpus: str
    category: str
    question: str
    gold: list[str]
    mode: str  # the engine's: "llm" | "retrieval-only" | "no-context"
    packed: list[str]  # paths of the artifacts packed into the prompt, in prompt order
    cited: list[str]  # cited paths, one per citation, in citation order
    chat_ms: float
    first_text_ms: float  # until the first answer text: what a streaming client waits for
    prompt_tokens: int
    completion_tokens: int
    searched: list[str]  # paths of the top k search hits, in rank order
    search_ms: float
    engine_hits: int  # hits of the engine's own search (SEARCH_LIMIT asked): the prompt's first artifacts


def first_rank(paths: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based position of the first gold path, None when there is none."""
    return next((i for i, path in enumerate(paths, 1) if path in gold), None)


def hit(paths: Sequence[str], gold: Sequence[str]) -> bool:
    return any(path in gold for path in paths)


def all_gold(paths: Sequence[str], gold: Sequence[str]) -> bool:
    return set(gold) <= set(paths)


def distinct(paths: Sequence[str]) -> list[str]:
    """Paths once each, in first-seen order (several citations can point into one file)."""
    return list(dict.fromkeys(paths))


def labelled_questions(only: Sequence[str]) -> list[Labelled]:
    """The questions (of the ``only`` corpora), with gold files and category from their labels."""
    out: list[Labelled] = []
    labels: dict[str, dict[str, dict[str, object]]] = {}
    for q in QUESTIONS:
        if only and q.corpus not in only:
            continue
        if q.corpus not in labels:
            rows = json.loads((BENCH / "queries" / f"{q.corpus}.json").read_text())
            labels[q.corpus] = {row["query"]: row for row in rows}
        row = labels[q.corpus].get(q.label)
        if row is None:  # a relabelled query must not silently drop a question or change its gold
            raise SystemExit(f"{q.corpus}: no labelled query {q.label!r} in {BENCH / 'queries'}")
        relevant = row["relevant"]
        assert isinstance(relevant, list)
        out.append(Labelled(q, tuple(str(p) for p in relevant), str(row["category"])))
    return out


def fetch_corpora(dest: Path, names: Sequence[str]) -> None:
    """Fetch the corpora that are missing, as bench/run.py does (the fetcher skips stamped ones)."""
    command = [sys.executable, str(BENCH / "fetch_corpora.py"), "--dest", str(dest), "--only", ",".join(names)]
    subprocess.run(command, check=True)


def index_corpora(services: Services, corpora: Path, names: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Index each corpus (incremental on a reused ``--home``) and embed it; per corpus (vectors made, seconds)."""
    out: dict[str, tuple[int, float]] = {}
    for name in names:
        started = time.perf_counter()
        source, report = index_source(services.store, services.settings, str(corpora / name), name=name)
        vectors = backfill(services.store, source.id, services.embedder) if services.embedder is not None else 0
        seconds = time.perf_counter() - started
        out[name] = (vectors, seconds)
        print(f"[index] {name}: {report.files_changed} files changed, {vectors} new vectors, {seconds:.1f}s", flush=True)
    return out


async def ask(services: Services, item: Labelled, k: int) -> Outcome:
    """One question through the engine, then the same question as a plain top-k search."""
    q = item.question
    request = ChatRequest(question=q.ask, names=(q.corpus,), remember=False)  # no conversation rows in the index
    started: Started | None = None
    finished: Finished | None = None
    first_text: float | None = None
    t0 = time.perf_counter()
    async with contextlib.aclosing(services.answers.answer(None, request)) as events:
        async for event in events:
            if isinstance(event, Started):
                started = event
            elif isinstance(event, Delta) and first_text is None:
                first_text = (time.perf_counter() - t0) * 1000
            elif isinstance(event, Finished):
                finished = event
    chat_ms = (time.perf_counter() - t0) * 1000
    assert started is not None and finished is not None
    # The events give only the number of packed artifacts. Which ones they were (what a model gets to
    # cite from) comes from the engine's own preparation step, run again untimed: the same retrieval,
    # planning and packing on the same index, and with remember=False it writes nothing.
    packed = [p.artifact.path for p in services.answers._prepare(None, request, q.ask).items]
    assert len(packed) == started.artifacts, "the repeated preparation packed a different context"

    # The engine's own search call (same searcher, mode and reranking, same scope), cut to k.
    sources = catalog.resolve_scope(services.store, None, [q.corpus])
    t0 = time.perf_counter()
    outcome = services.searcher.search(q.ask, limit=k, sources=sources)
    search_ms = (time.perf_counter() - t0) * 1000
    # Untimed: how many of the packed artifacts the engine's search supplied (they come first; callers
    # and callees from the calls graph follow), to tell where a gold file in the prompt came from.
    engine_hits = len(services.searcher.search(q.ask, limit=SEARCH_LIMIT, sources=sources).hits)
    return Outcome(
        corpus=q.corpus,
        category=item.category,
        question=q.ask,
        gold=list(item.gold),
        mode=started.mode,
        packed=packed,
        cited=[str(c["path"]) for c in finished.citations],
        chat_ms=chat_ms,
        first_text_ms=first_text if first_text is not None else chat_ms,
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        searched=[h.artifact.path for h in outcome.hits],
        search_ms=search_ms,
        engine_hits=engine_hits,
    )


async def ask_all(services: Services, items: Sequence[Labelled], k: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    warmed: set[str] = set()
    for i, item in enumerate(items, 1):
        corpus = item.question.corpus
        if corpus not in warmed:
            sources = catalog.resolve_scope(services.store, None, [corpus])
            services.searcher.search(WARMUP_QUERY, limit=k, sources=sources)
            warmed.add(corpus)
        o = await ask(services, item, k)
        print(
            f"[{i:2}/{len(items)}] {corpus}: chat {'hit' if hit(o.cited, o.gold) else 'miss'} "
            f"({len(o.cited)} cited, {o.chat_ms:.0f} ms), search {'hit' if hit(o.searched, o.gold) else 'miss'} "
            f"- {o.question}",
            flush=True,
        )
        outcomes.append(o)
    return outcomes


# -- report ---------------------------------------------------------------------------------------


def llm_line(settings: Settings, model: str) -> str:
    """Which model answered (never the key)."""
    if not settings.llm_provider:
        return "none: retrieval-only (REPOLENS_LLM_PROVIDER unset; each answer cites the first packed artifacts)"
    where = f" at {settings.llm_base_url}" if settings.llm_base_url else " (the provider's default URL)"
    return f"`{model}` via the {settings.llm_provider} provider{where}"


def _rate(flags: Sequence[bool]) -> str:
    return f"{sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)})" if flags else "n/a"


def _mrr(ranks: Sequence[int | None]) -> float:
    return statistics.fmean(1 / r if r else 0.0 for r in ranks) if ranks else float("nan")


def _files(paths: Sequence[str], gold: Sequence[str]) -> str:
    """Distinct paths, gold ones in bold."""
    return ", ".join(f"**{p}**" if p in gold else p for p in distinct(paths)) or "(none)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def summary_rows(outcomes: Sequence[Outcome], k: int) -> list[str]:
    chat_lat = [o.chat_ms for o in outcomes]
    search_lat = [o.search_ms for o in outcomes]
    rows = [
        "| | hit rate | all-gold rate | MRR (first gold) | artifacts / answer | distinct files / answer | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sides: tuple[tuple[str, list[tuple[list[str], list[str]]], list[float]], ...] = (
        ("chat: cited", [(o.cited, o.gold) for o in outcomes], chat_lat),
        ("chat: packed into the prompt", [(o.packed, o.gold) for o in outcomes], []),
        (f"plain search, top {k}", [(o.searched, o.gold) for o in outcomes], search_lat),
    )
    for label, lists, lat in sides:
        rows.append(
            f"| {label} | {_rate([hit(p, g) for p, g in lists])} | {_rate([all_gold(p, g) for p, g in lists])} "
            f"| {_mrr([first_rank(p, g) for p, g in lists]):.3f} | {statistics.fmean(len(p) for p, _ in lists):.1f} "
            f"| {statistics.fmean(len(distinct(p)) for p, _ in lists):.1f} "
            + (f"| {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} |" if lat else "| n/a | n/a |")
        )
    return rows


def slice_rows(outcomes: Sequence[Outcome], key: str) -> list[str]:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(str(getattr(o, key)), []).append(o)
    rows = [
        f"| {key} | questions | chat hit | search hit | chat all-gold | search all-gold |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, group in groups.items():
        rows.append(
            f"| {name} | {len(group)} | {sum(hit(o.cited, o.gold) for o in group)} "
            f"| {sum(hit(o.searched, o.gold) for o in group)} | {sum(all_gold(o.cited, o.gold) for o in group)} "
            f"| {sum(all_gold(o.searched, o.gold) for o in group)} |"
        )
    return rows


def question_rows(outcomes: Sequence[Outcome]) -> list[str]:
    rows = [
        "| # | corpus | question | gold | cited files (gold in bold) | hit | all gold | first gold | citations "
        "| ms | prompt: all gold | prompt: first gold | search: hit | search: first gold | search: files (gold in bold) |",
        "|---:|---|---|---|---|:-:|:-:|---:|---:|---:|:-:|---:|:-:|---:|---|",
    ]
    for i, o in enumerate(outcomes, 1):
        chat_rank, search_rank = first_rank(o.cited, o.gold), first_rank(o.searched, o.gold)
        searched = "same as cited" if distinct(o.searched) == distinct(o.cited) else _files(o.searched, o.gold)
        rows.append(
            f"| {i} | {o.corpus} | {_cell(o.question)} | {', '.join(o.gold)} | {_files(o.cited, o.gold)} "
            f"| {'yes' if hit(o.cited, o.gold) else 'no'} | {'yes' if all_gold(o.cited, o.gold) else 'no'} "
            f"| {chat_rank or '-'} | {len(o.cited)} | {o.chat_ms:.0f} "
            f"| {'yes' if all_gold(o.packed, o.gold) else 'no'} | {first_rank(o.packed, o.gold) or '-'} "
            f"| {'yes' if hit(o.searched, o.gold) else 'no'} | {search_rank or '-'} | {searched} |"
        )
    return rows


def write_report(
    path: Path, command: str, outcomes: Sequence[Outcome], k: int, services: Services, indexed: dict[str, tuple[int, float]]
) -> None:
    """The Markdown report: how it was made, the summary, the slices, then every question."""
    settings = services.settings
    embedder = services.embedder.name if services.embedder is not None else "none (lexical only)"
    corpora = distinct([o.corpus for o in outcomes])
    modes = ", ".join(f"{m} x{sum(o.mode == m for o in outcomes)}" for m in distinct([o.mode for o in outcomes]))
    chat_only = [i for i, o in enumerate(outcomes, 1) if hit(o.cited, o.gold) and not hit(o.searched, o.gold)]
    search_only = [i for i, o in enumerate(outcomes, 1) if hit(o.searched, o.gold) and not hit(o.cited, o.gold)]
    gained = sum(len(set(o.gold) & (set(o.cited) - set(o.searched))) for o in outcomes)
    lost = sum(len(set(o.gold) & (set(o.searched) - set(o.cited))) for o in outcomes)
    same_files = sum(set(o.cited) == set(o.searched) for o in outcomes)
    # Gold files a model had in front of it but the answer did not cite, by where the engine got them.
    uncited = [
        (i, o.packed.index(g) + 1, o.engine_hits)
        for i, o in enumerate(outcomes, 1)
        for g in o.gold
        if g in o.packed and g not in o.cited
    ]
    uncited_at = sorted({i for i, _, _ in uncited})
    index_s = sum(s for _, s in indexed.values())
    plural = "corpus" if len(corpora) == 1 else "corpora"
    lines = [
        "# Chat answer-quality benchmark",
        "",
        f"`{command}` on {datetime.date.today().isoformat()}, commit {git_commit()}.",
        "",
        f"- Machine: {machine_line()}.",
        f"- LLM: {llm_line(settings, services.answers.model_name)}. Answer modes: {modes}.",
        f"- Embedder: `{embedder}`; index: {len(corpora)} {plural} ({', '.join(corpora)}), indexed and embedded "
        f"in {index_s:.0f} s in this run ({sum(v for v, _ in indexed.values())} new vectors; 0 on a reused `--home`).",
        f"- Questions: {len(outcomes)}, fixed in `bench/chat.py`, each a developer's phrasing of one labelled query "
        "of ../shared/bench/queries/<corpus>.json; its gold files are that label's `relevant` files. Each is asked "
        "once, scoped to its corpus's data source, with no conversation history (so no follow-up query is planned).",
        "- *Cited*: the paths of the answer's checked citations. *Hit*: a gold file is cited; *all gold*: every gold "
        "file is; *first gold*: the 1-based position of the first citation of a gold file; MRR averages 1/that "
        "(0 for a miss). *Prompt*: the same for every artifact packed into the model's context (what a model "
        "may cite from; a retrieval-only answer cites the first of them).",
        f"- Baseline: the same question as a plain search (the engine's `Searcher`, mode `auto` with reranking, "
        f"scoped the same way) cut to the top {k} artifacts (by default {BASELINE_K}, the number of citations a "
        f"retrieval-only answer makes); the engine's own search asks for {SEARCH_LIMIT} and then adds "
        "callers/callees of the top symbols and packs what fits the window. Each search runs right after its chat "
        "answer, so both read the same warm caches; one warm-up search per corpus loads the model and vectors "
        "before the first timed question.",
        "- Latency is in-process and single-threaded: the whole answer for chat (planning, retrieval, packing, "
        "and the model when there is one), the search call for the baseline.",
        "",
        "## Summary",
        "",
        *summary_rows(outcomes, k),
        "",
        f"- Chat hit where plain search missed: {len(chat_only)} ({', '.join(f'#{i}' for i in chat_only) or 'none'}); "
        f"plain search hit where chat missed: {len(search_only)} "
        f"({', '.join(f'#{i}' for i in search_only) or 'none'}).",
        f"- Gold files cited by chat but not in the search's top {k}: {gained}; in the search's top "
        f"{k} but not cited: {lost}. Same set of files on both sides: {same_files} of {len(outcomes)} "
        "questions.",
        f"- Gold files packed into the prompt but not cited: {len(uncited)} "
        f"({', '.join(f'#{i}' for i in uncited_at) or 'none'}): {sum(at <= k for _, at, _ in uncited)} among the "
        f"first {k} artifacts, {sum(k < at <= hits for _, at, hits in uncited)} from the rest of the engine's "
        f"search, {sum(at > hits for _, at, hits in uncited)} added by the calls graph.",
    ]
    if all(o.mode != "llm" for o in outcomes):
        lines.append(
            f"- Reading these figures: a retrieval-only answer cites the first {RETRIEVAL_ONLY_ITEMS} packed "
            "artifacts, which are the engine's search's best hits, so its citations match the plain search's by "
            "construction (when k is that number). What the planning adds shows in the prompt row: the context a "
            "model would answer from. With a model configured, the cited row measures what it actually cites."
        )
    if any(o.mode == "llm" for o in outcomes):
        first = [o.first_text_ms for o in outcomes if o.mode == "llm"]
        lines.append(
            f"- Model answers: first text p50 {percentile(first, 50):.0f} ms, p95 {percentile(first, 95):.0f} ms; "
            f"tokens per answer {statistics.fmean(o.prompt_tokens for o in outcomes):.0f} prompt, "
            f"{statistics.fmean(o.completion_tokens for o in outcomes):.0f} completion."
        )
    lines += [
        f"- Artifacts packed into the prompt per answer: mean {statistics.fmean(len(o.packed) for o in outcomes):.1f}. "
        f"Peak memory of the benchmark process: {peak_rss_mb():.0f} MB.",
        "",
        "## By label category",
        "",
        *slice_rows(outcomes, "category"),
        "",
        "## By corpus",
        "",
        *slice_rows(outcomes, "corpus"),
        "",
        "## Per question",
        "",
        *question_rows(outcomes),
    ]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


# -- main -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def home_dir(home: Path | None) -> Iterator[Path]:
    """The given ``--home`` (kept), else a temporary one (removed)."""
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        yield home
        return
    temporary = Path(tempfile.mkdtemp(prefix="repolens-chatbench-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder of the bench corpora")
    parser.add_argument("--only", default="", help="comma-separated corpora (default: all the questions')")
    parser.add_argument("--home", type=Path, default=None, help="index dir to keep and reuse (default: a temporary one)")
    parser.add_argument("--no-vectors", action="store_true", help="lexical retrieval only")
    parser.add_argument("--k", type=int, default=BASELINE_K, help="results of the plain-search baseline")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="also write per-question records (JSON lines)")
    args = parser.parse_args(argv)
    script = Path(__file__).resolve().relative_to(REPO)
    command = shlex.join(["python", str(script), *(sys.argv[1:] if argv is None else argv)])

    only = [s for s in args.only.split(",") if s]
    items = labelled_questions(only)
    if not items:
        raise SystemExit(f"no questions about {args.only!r}")
    names = distinct([item.question.corpus for item in items])
    fetch_corpora(args.corpora, names)
    with home_dir(args.home) as home:
        os.environ["REPOLENS_HOME"] = str(home)  # as bench/run.py: anything reading the env sees this index
        settings = load_settings(home)
        if args.no_vectors:
            settings = replace(settings, embedder="none")
        services = build_services(settings)
        try:
            print(f"{machine_line()}; commit {git_commit()}; LLM: {llm_line(settings, services.answers.model_name)}")
            indexed = index_corpora(services, args.corpora.resolve(), names)
            outcomes = asyncio.run(ask_all(services, items, args.k))
            if args.json is not None:
                args.json.write_text("".join(json.dumps(asdict(o)) + "\n" for o in outcomes))
            write_report(args.out, command, outcomes, args.k, services, indexed)
        finally:
            services.close()
    for line in summary_rows(outcomes, args.k):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
