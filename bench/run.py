"""Retrieval benchmark: index the shared corpora, run every labelled query under several
configurations and a plain BM25 baseline, score them, and write a report.

    python bench/run.py                       # everything (vectors included: slow on 2 cores)
    python bench/run.py --only ws,raft        # a subset
    python bench/run.py --no-vectors          # lexical configurations only

Corpora are fetched from the package registries by ../shared/bench/fetch_corpora.py and
scored by ../shared/bench/score.py. Results land in bench/results/, the report in
bench/REPORT.md (or --report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "bench"
sys.path.insert(0, str(REPO / "src"))

from plain_bm25 import PlainBM25  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.embeddings.factory import load_embedder  # noqa: E402
from repolens.indexing.pipeline import index_source  # noqa: E402
from repolens.indexing.vectors import backfill  # noqa: E402
from repolens.parsing.tokens import query_terms  # noqa: E402
from repolens.retrieval.search import Mode, Searcher  # noqa: E402
from repolens.settings import Settings, load_settings  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

DEFAULT = "fused+rerank (default)"
# (label, mode, rerank)
CONFIGS: list[tuple[str, Mode, bool]] = [
    ("lexical", "lexical", False),
    ("lexical+rerank", "lexical", True),
    ("vectors", "semantic", False),
    ("vectors+rerank", "semantic", True),
    ("fused", "hybrid", False),
    (DEFAULT, "hybrid", True),
]
# Two baselines. The "plain BM25" is the field's BM25-raw anchor (bench/plain_bm25.py:
# chunk-level, semble's tokenizer, no rerank; 0.675 on semble's benchmark). The second is
# repolens's own identifier-aware BM25 over whole files with path tokens, no fusion, no rerank:
# a much stronger lexical baseline, reported so the gain over each is visible.
BASELINE = "bm25-plain (baseline)"
FILE_BASELINE = "bm25-files (our lexical index)"
TOP_K = 10


def file_paths(hits: list[str], k: int = TOP_K) -> list[str]:
    """De-duplicate hit paths to files, keeping rank order."""
    return list(dict.fromkeys(hits))[:k]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def source_bytes(root: Path) -> int:
    """Bytes of the files the indexer accepted, as the store recorded them."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=HERE / "corpora")
    parser.add_argument("--only", default="")
    parser.add_argument("--no-vectors", action="store_true")
    parser.add_argument("--report", type=Path, default=HERE / "REPORT.md")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--home", type=Path, default=None, help="reuse an index dir (skips cold-index timing)")
    args = parser.parse_args()

    only = [s for s in args.only.split(",") if s]
    fetch = [sys.executable, str(BENCH / "fetch_corpora.py"), "--dest", str(args.corpora)]
    if only:
        fetch += ["--only", ",".join(only)]
    subprocess.run(fetch, check=True)
    corpora = [c for c in json.loads((BENCH / "corpora.json").read_text()) if not only or c["name"] in only]

    home = args.home or Path(tempfile.mkdtemp(prefix="repolens-bench-"))
    os.environ["REPOLENS_HOME"] = str(home)
    settings = load_settings(home)
    if args.no_vectors:
        settings = Settings(home=home, embedder="none")
    store = SqliteStore(settings.db_path)
    embedder = load_embedder(settings)
    args.results.mkdir(parents=True, exist_ok=True)

    index_rows: list[dict[str, object]] = []
    for corpus in corpora:
        name = corpus["name"]
        root = args.corpora / name
        t0 = time.perf_counter()
        source, report = index_source(store, settings, str(root), name=name)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        index_source(store, settings, str(root), name=name)
        warm = time.perf_counter() - t0
        # One changed file: append a comment line to the largest parsed file, re-index, restore.
        files = store.files([source.id])
        biggest = max(files, key=lambda f: f.size)
        target = root / biggest.path
        original = target.read_bytes()
        target.write_bytes(original + b"\n# repolens bench touch\n")
        t0 = time.perf_counter()
        index_source(store, settings, str(root), name=name)
        one_changed = time.perf_counter() - t0
        target.write_bytes(original)
        index_source(store, settings, str(root), name=name)
        vec_rate = 0.0
        vec_count = 0
        if embedder is not None:
            t0 = time.perf_counter()
            vec_count = backfill(store, source.id, embedder)
            vec_secs = time.perf_counter() - t0
            vec_rate = vec_count / vec_secs if vec_secs > 0 else 0.0
        row = {
            "corpus": name,
            "language": corpus["language"],
            "files": report.files_changed,
            "symbols": report.symbols,
            "chunks": report.chunks,
            "source_mb": report.bytes_parsed / 1e6,
            "cold_index_s": cold,
            "mb_per_s": report.bytes_parsed / 1e6 / cold,
            "reindex_unchanged_s": warm,
            "reindex_one_changed_s": one_changed,
            "vectors": vec_count,
            "vectors_per_s": vec_rate,
            "skipped": report.skipped_by_reason(),
        }
        index_rows.append(row)
        print(f"[index] {name}: {row['source_mb']:.2f} MB in {cold:.2f}s ({row['mb_per_s']:.2f} MB/s), "
              f"unchanged {warm * 1000:.0f} ms, one file {one_changed * 1000:.0f} ms, "
              f"{vec_count} vectors at {vec_rate:.1f}/s", flush=True)  # fmt: skip
    store.compact()  # as `repolens index` does after every run
    total_source = sum(float(r["source_mb"]) for r in index_rows)  # type: ignore[arg-type]
    db_mb = store.size_bytes() / 1e6

    searcher = Searcher(store, embedder)
    configs = [c for c in CONFIGS if embedder is not None or c[1] == "lexical"]
    latencies: dict[str, list[float]] = {label: [] for label, _, _ in configs}
    latencies_largest: list[float] = []
    largest = max(index_rows, key=lambda r: float(r["source_mb"]))["corpus"]  # type: ignore[arg-type]
    scores: dict[str, dict[str, object]] = {}
    plain: dict[str, PlainBM25] = {}
    for label, mode, rerank in [*configs, (BASELINE, "lexical", False), (FILE_BASELINE, "lexical", False)]:
        out_path = args.results / f"{label.split()[0]}.jsonl"
        with out_path.open("w") as out:
            for corpus in corpora:
                name = corpus["name"]
                queries = json.loads((BENCH / "queries" / f"{name}.json").read_text())
                source = store.get_source(name)
                assert source is not None
                if label == BASELINE and name not in plain:  # the files repolens accepted, read from disk
                    paths = [f.path for f in store.files([source.id])]
                    texts = ((p, (args.corpora / name / p).read_text(errors="replace")) for p in paths)
                    plain[name] = PlainBM25(texts)
                for q in queries:
                    t0 = time.perf_counter()
                    if label == BASELINE:
                        paths = plain[name].search(q["query"], TOP_K)
                    elif label == FILE_BASELINE:
                        ranked = store.lexical_files(query_terms(q["query"]), [source.id], TOP_K)
                        by_id = {f.id: f.path for f in store.files([source.id])}
                        paths = [by_id[f] for f, _ in ranked]
                    else:
                        outcome = searcher.search(
                            q["query"], filters=SearchFilters(sources=(name,)), limit=40, mode=mode, rerank=rerank
                        )
                        paths = file_paths([h.artifact.path for h in outcome.hits])
                    ms = (time.perf_counter() - t0) * 1000
                    if label in latencies:
                        latencies[label].append(ms)
                        if name == largest and label.endswith("(default)"):
                            latencies_largest.append(ms)
                    out.write(json.dumps({"corpus": name, "query": q["query"], "paths": paths}) + "\n")
        json_out = args.results / f"{label.split()[0]}.scores.json"
        subprocess.run(
            [sys.executable, str(BENCH / "score.py"), "--queries", str(BENCH / "queries"), "--results",
             str(out_path), "--json-out", str(json_out), *(["--only", ",".join(only)] if only else [])],
            check=True, capture_output=True,
        )  # fmt: skip
        scores[label] = json.loads(json_out.read_text())
        overall = scores[label].get("overall", {})
        print(f"[score] {label}: NDCG@10 {overall.get('ndcg@10', overall)}", flush=True)

    write_report(args.report, index_rows, scores, latencies, latencies_largest, largest, total_source, db_mb,
                 embedder.name if embedder else "none")  # fmt: skip
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _metric_table(scores: dict[str, dict[str, object]], key: str) -> list[str]:
    labels = list(scores)
    first = scores[labels[0]]
    slices = first.get(key, {})
    assert isinstance(slices, dict)
    lines = ["| slice | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in slices:
        cells = []
        for label in labels:
            block = scores[label].get(key, {})
            assert isinstance(block, dict)
            cells.append(f"{block.get(name, {}).get('ndcg@10', float('nan')):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _default_slices(scores: dict[str, dict[str, object]]) -> list[str]:
    """Every metric of the default configuration and the plain baseline, per category, language, corpus."""
    lines = [
        "## All metrics by slice: default / plain BM25 baseline",
        "",
        "| slice | NDCG@10 | R@5 | R@10 | MRR@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in ("per_category", "per_language", "per_corpus"):
        ours, base = scores.get(DEFAULT, {}).get(key, {}), scores.get(BASELINE, {}).get(key, {})
        assert isinstance(ours, dict) and isinstance(base, dict)
        for name, m in ours.items():
            b = base.get(name, {})
            cells = [f"{m[k]:.3f} / {b.get(k, float('nan')):.3f}" for k in ("ndcg@10", "recall@5", "recall@10", "mrr@10")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_report(
    path: Path,
    index_rows: list[dict[str, object]],
    scores: dict[str, dict[str, object]],
    latencies: dict[str, list[float]],
    latencies_largest: list[float],
    largest: object,
    total_source: float,
    db_mb: float,
    embedder: str,
) -> None:
    """Write the markdown report."""
    lines = [
        "# Retrieval benchmark report",
        "",
        f"Generated by `python bench/run.py` on {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}. "
        f"Embedder: `{embedder}`. Corpora and labels: ../shared/bench (320 queries, 16 repositories).",
        "",
        "## Quality (NDCG@10 / Recall@5 / Recall@10 / MRR@10, overall)",
        "",
        "| configuration | NDCG@10 | R@5 | R@10 | MRR@10 | query p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, block in scores.items():
        o = block.get("overall", {})
        assert isinstance(o, dict)
        lat = latencies.get(label, [])
        lines.append(
            f"| {label} | {o.get('ndcg@10', 0):.3f} | {o.get('recall@5', 0):.3f} | {o.get('recall@10', 0):.3f} "
            f"| {o.get('mrr@10', 0):.3f} | {statistics.median(lat) if lat else float('nan'):.1f} | {_pct(lat, 0.95):.1f} |"
        )
    default = scores.get(DEFAULT, {}).get("overall", {})
    lines.append("")
    for base in (BASELINE, FILE_BASELINE):
        other = scores.get(base, {}).get("overall", {})
        if isinstance(default, dict) and isinstance(other, dict) and other:
            lines.append(f"- Default over {base}: NDCG@10 {default.get('ndcg@10', 0) - other.get('ndcg@10', 0):+.3f}.")
    lines += [
        "",
        f"Baselines: `{BASELINE}` is the field's BM25-raw anchor rebuilt in bench/plain_bm25.py (chunks of ~750",
        "characters with path words, semble's identifier tokenizer, k1 1.5, b 0.75, no rerank; 0.675 on semble's",
        f"benchmark); `{FILE_BASELINE}` is repolens's identifier-aware BM25 over whole files with path tokens",
        "(one of the default's inputs), without fusion or rerank.",
    ]
    for key, title in (("per_category", "category"), ("per_language", "language"), ("per_corpus", "corpus")):
        lines += ["", f"## NDCG@10 by {title}", "", *_metric_table(scores, key)]
    lines += ["", *_default_slices(scores)]
    lines += [
        "",
        "## Indexing",
        "",
        "| corpus | MB | files | symbols | chunks | cold s | MB/s | unchanged re-index ms | one changed file ms "
        "| vectors | vectors/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in index_rows:
        lines.append(
            f"| {r['corpus']} | {r['source_mb']:.2f} | {r['files']} | {r['symbols']} | {r['chunks']} | "
            f"{r['cold_index_s']:.2f} | {r['mb_per_s']:.2f} | {float(r['reindex_unchanged_s']) * 1000:.0f} | "  # type: ignore[arg-type]
            f"{float(r['reindex_one_changed_s']) * 1000:.0f} | {r['vectors']} | {r['vectors_per_s']:.1f} |"  # type: ignore[arg-type]
        )
    total_cold = sum(float(r["cold_index_s"]) for r in index_rows)  # type: ignore[arg-type]
    lines += [
        "",
        f"- Total: {total_source:.2f} MB of source indexed cold in {total_cold:.1f} s "
        f"({total_source / total_cold:.2f} MB/s) to a searchable lexical and symbol index.",
        f"- Index on disk (all corpora, one SQLite file, vectors included): {db_mb:.1f} MB = "
        f"{db_mb / total_source:.2f}x the source.",
        f"- In-process query latency on the largest corpus ({largest}), default configuration: "
        f"p50 {statistics.median(latencies_largest) if latencies_largest else float('nan'):.1f} ms, "
        f"p95 {_pct(latencies_largest, 0.95):.1f} ms.",
        f"- Peak memory of the benchmark process: {peak_rss_mb():.0f} MB.",
    ]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
