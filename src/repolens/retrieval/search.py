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
import operator
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from repolens.domain import MAX_RESULTS, Artifact, SearchFilters, Source
from repolens.embeddings.base import Embedder
from repolens.errors import InvalidInput, NotFound
from repolens.retrieval import rerank as rr
from repolens.retrieval.query import QueryAnalysis, analyze
from repolens.retrieval.report import frame_file_matches
from repolens.storage.base import NativeVectorSearch, Store, VectorMatrices

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)
_first = operator.itemgetter(0)

Mode = Literal["auto", "lexical", "semantic", "hybrid"]
LEXICAL_CANDIDATES = 200  # units from BM25: deep enough that fusion and boosts can reorder
# Files of an issue report's best candidates read to look for its error messages verbatim: the
# message's file is nearly always among them, and reading more costs latency for nothing.
MESSAGE_CHECK_FILES = 20
FILE_CANDIDATES = 60  # whole files from BM25
VECTOR_CANDIDATES = 150  # units from cosine similarity
# A query embedding faster than this (the static embedder: ~0.1 ms) runs inline: handing it to the
# embedding thread costs more, as the two threads then take turns on the GIL, whose switch
# interval is 5 ms (only its scan, which releases the GIL, goes to the thread). Slower embedders
# (MiniLM, ~5-10 ms, GIL released; remote ones) keep the thread for both.
INLINE_EMBED_MS = 1.0
# The share of a scan left to the searching thread when the other thread scans the rest (see
# ``search``): scanning its share releases the GIL, which the other thread needs to hand its result
# back. Without it the hand-back waited until the searching thread blocked: two thread wake-ups,
# ~0.25 ms of a 2.5 ms query on sqlalchemy; a fifth of its scan is ~0.1 ms of work done meanwhile.
SEARCHER_SCAN_SHARE = 0.2
EMBED_MS_SMOOTHING = 0.2  # weight of the newest query embedding in the running estimate of its cost
MAX_LIMIT = MAX_RESULTS


@dataclass(frozen=True, slots=True)
class ScoredArtifact:
    """An artifact in the answer, with its final score and the signals behind it."""

    artifact: Artifact
    source: Source
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
    vectors_model: str = ""  # the embedder whose vectors were searched ("" when none is configured)


@dataclass(slots=True)
class _VectorCache:
    key: tuple[object, ...]
    ids: npt.NDArray[np.int64]
    matrix: npt.NDArray[np.float32]


def similarities(matrix: npt.NDArray[np.float32], qvec: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Cosine of ``qvec`` with each row of ``matrix`` (unit vectors): an exact scan."""
    import numpy as np

    # np.vecdot, a ufunc: one single-threaded dot product per row, with the GIL released, so the scan
    # (~0.5 ms for sqlalchemy's 13,000 x 256) runs on the other core while the searching thread ranks
    # the lexical half (einsum held the GIL). Not ``matrix @ qvec``: BLAS spreads a matrix-vector
    # product over every core, and on a busy 2-core machine its threads wait for each other (8-10 ms
    # at load 5). vecdot sums in another order than einsum did (similarities move by < 1e-7): the
    # same ranked lists and scores on every dev query and mode (bench/REPORT.md, session 12).
    sims: npt.NDArray[np.float32] = np.vecdot(matrix, qvec)
    return sims


def nearest(ids: npt.NDArray[np.int64], sims: npt.NDArray[np.float32], limit: int) -> list[tuple[int, float]]:
    """(id, similarity) of the ``limit`` most similar rows, best first."""
    import numpy as np

    if len(sims) == 0:
        return []
    k = min(limit, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top])]
    # One conversion per array: indexing the memory-mapped ids one element at a time goes through
    # np.memmap.__getitem__ in Python (~0.1 ms for 150 candidates).
    return list(zip(ids[top].tolist(), sims[top].tolist(), strict=True))


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
        self._embed_ms: float | None = None  # running estimate of one query embedding; None: not measured
        # Checked once, not per search: a runtime Protocol check walks the protocol's members.
        self._native = isinstance(store, NativeVectorSearch)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            # Every hybrid search of a server uses the thread now: two first searches at once must
            # not each start one.
            with self._vectors_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repolens-embed")
        return self._executor

    # -- sources --------------------------------------------------------------------------

    def resolve_sources(self, names: Sequence[str]) -> list[Source]:
        """Sources by name or id; every source when ``names`` is empty."""
        if not names:
            return self.store.list_sources()
        out: list[Source] = []
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

        from repolens.storage.codec import decode_many

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
                        if isinstance(self.store, VectorMatrices):
                            ids, matrix = self.store.vector_matrix(sid, self.embedder.name, self.embedder.dim)
                        else:
                            ids, blobs = self.store.vectors((sid,), self.embedder.name)
                            matrix = decode_many(blobs, self.embedder.dim)
                        cached = _VectorCache(key, ids, matrix)
                        self._vectors[sid] = cached
            parts.append((cached.ids, cached.matrix))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _vector_candidates(
        self, text: str, ids: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """Embed the query and take the nearest units; touches no database (runs in a thread)."""
        if len(ids) == 0 or self.embedder is None:
            return []
        return nearest(ids, similarities(matrix, self._embed_query(text)), limit)

    def _embed_query(self, text: str) -> npt.NDArray[np.float32]:
        assert self.embedder is not None
        started = time.perf_counter()
        qvec: npt.NDArray[np.float32] = self.embedder.embed([text], input_type="query")[0]
        ms = (time.perf_counter() - started) * 1000
        last = self._embed_ms
        self._embed_ms = ms if last is None else last + EMBED_MS_SMOOTHING * (ms - last)
        return qvec

    def _native_candidates(self, text: str, source_ids: tuple[int, ...], limit: int) -> list[tuple[int, float]]:
        """Embed the query and ask the database's own vector index (runs in a thread)."""
        assert self.embedder is not None and isinstance(self.store, NativeVectorSearch)
        qvec = self._embed_query(text)
        return self.store.nearest_units(source_ids, self.embedder.name, qvec, limit)

    # -- issue reports --------------------------------------------------------------------

    def _report_evidence(
        self,
        analysis: QueryAnalysis,
        source_ids: tuple[int, ...],
        rows: dict[int, Artifact],
        lex_units: list[tuple[int, float]],
        lex_files: list[tuple[int, float]],
        filters: SearchFilters,
    ) -> rr.Evidence:
        """Files of the stack trace, and candidates holding an error message verbatim.

        Adds the symbols that hold a message to ``rows`` (they may not have been candidates).
        """
        report = analysis.report
        assert report is not None
        evidence = rr.Evidence()
        if report.frames:
            paths = {f.path: f.id for sid in source_ids for f in self.store.files([sid])}
            for frame in report.frames:
                for path in frame_file_matches(frame.path, list(paths)):
                    evidence.files[paths[path]] = rr.FRAME_FILE_WEIGHT
        if not report.fragments:
            return evidence
        # The files to read: the best whole-file matches, then the files of the best units.
        check: dict[int, None] = dict.fromkeys(f for f, _ in lex_files[:MESSAGE_CHECK_FILES])
        for a, _ in lex_units:
            if len(check) >= 2 * MESSAGE_CHECK_FILES:
                break
            if a in rows:
                check.setdefault(rows[a].file_id, None)
        for file_id in check:
            text = self.store.file_content(file_id).lower()
            lines_hit = [text.count("\n", 0, at) + 1 for at in (text.find(frag) for frag in report.fragments) if at >= 0]
            if not lines_hit:
                continue
            evidence.files[file_id] = evidence.files.get(file_id, 0.0) + rr.MESSAGE_FILE_WEIGHT
            for art in self.store.artifacts_in_file_by_id(file_id):
                if art.kind == "File" or not filters.accepts(art.path):
                    continue
                if any(art.start_line <= line <= art.end_line for line in lines_hit):
                    rows.setdefault(art.id, art)
                    evidence.units[art.id] = rr.MESSAGE_UNIT_WEIGHT
        return evidence

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        filters: SearchFilters | None = None,
        limit: int = 10,
        mode: Mode = "auto",
        rerank: bool = True,
        sources: Sequence[Source] | None = None,
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
            raise InvalidInput(
                "semantic search needs vectors, and no embedder is configured (REPOLENS_EMBEDDER=none): "
                "set REPOLENS_EMBEDDER=static (the default) and re-index, or search in lexical or auto mode"
            )
        if mode == "semantic" and ready == 0:
            raise InvalidInput(
                "semantic search needs vectors, and none are ready for these sources yet: they are built "
                "after the lexical index (re-index without --no-vectors, or wait for the indexing job's "
                "vectors phase); lexical and auto mode work meanwhile"
            )

        pending: Future[list[tuple[int, float]]] | None = None
        # (ids, the rows left to scan here, the query vector, the other thread's scan of the rest)
        scan: (
            tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32], Future[npt.NDArray[np.float32]]]
            | None
        ) = None
        vec_units: list[tuple[int, float]] = []
        vector_text = analysis.vector_text or analysis.text
        if use_vectors and ready:
            # The vector half runs on the other core while the lexical half runs here: all of it
            # for a slow query embedding (onnxruntime, GIL released); for a fast one (the static
            # table) only the scan, the embedding inline.
            if self._native:
                pending = self._pool().submit(self._native_candidates, vector_text, source_ids, VECTOR_CANDIDATES)
            else:
                vec_ids, matrix = self._vector_matrix(source_ids)
                if self._embed_ms is not None and self._embed_ms < INLINE_EMBED_MS:
                    # Only the scan goes to the thread (the less Python it runs, the less the two
                    # threads wait for each other's GIL), less the share scanned here at the end.
                    qvec = self._embed_query(vector_text)
                    split = len(vec_ids) - int(len(vec_ids) * SEARCHER_SCAN_SHARE)
                    scan = (vec_ids, matrix[split:], qvec, self._pool().submit(similarities, matrix[:split], qvec))
                else:
                    pending = self._pool().submit(self._vector_candidates, vector_text, vec_ids, matrix, VECTOR_CANDIDATES)
        lex_units = self.store.lexical_units(analysis.terms, source_ids, LEXICAL_CANDIDATES) if use_lexical else []
        lex_files = self.store.lexical_files(analysis.terms, source_ids, FILE_CANDIDATES) if use_lexical else []
        if pending is not None:
            vec_units = pending.result()
        elif scan is not None:
            import numpy as np

            vec_ids, rest, qvec, head = scan
            tail = similarities(rest, qvec)  # GIL released: the other thread hands its part back meanwhile
            vec_units = nearest(vec_ids, np.concatenate([head.result(), tail]), VECTOR_CANDIDATES)
        definitions = (
            self.store.symbols_named(list(analysis.identifiers), source_ids) if rerank and analysis.identifiers else []
        )

        # (C-level set builds: the same insertions in the same order as set comprehensions, so the
        # same iteration order of ``rows``, which settles ties in the rerank.)
        rows = self.store.artifacts_by_id(list(set(map(_first, lex_units)) | set(map(_first, vec_units))))
        # File summaries are embedded too: their hits are file-level evidence, not units, and no
        # candidates (the lexical units are symbols and chunks only). One pass over the vector hits
        # sorts them out, instead of three comprehensions over them and the candidates.
        vec_files: list[tuple[int, float]] = []
        summaries: list[int] = []
        units: list[tuple[int, float]] = []
        for a, sim in vec_units:
            row = rows.get(a)
            if row is None:
                continue
            if row.kind == "File":
                vec_files.append((row.file_id, sim))
                summaries.append(a)
            else:
                units.append((a, sim))
        vec_units = units
        for a in summaries:
            rows.pop(a, None)
        for d in definitions:
            rows.setdefault(d.id, d)
        if filters.paths or filters.extensions:
            rows = {k: v for k, v in rows.items() if filters.accepts(v.path)}
        evidence = None
        if analysis.report is not None and rerank:
            evidence = self._report_evidence(analysis, source_ids, rows, lex_units, lex_files, filters)
        scored = rr.score(
            analysis, rows, lex_units, lex_files, vec_units, vec_files, definitions, rerank=rerank, evidence=evidence
        )
        hits = [ScoredArtifact(rows[a], by_id[rows[a].source_id], s, sig) for a, s, sig in scored.top(limit, decay=rerank)]
        return SearchOutcome(
            hits=hits,
            analysis=analysis,
            vectors_ready=ready,
            vectors_total=total,
            mode=("hybrid" if vec_units and use_lexical else "semantic" if vec_units else "lexical"),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            vectors_model=self.embedder.name if self.embedder is not None else "",
        )
