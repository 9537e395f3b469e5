"""Hybrid code search: lexical and vector candidates, fused, reranked with the symbol table.

The single entry point is ``Searcher.search``. Steps:

1. ``query.analyze``: identifier or question; identifiers and path keywords in it.
2. Candidates: BM25 over search units (symbols and chunks), BM25 over whole files, cosine
   over unit vectors (when an embedder is configured and vectors exist), and definitions of
   the queried identifiers looked up by name, found or not by the other retrievers.
3. Fusion by reciprocal rank; a file score from the file-level ranks and the file's units.
4. Rerank: definition boosts, path-keyword boosts, path priors (tests, examples, stubs).
5. File-diverse top-k: later hits from an already listed file decay geometrically.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from repolens.domain import MAX_RESULTS, SearchFilters
from repolens.embeddings.base import Embedder
from repolens.errors import InvalidInput, NotFound
from repolens.retrieval import rerank as rr
from repolens.retrieval.query import QueryAnalysis, analyze
from repolens.storage.base import ArtifactRow, NativeVectorSearch, SourceRow, Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

Mode = Literal["auto", "lexical", "semantic", "hybrid"]
LEXICAL_CANDIDATES = 200  # units from BM25: deep enough that fusion and boosts can reorder
FILE_CANDIDATES = 60  # whole files from BM25
VECTOR_CANDIDATES = 150  # units from cosine similarity
MAX_LIMIT = MAX_RESULTS


@dataclass(frozen=True, slots=True)
class ScoredArtifact:
    """An artifact in the answer, with its final score and the signals behind it."""

    artifact: ArtifactRow
    source: SourceRow
    score: float
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """The ranked artifacts and what the search could use."""

    hits: list[ScoredArtifact]
    analysis: QueryAnalysis
    vectors_ready: int  # units with a vector in the searched sources
    vectors_total: int  # all units in the searched sources
    mode: str
    elapsed_ms: float


@dataclass(slots=True)
class _VectorCache:
    key: tuple[object, ...]
    ids: npt.NDArray[np.int64]
    matrix: npt.NDArray[np.float32]


class Searcher:
    """Search over one store, with the vector matrix cached between queries."""

    def __init__(self, store: Store, embedder: Embedder | None) -> None:
        self.store = store
        self.embedder = embedder
        self._vectors: dict[int, _VectorCache] = {}
        # Concurrent searches that find a matrix stale wait for one of them to rebuild it
        # instead of each decoding the same ~20 MB of vectors at once.
        self._vectors_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repolens-embed")
        return self._executor

    # -- sources --------------------------------------------------------------------------

    def resolve_sources(self, names: Sequence[str]) -> list[SourceRow]:
        """Sources by name or id; every source when ``names`` is empty."""
        if not names:
            return self.store.list_sources()
        out: list[SourceRow] = []
        for name in names:
            source = self.store.get_source(name)
            if source is None:
                known = ", ".join(s.name for s in self.store.list_sources()) or "none indexed yet"
                raise NotFound(f"unknown source {name!r} (known: {known})")
            out.append(source)
        return out

    # -- vectors --------------------------------------------------------------------------

    def _vector_matrix(self, source_ids: tuple[int, ...]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        import numpy as np

        from repolens.indexing.vectors import decode_many

        assert self.embedder is not None
        generation = self.store.generation()
        parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = []
        for sid in source_ids:
            # One matrix per source, so a search that switches sources reuses the others.
            key = (sid, self.embedder.name, generation)
            cached = self._vectors.get(sid)
            if cached is None or cached.key != key:
                with self._vectors_lock:
                    cached = self._vectors.get(sid)
                    if cached is None or cached.key != key:
                        ids, blobs = self.store.vectors((sid,), self.embedder.name)
                        cached = _VectorCache(key, ids, decode_many(blobs, self.embedder.dim))
                        self._vectors[sid] = cached
            parts.append((cached.ids, cached.matrix))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _vector_candidates(
        self, text: str, ids: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """Embed the query and take the nearest units; touches no database (runs in a thread)."""
        import numpy as np

        if len(ids) == 0 or self.embedder is None:
            return []
        qvec = self.embedder.embed([text], input_type="query")[0]
        sims = matrix @ qvec
        k = min(limit, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [(int(ids[i]), float(sims[i])) for i in top]

    def _native_candidates(self, text: str, source_ids: tuple[int, ...], limit: int) -> list[tuple[int, float]]:
        """Embed the query and ask the database's own vector index (runs in a thread)."""
        assert self.embedder is not None and isinstance(self.store, NativeVectorSearch)
        qvec = self.embedder.embed([text], input_type="query")[0]
        return self.store.nearest_units(source_ids, self.embedder.name, qvec, limit)

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        filters: SearchFilters | None = None,
        limit: int = 10,
        mode: Mode = "auto",
        rerank: bool = True,
        sources: Sequence[SourceRow] | None = None,
    ) -> SearchOutcome:
        """The best ``limit`` artifacts for ``query``.

        ``sources`` (already resolved and scoped by the caller) overrides ``filters.sources``.
        """
        started = time.perf_counter()
        if not query.strip():
            raise InvalidInput("query must not be empty")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        filters = filters or SearchFilters()
        chosen = list(sources) if sources is not None else self.resolve_sources(filters.sources)
        by_id = {s.id: s for s in chosen}
        source_ids = tuple(sorted(by_id))
        analysis = analyze(query)

        use_vectors = mode in ("auto", "semantic", "hybrid") and self.embedder is not None
        use_lexical = mode != "semantic"
        ready = total = 0
        if self.embedder is not None:
            for sid in source_ids:
                r, t = self.store.vector_counts_cached(sid, self.embedder.name)
                ready += r
                total += t
        if mode == "semantic" and self.embedder is None:
            raise InvalidInput("semantic search needs vectors, and no embedder is configured (REPOLENS_EMBEDDER=none): "
                               "set REPOLENS_EMBEDDER=minilm and re-index, or search in lexical or auto mode")
        if mode == "semantic" and ready == 0:
            raise InvalidInput("semantic search needs vectors, and none are ready for these sources yet: they are built "
                               "after the lexical index (re-index without --no-vectors, or wait for the indexing job's "
                               "vectors phase); lexical and auto mode work meanwhile")

        pending = None
        if use_vectors and ready:
            # The query embedding (onnxruntime, GIL released) runs on the other core while
            # the database answers the lexical queries here.
            if isinstance(self.store, NativeVectorSearch):
                pending = self._pool().submit(self._native_candidates, analysis.text, source_ids, VECTOR_CANDIDATES)
            else:
                vec_ids, matrix = self._vector_matrix(source_ids)
                pending = self._pool().submit(self._vector_candidates, analysis.text, vec_ids, matrix, VECTOR_CANDIDATES)
        lex_units = self.store.lexical_units(analysis.terms, source_ids, LEXICAL_CANDIDATES) if use_lexical else []
        lex_files = self.store.lexical_files(analysis.terms, source_ids, FILE_CANDIDATES) if use_lexical else []
        vec_units = pending.result() if pending is not None else []
        definitions = (
            self.store.symbols_named(list(analysis.identifiers), source_ids) if rerank and analysis.identifiers else []
        )

        ids = {a for a, _ in lex_units} | {a for a, _ in vec_units}
        rows = self.store.artifacts_by_id(list(ids))
        # File summaries are embedded too: their hits are file-level evidence, not units.
        vec_files = [(rows[a].file_id, sim) for a, sim in vec_units if a in rows and rows[a].kind == "File"]
        vec_units = [(a, sim) for a, sim in vec_units if a in rows and rows[a].kind != "File"]
        for d in definitions:
            rows.setdefault(d.id, d)
        rows = {k: v for k, v in rows.items() if filters.accepts(v.path)}
        rows = {k: v for k, v in rows.items() if v.kind != "File"}
        scored = self._score(analysis, rows, lex_units, lex_files, vec_units, vec_files, definitions, rerank=rerank)
        top = _diverse_top(scored, {a: r.file_id for a, r in rows.items()}, limit, decay=rerank)
        hits = [ScoredArtifact(rows[a], by_id[rows[a].source_id], s, sig) for a, s, sig in top]
        return SearchOutcome(
            hits=hits,
            analysis=analysis,
            vectors_ready=ready,
            vectors_total=total,
            mode=("hybrid" if vec_units and use_lexical else "semantic" if vec_units else "lexical"),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def _score(
        self,
        analysis: QueryAnalysis,
        rows: dict[int, ArtifactRow],
        lex_units: list[tuple[int, float]],
        lex_files: list[tuple[int, float]],
        vec_units: list[tuple[int, float]],
        vec_files: list[tuple[int, float]],
        definitions: list[ArtifactRow],
        *,
        rerank: bool,
    ) -> dict[int, tuple[float, dict[str, float]]]:
        w_lex = rr.LEXICAL_WEIGHT_SYMBOL if analysis.is_symbol else rr.LEXICAL_WEIGHT_NATURAL
        if not vec_units:
            w_lex = 1.0
        elif not lex_units:
            w_lex = 0.0
        signals: dict[int, dict[str, float]] = defaultdict(dict)
        unit_score: dict[int, float] = defaultdict(float)
        for rank, (a, _) in enumerate(lex_units):
            if a in rows:
                unit_score[a] += w_lex * rr.rrf(rank)
                signals[a]["lexical_rank"] = rank + 1
        for rank, (a, sim) in enumerate(vec_units):
            if a in rows:
                unit_score[a] += (1.0 - w_lex) * rr.rrf(rank)
                signals[a]["vector_rank"] = rank + 1
                signals[a]["similarity"] = round(sim, 4)
        for d in definitions:
            if d.id in rows:
                unit_score.setdefault(d.id, 0.0)
        if not rerank:
            return {a: (s, signals[a]) for a, s in unit_score.items() if s > 0}

        # File-level evidence: whole-file BM25 rank, best vector rank among the file's units,
        # and how much of the candidate mass the file holds.
        file_score: dict[int, float] = defaultdict(float)
        for rank, (f, _) in enumerate(lex_files):
            file_score[f] += rr.FILE_LEXICAL_WEIGHT * rr.rrf(rank)
        seen_files: set[int] = set()
        file_rank = 0
        for a, _ in vec_units:
            row = rows.get(a)
            if row is None or row.file_id in seen_files:
                continue
            seen_files.add(row.file_id)
            file_score[row.file_id] += rr.FILE_VECTOR_WEIGHT * rr.rrf(file_rank)
            file_rank += 1
        for rank, (f, _) in enumerate(vec_files):
            file_score[f] += rr.FILE_SUMMARY_WEIGHT * rr.rrf(rank)
        mass: dict[int, float] = defaultdict(float)
        for a, s in unit_score.items():
            mass[rows[a].file_id] += s
        max_mass = max(mass.values(), default=0.0) or 1.0
        for f, m in mass.items():
            file_score[f] += rr.COHERENCE_WEIGHT * rr.rrf(0) * (m / max_mass)

        base_max = max(unit_score.values(), default=0.0) or rr.rrf(0)
        final: dict[int, tuple[float, dict[str, float]]] = {}
        def_names = {n.lower() for n in analysis.identifiers}
        def_exact = set(analysis.identifiers)
        definition_count = len(definitions)
        for a, base in unit_score.items():
            row = rows[a]
            sig = signals[a]
            score = base + file_score.get(row.file_id, 0.0)
            if row.kind == "Symbol" and (row.name.lower() in def_names or row.qualified_name.lower() in def_names):
                boost = rr.DEFINITION_BOOST * base_max
                if not analysis.is_symbol:
                    boost *= rr.EMBEDDED_IDENTIFIER_FACTOR
                if row.name not in def_exact and row.qualified_name not in def_exact:
                    boost *= rr.DEFINITION_CASE_MISMATCH
                if rr.stem_matches(rr.stem_of(row.path), row.name):
                    boost *= rr.DEFINITION_STEM_BONUS
                if definition_count > rr.MANY_DEFINITIONS:
                    boost *= rr.MANY_DEFINITIONS / definition_count
                if row.parent and row.symbol_kind == "method" and analysis.is_symbol:
                    boost *= 0.8  # a top-level definition of the name beats a same-named method
                score += boost
                sig["definition"] = round(boost, 4)
            if not analysis.is_symbol and analysis.keywords:
                share = _keyword_share(row.path, analysis.keywords)
                if share >= rr.PATH_KEYWORD_MIN_SHARE:
                    bonus = rr.PATH_KEYWORD_BOOST * base_max * share
                    score += bonus
                    sig["path"] = round(bonus, 4)
            prior = _path_prior(row.path)
            if prior != 1.0:
                score *= prior
                sig["prior"] = prior
            if score > 0:
                final[a] = (score, sig)
        return final


@lru_cache(maxsize=1 << 16)
def _path_parts(path: str) -> list[str]:
    from repolens.parsing.tokens import split_identifier

    pieces = path.split("/")
    stem = rr.stem_of(path)
    parent = pieces[-2] if len(pieces) > 1 else ""
    parts = [stem.lower(), *split_identifier(stem)]
    if parent:
        parts += [parent.lower(), *split_identifier(parent)]
    return parts


@lru_cache(maxsize=1 << 16)
def _keyword_share(path: str, keywords: tuple[str, ...]) -> float:
    return rr.keyword_share(path, keywords, _path_parts(path))


@lru_cache(maxsize=1 << 16)
def _path_prior(path: str) -> float:
    return rr.path_prior(path)


def _diverse_top(
    scored: dict[int, tuple[float, dict[str, float]]],
    file_of: dict[int, int],
    limit: int,
    *,
    decay: bool,
) -> list[tuple[int, float, dict[str, float]]]:
    """Greedy top-k where the n-th hit from one file counts ``FILE_SATURATION_DECAY**(n-1)``.

    Lazy evaluation: a popped entry whose file gained hits since it was pushed is pushed
    back with its decayed score; decayed scores only fall, so the greedy order is exact.
    """
    import heapq

    if not decay:
        ordered = sorted(scored.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [(a, s, sig) for a, (s, sig) in ordered[:limit]]
    per_file: dict[int, int] = defaultdict(int)
    heap = [(-s, a, 0) for a, (s, _) in scored.items()]
    heapq.heapify(heap)
    picked: list[tuple[int, float, dict[str, float]]] = []
    while heap and len(picked) < limit:
        neg, a, seen_count = heapq.heappop(heap)
        f = file_of[a]
        if per_file[f] != seen_count:
            base = scored[a][0]
            heapq.heappush(heap, (-base * rr.FILE_SATURATION_DECAY ** per_file[f], a, per_file[f]))
            continue
        per_file[f] += 1
        picked.append((a, -neg, scored[a][1]))
    picked.sort(key=lambda t: (-t[1], t[0]))
    return picked
