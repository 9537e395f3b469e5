"""The issue-report slice of the benchmark, and the exact-symbol rate.

    python bench/issues.py --no-vectors                 # index the corpora, score, print the section
    python bench/issues.py --home /tmp/rl --only rich   # reuse an index dir, one corpus

Issue-report queries (../shared/bench/issues/, 5 whole bug reports per corpus) are run through
the default search, the plain BM25 baseline (bench/plain_bm25.py) and repolens's whole-file
BM25 in the same process, and scored with ../shared/bench/score.py plus file accuracy: the share
of issues whose gold ("relevant") files are *all* in the top k. The exact-symbol rate asks, for
every labelled symbol query of ../shared/bench/queries/, whether the first hit is the symbol
itself (its name or qualified name, in a file that defines it), not a file that merely holds it.

``bench/run.py`` calls ``slice_section`` after its own configurations, so the full report holds
these figures measured on the same index and the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "bench"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from plain_bm25 import PlainBM25  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.parsing.tokens import query_terms  # noqa: E402
from repolens.retrieval.search import Mode, Searcher  # noqa: E402
from repolens.storage.base import Store  # noqa: E402

TOP_K = 10
SEARCH_LIMIT = 40  # hits asked for, de-duplicated to files (as bench/run.py does)
ACCURACY_AT = (5, 10)
OURS = "repolens (default)"
PLAIN = "bm25-plain (baseline)"
FILES = "bm25-files (our lexical index)"


@dataclass(slots=True)
class SliceResult:
    """Scores and latencies of one configuration on the issue-report queries."""

    label: str
    overall: dict[str, float]
    accuracy: dict[int, float]
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # this process's CPU time: what contention does not inflate
    long_ms: list[float] = field(default_factory=list)  # the 300-word variants (see padded_reports)
    long_cpu_ms: list[float] = field(default_factory=list)
    per_query: list[dict[str, object]] = field(default_factory=list)


def file_accuracy(ranked: Sequence[str], relevant: Sequence[str], k: int) -> bool:
    """Whether every gold file is among the first ``k`` distinct files."""
    top = set(list(dict.fromkeys(ranked))[:k])
    return all(p in top for p in relevant)


LONG_WORDS = 300  # the issue's latency target is for a query of this many words


def padded_reports(queries: list[dict[str, str]]) -> list[str]:
    """Each report lengthened to at least ``LONG_WORDS`` words with the corpus's next reports (cut at a line)."""
    out: list[str] = []
    for i, q in enumerate(queries):
        lines = q["query"].splitlines()
        j = i
        while sum(len(line.split()) for line in lines) < LONG_WORDS:
            j = (j + 1) % len(queries)
            lines += queries[j]["query"].splitlines()
        kept: list[str] = []
        for line in lines:
            kept.append(line)
            if sum(len(k.split()) for k in kept) >= LONG_WORDS:
                break
        out.append("\n".join(kept))
    return out


def _run_config(
    label: str,
    store: Store,
    searcher: Searcher,
    corpora: list[dict[str, str]],
    corpora_dir: Path,
    results_dir: Path,
    mode: Mode,
    only: list[str],
) -> SliceResult:
    out_path = results_dir / f"issues-{label.split()[0]}.jsonl"
    latencies: list[float] = []
    cpu: list[float] = []
    long_ms: list[float] = []
    long_cpu: list[float] = []
    hits_at: dict[int, int] = dict.fromkeys(ACCURACY_AT, 0)
    n = 0
    with out_path.open("w") as out:
        for corpus in corpora:
            name = corpus["name"]
            source = store.get_source(name)
            assert source is not None, f"{name} is not indexed"
            queries = json.loads((BENCH / "issues" / f"{name}.json").read_text())
            plain = None
            if label == PLAIN:
                paths = [f.path for f in store.files([source.id])]
                plain = PlainBM25((p, (corpora_dir / name / p).read_text(errors="replace")) for p in paths)
            by_id = {f.id: f.path for f in store.files([source.id])}

            def ranked_files(
                text: str,
                name: str = name,
                plain: PlainBM25 | None = plain,
                by_id: dict[int, str] = by_id,
                source_id: int = source.id,
            ) -> list[str]:
                if plain is not None:
                    return plain.search(text, TOP_K)
                if label == FILES:
                    return [by_id[f] for f, _ in store.lexical_files(query_terms(text), [source_id], TOP_K)]
                outcome = searcher.search(text, filters=SearchFilters(sources=(name,)), limit=SEARCH_LIMIT, mode=mode)
                return list(dict.fromkeys(h.artifact.path for h in outcome.hits))[:TOP_K]

            for padded in padded_reports(queries):
                t0, c0 = time.perf_counter(), time.process_time()
                ranked_files(padded)
                long_ms.append((time.perf_counter() - t0) * 1000)
                long_cpu.append((time.process_time() - c0) * 1000)
            for q in queries:
                t0, c0 = time.perf_counter(), time.process_time()
                ranked = ranked_files(q["query"])
                latencies.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                n += 1
                for k in ACCURACY_AT:
                    hits_at[k] += file_accuracy(ranked, q["relevant"], k)
                out.write(json.dumps({"corpus": name, "query": q["query"], "paths": ranked}) + "\n")
    json_out = results_dir / f"issues-{label.split()[0]}.scores.json"
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "score.py"),
            "--queries",
            str(BENCH / "issues"),
            "--results",
            str(out_path),
            "--json-out",
            str(json_out),
            *(["--only", ",".join(only)] if only else []),
        ],
        check=True,
        capture_output=True,
    )
    scores = json.loads(json_out.read_text())
    return SliceResult(
        label=label,
        overall=scores.get("overall", {}),
        accuracy={k: hits_at[k] / max(1, n) for k in ACCURACY_AT},
        latencies_ms=latencies,
        cpu_ms=cpu,
        long_ms=long_ms,
        long_cpu_ms=long_cpu,
        per_query=scores.get("per_query", []),
    )


def _last_segment(query: str) -> str:
    return re.split(r"\.|::|->|\\|#", query.strip().removesuffix("()"))[-1]


def exact_symbol_rate(
    store: Store, searcher: Searcher, corpora: list[dict[str, str]], mode: Mode
) -> tuple[int, int, list[str]]:
    """(queries whose first hit is the queried symbol in a gold file, symbol queries, misses)."""
    hits = total = 0
    misses: list[str] = []
    for corpus in corpora:
        name = corpus["name"]
        for q in json.loads((BENCH / "queries" / f"{name}.json").read_text()):
            if q.get("category") != "symbol":
                continue
            total += 1
            outcome = searcher.search(q["query"], filters=SearchFilters(sources=(name,)), limit=10, mode=mode)
            want = _last_segment(q["query"]).lower()
            first = outcome.hits[0].artifact if outcome.hits else None
            ok = (
                first is not None
                and first.kind == "Symbol"
                and first.path in q["relevant"]
                and (first.name.lower() == want or first.qualified_name.lower() == q["query"].strip().lower())
            )
            hits += ok
            if not ok:
                got = f"{first.path}::{first.ident}" if first is not None else "nothing"
                misses.append(f"{name}: {q['query']} -> {got}")
    return hits, total, misses


def run_slice(
    store: Store,
    searcher: Searcher,
    corpora: list[dict[str, str]],
    corpora_dir: Path,
    results_dir: Path,
    *,
    mode: Mode,
    only: list[str],
) -> tuple[list[SliceResult], tuple[int, int, list[str]]]:
    """Every configuration on the issue queries, then the exact-symbol rate of the default."""
    results_dir.mkdir(parents=True, exist_ok=True)
    results = [
        _run_config(label, store, searcher, corpora, corpora_dir, results_dir, mode, only) for label in (OURS, PLAIN, FILES)
    ]
    return results, exact_symbol_rate(store, searcher, corpora, mode)


def section(results: list[SliceResult], exact: tuple[int, int, list[str]], *, mode: Mode) -> list[str]:
    """The markdown section for bench/REPORT.md."""
    words = [len(q["query"].split()) for q in _all_issue_queries()]
    lines = [
        "",
        "## Issue reports as queries (../shared/bench/issues/)",
        "",
        f"80 whole bug reports (title and body, {min(words)}-{max(words)} words, median "
        f"{statistics.median(words):.0f}) over the 16 dev corpora, same scorer; file Acc@k = the share of "
        "issues whose gold files are all in the top k. Latency is in process, per query, measured in the "
        f"same run for all three (default search in `{mode}` mode, asked for {SEARCH_LIMIT} hits): wall "
        f"time, and this process's CPU time, which the other processes on a shared machine do not inflate; "
        f"the {LONG_WORDS}-word columns time each report lengthened to {LONG_WORDS} words with the next "
        f"reports of its corpus (load average at the start of the slice: {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores).",
        "",
        f"| configuration | NDCG@10 | R@5 | R@10 | MRR@10 | file Acc@5 | file Acc@10 | p50 ms | p95 ms "
        f"| p50 CPU ms | {LONG_WORDS}-word p50 ms | {LONG_WORDS}-word p50 CPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        o = r.overall
        lat = sorted(r.latencies_ms)
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
        lines.append(
            f"| {r.label} | {o.get('ndcg@10', 0):.3f} | {o.get('recall@5', 0):.3f} | {o.get('recall@10', 0):.3f} | "
            f"{o.get('mrr@10', 0):.3f} | {r.accuracy[5]:.3f} | {r.accuracy[10]:.3f} | "
            f"{statistics.median(lat) if lat else float('nan'):.1f} | {p95:.1f} | {statistics.median(r.cpu_ms):.1f} | "
            f"{statistics.median(r.long_ms):.1f} | {statistics.median(r.long_cpu_ms):.1f} |"
        )
    hits, total, _misses = exact
    lines += [
        "",
        f"Exact-symbol rate: for {total} labelled symbol queries of ../shared/bench/queries/, the first hit is the "
        f"queried symbol itself (by name or qualified name, in a gold file) for {hits} "
        f"({hits / max(1, total):.1%}).",
    ]
    return lines


def _all_issue_queries() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted((BENCH / "issues").glob("*.json")):
        out.extend(json.loads(path.read_text()))
    return out


def main() -> int:
    from repolens.embeddings.factory import load_embedder
    from repolens.indexing.pipeline import index_source
    from repolens.indexing.vectors import backfill
    from repolens.settings import Settings, load_settings
    from repolens.storage.sqlite.store import SqliteStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=HERE / "corpora")
    parser.add_argument("--only", default="")
    parser.add_argument("--no-vectors", action="store_true")
    parser.add_argument("--home", type=Path, default=None, help="index dir to create or reuse")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--misses", action="store_true", help="list the symbol queries whose first hit is wrong")
    args = parser.parse_args()

    only = [s for s in args.only.split(",") if s]
    fetch = [sys.executable, str(BENCH / "fetch_corpora.py"), "--dest", str(args.corpora)]
    subprocess.run([*fetch, *(["--only", ",".join(only)] if only else [])], check=True)
    corpora = [c for c in json.loads((BENCH / "corpora.json").read_text()) if not only or c["name"] in only]
    home = args.home or Path(tempfile.mkdtemp(prefix="repolens-issues-"))
    os.environ["REPOLENS_HOME"] = str(home)
    settings = load_settings(home)
    if args.no_vectors:
        settings = Settings(home=home, embedder="none")
    store = SqliteStore(settings.db_path)
    embedder = load_embedder(settings)
    for corpus in corpora:
        source, _report = index_source(store, settings, str(args.corpora / corpus["name"]), name=corpus["name"])
        if embedder is not None:
            backfill(store, source.id, embedder)
    searcher = Searcher(store, embedder)
    mode: Mode = "auto" if embedder is not None else "lexical"
    results, exact = run_slice(store, searcher, corpora, args.corpora, args.results, mode=mode, only=only)
    print("\n".join(section(results, exact, mode=mode)))
    if args.misses:
        print("\n".join(exact[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
