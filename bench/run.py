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

import calls  # noqa: E402
import issues  # noqa: E402
import symbols  # noqa: E402
from plain_bm25 import PlainBM25  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.embeddings.base import Embedder  # noqa: E402
from repolens.embeddings.factory import load_embedder  # noqa: E402
from repolens.indexing.pipeline import index_source  # noqa: E402
from repolens.indexing.vectors import backfill  # noqa: E402
from repolens.parsing.tokens import query_terms  # noqa: E402
from repolens.retrieval.search import Mode, Searcher  # noqa: E402
from repolens.settings import Settings  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

DEFAULT = "fused+rerank (default)"
DEFAULT_EMBEDDER = "static"
DEFAULT_LEX = "lexical+rerank"  # the default ranking without vectors
PEER = "semble 0.7 (peer, same static model)"
STATIC_MODEL = REPO / "src" / "repolens" / "embeddings" / "models" / "static-minilm-code"
# (label, mode, rerank)
CONFIGS: list[tuple[str, Mode, bool]] = [
    ("lexical", "lexical", False),
    ("lexical+rerank", "lexical", True),
    ("vectors", "semantic", False),
    ("vectors+rerank", "semantic", True),
    ("fused", "hybrid", False),
    (DEFAULT, "hybrid", True),
]
# Two baselines. The issue's "plain BM25" is the field's BM25-raw anchor (bench/plain_bm25.py:
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


EMBEDDERS = ("static", "minilm", "none")  # the new default, the old one, lexical only
SHELL_RUNS = 10  # `repolens search` from the shell: median of this many runs
SHELL_QUERY = "how are connection pool checkouts recycled"  # a question, so hybrid mode embeds it


def index_corpus(
    store: SqliteStore, settings: Settings, embedder: Embedder | None, root: Path, name: str, *, incremental: bool
) -> dict[str, object]:
    """Cold index (phases timed by the pipeline), then the vector backfill, then re-index timings."""
    t0 = time.perf_counter()
    source, report = index_source(store, settings, str(root), name=name)
    cold = time.perf_counter() - t0
    vec_count, vec_secs = 0, 0.0
    if embedder is not None:
        t0 = time.perf_counter()
        vec_count = backfill(store, source.id, embedder)
        vec_secs = time.perf_counter() - t0
    row: dict[str, object] = {
        "corpus": name,
        "files": report.files_changed,
        "symbols": report.symbols,
        "chunks": report.chunks,
        "source_mb": report.bytes_parsed / 1e6,
        "cold_index_s": cold,
        "mb_per_s": report.bytes_parsed / 1e6 / cold,
        "phases": {k: v for k, v in report.seconds.items() if k != "total"},
        "embed_s": vec_secs,
        "vectors": vec_count,
        "vectors_per_s": vec_count / vec_secs if vec_secs > 0 else 0.0,
        "skipped": report.skipped_by_reason(),
    }
    if incremental:
        t0 = time.perf_counter()
        index_source(store, settings, str(root), name=name)
        row["reindex_unchanged_s"] = time.perf_counter() - t0
        # One changed file: append a comment line to the largest parsed file, re-index, restore.
        biggest = max(store.files([source.id]), key=lambda f: f.size)
        target = root / biggest.path
        original = target.read_bytes()
        target.write_bytes(original + b"\n# repolens bench touch\n")
        t0 = time.perf_counter()
        index_source(store, settings, str(root), name=name)
        row["reindex_one_changed_s"] = time.perf_counter() - t0
        target.write_bytes(original)
        index_source(store, settings, str(root), name=name)
        if embedder is not None:
            backfill(store, source.id, embedder)
    return row


def shell_search_ms(home: Path, embedder: str, source: str, mode: str) -> list[float]:
    """Wall time of `repolens search` run from a shell, start-up included (one warm-up run first)."""
    exe = Path(sys.executable).with_name("repolens")
    env = {**os.environ, "REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": embedder}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode compiled
    cmd = [str(exe), "search", SHELL_QUERY, "--source", source, "--mode", mode]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    out = []
    for _ in range(SHELL_RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def big_repository(corpora: Path, names: list[str], copies: int, dest: Path) -> Path:
    """A large synthetic repository: ``copies`` copies of the corpora side by side (paths differ, so every
    unit text differs and is embedded)."""
    if dest.exists():
        return dest
    for i in range(copies):
        for name in names:
            shutil.copytree(corpora / name, dest / f"copy{i + 1}" / name, symlinks=False)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=HERE / "corpora")
    parser.add_argument("--only", default="")
    parser.add_argument("--embedders", default=",".join(EMBEDDERS), help="comma-separated REPOLENS_EMBEDDER values")
    parser.add_argument("--no-vectors", action="store_true", help="same as --embedders none")
    parser.add_argument(
        "--big",
        type=int,
        default=0,
        metavar="COPIES",
        help="also index COPIES copies of the corpora as one repository (3 = ~56 MB)",
    )
    parser.add_argument(
        "--semble-python",
        type=Path,
        default=REPO / ".build" / "semble-venv" / "bin" / "python",
        help="a venv's python with semble==0.7.0 installed: adds the peer row (skipped if missing)",
    )
    parser.add_argument("--report", type=Path, default=HERE / "REPORT.md")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--home", type=Path, default=None, help="keep the index dirs here (one per embedder)")
    parser.add_argument(
        "--merge",
        type=Path,
        default=None,
        metavar="RUN_STATE",
        help="a run-state.json an earlier run wrote into its --results: its embedders join this report",
    )
    args = parser.parse_args()

    only = [s for s in args.only.split(",") if s]
    fetch = [sys.executable, str(BENCH / "fetch_corpora.py"), "--dest", str(args.corpora)]
    if only:
        fetch += ["--only", ",".join(only)]
    subprocess.run(fetch, check=True)
    corpora = [c for c in json.loads((BENCH / "corpora.json").read_text()) if not only or c["name"] in only]
    embedders = ["none"] if args.no_vectors else [e for e in args.embedders.split(",") if e]
    base = args.home or Path(tempfile.mkdtemp(prefix="repolens-bench-"))
    args.results.mkdir(parents=True, exist_ok=True)

    runs: dict[str, dict[str, object]] = {}
    scores: dict[str, dict[str, object]] = {}
    latencies: dict[str, list[float]] = {}
    largest_latencies: dict[str, list[float]] = {}
    largest = ""
    plain: dict[str, PlainBM25] = {}
    issue_sections: list[str] = []
    first = True
    for spec in embedders:
        load_start = os.getloadavg()[0]
        home = base / spec.replace(":", "_")
        settings = Settings(home=home, embedder=spec)
        store = SqliteStore(settings.db_path)
        embedder = load_embedder(settings)
        rows = []
        for corpus in corpora:
            row = index_corpus(store, settings, embedder, args.corpora / corpus["name"], corpus["name"], incremental=first)
            row["language"] = corpus["language"]
            rows.append(row)
            print(
                f"[index {spec}] {row['corpus']}: {row['source_mb']:.2f} MB lexical in {row['cold_index_s']:.2f}s, "
                f"{row['vectors']} vectors in {row['embed_s']:.2f}s",
                flush=True,
            )
        store.compact()  # as `repolens index` does after every run
        largest = str(max(rows, key=lambda r: float(r["source_mb"]))["corpus"])  # type: ignore[arg-type]
        # Queries are timed as the server answers them: a resident store, its lexicon built.
        resident = SqliteStore(settings.db_path, resident=True)
        resident.build_lexicons()
        searcher = Searcher(resident, embedder)
        configs = [c for c in CONFIGS if (embedder is not None and c[1] != "lexical") or (first and c[1] == "lexical")]
        baselines: list[tuple[str, Mode, bool]] = [(BASELINE, "lexical", False), (FILE_BASELINE, "lexical", False)]
        baselines = baselines if first else []
        for label, mode, rerank in [*configs, *baselines]:
            key = label if label in (BASELINE, FILE_BASELINE) or mode == "lexical" else f"{label} [{spec}]"
            out_path = args.results / f"{key.split()[0]}-{spec.replace(':', '_')}.jsonl"
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
                        if label not in (BASELINE, FILE_BASELINE):
                            latencies.setdefault(key, []).append(ms)
                            if name == largest:
                                largest_latencies.setdefault(key, []).append(ms)
                        out.write(json.dumps({"corpus": name, "query": q["query"], "paths": paths}) + "\n")
            json_out = out_path.with_suffix(".scores.json")
            subprocess.run(
                [
                    sys.executable,
                    str(BENCH / "score.py"),
                    "--queries",
                    str(BENCH / "queries"),
                    "--results",
                    str(out_path),
                    "--json-out",
                    str(json_out),
                    *(["--only", ",".join(only)] if only else []),
                ],
                check=True,
                capture_output=True,
            )
            scores[key] = json.loads(json_out.read_text())
            print(f"[score] {key}: NDCG@10 {_ndcg(scores, key):.3f}", flush=True)
        # The issue-report slice and the exact-symbol rate on the same index (bench/issues.py).
        issue_mode: Mode = "auto" if embedder is not None else "lexical"
        slice_results, exact = issues.run_slice(
            store, searcher, corpora, args.corpora, args.results / spec, mode=issue_mode, only=only
        )
        issue_sections += [f"\n### Issue slice, embedder `{spec}`", *issues.section(slice_results, exact, mode=issue_mode)]
        runs[spec] = {
            "name": embedder.name if embedder is not None else "none",
            "rows": rows,
            "db_mb": store.size_bytes() / 1e6,
            "shell_hybrid_ms": shell_search_ms(home, spec, largest, "auto") if spec != "none" else [],
            "shell_lexical_ms": shell_search_ms(home, spec, largest, "lexical"),
        }
        runs[spec]["load"] = [load_start, os.getloadavg()[0]]
        runs[spec]["finished"] = time.strftime("%H:%M UTC", time.gmtime())
        resident.close()
        store.close()
        first = False

    big: dict[str, dict[str, float]] = {}
    if args.big:
        repo = big_repository(args.corpora, [c["name"] for c in corpora], args.big, base / "big-repo")
        for spec in [e for e in embedders if e in ("static", "none")]:
            settings = Settings(home=base / f"big-{spec}", embedder=spec)
            store = SqliteStore(settings.db_path)
            row = index_corpus(store, settings, load_embedder(settings), repo, "big", incremental=False)
            big[spec] = {
                "mb": float(row["source_mb"]),
                "lexical_s": float(row["cold_index_s"]),  # type: ignore[arg-type]
                "embed_s": float(row["embed_s"]),
                "vectors": float(row["vectors"]),
            }  # type: ignore[arg-type]
            print(f"[big {spec}] {big[spec]}", flush=True)
            store.close()

    peer: dict[str, object] = {}
    if args.semble_python.exists():
        out_path, timings = args.results / "semble.jsonl", args.results / "semble.json"
        subprocess.run(
            [
                str(args.semble_python),
                str(HERE / "semble_peer.py"),
                "--corpora",
                str(args.corpora),
                "--names",
                ",".join(c["name"] for c in corpora),
                "--model",
                str(STATIC_MODEL),
                "--queries",
                str(BENCH / "queries"),
                "--out",
                str(out_path),
                "--timings",
                str(timings),
            ],
            check=True,
        )
        json_out = out_path.with_suffix(".scores.json")
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "score.py"),
                "--queries",
                str(BENCH / "queries"),
                "--results",
                str(out_path),
                "--json-out",
                str(json_out),
                *(["--only", ",".join(only)] if only else []),
            ],
            check=True,
            capture_output=True,
        )
        scores[PEER] = json.loads(json_out.read_text())
        peer = json.loads(timings.read_text())
        print(f"[score] {PEER}: NDCG@10 {_ndcg(scores, PEER):.3f}", flush=True)

    # What the report is made of, so a later run on the same machine can add its embedders (--merge):
    # MiniLM embeds for tens of minutes on a shared 2-core machine, the others in seconds.
    (args.results / "run-state.json").write_text(
        json.dumps(
            {
                "runs": runs,
                "scores": scores,
                "latencies": latencies,
                "largest_latencies": largest_latencies,
                "largest": largest,
                "big": big,
                "peer": peer,
                "issue_sections": issue_sections,
            }
        )
    )
    if args.merge is not None:
        prior = json.loads(args.merge.read_text())
        order = {e: i for i, e in enumerate(EMBEDDERS)}
        runs = dict(sorted({**prior["runs"], **runs}.items(), key=lambda kv: order.get(kv[0], len(order))))
        scores = {**prior["scores"], **scores}
        latencies = {**prior["latencies"], **latencies}
        largest_latencies = {**prior["largest_latencies"], **largest_latencies}
        big = {**prior["big"], **big}
        peer = peer or prior["peer"]
        issue_sections = prior["issue_sections"] + issue_sections
    write_report(args.report, runs, scores, latencies, largest_latencies, largest, big, peer)
    with args.report.open("a") as report:
        report.write("\n".join(issue_sections) + "\n")
        # The call graph and the parser, measured on their own labels (they do not feed ranking).
        report.write("\n" + "\n".join(calls.section(args.corpora, only)) + "\n")
        report.write("\n" + "\n".join(symbols.section()) + "\n")
    if args.home is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _load(run: dict[str, object]) -> str:
    start, end = run["load"]  # type: ignore[misc]  # [start, end], written by main()
    return f"{float(start):.1f} -> {float(end):.1f}"


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


def _default_slices(scores: dict[str, dict[str, object]], default: str) -> list[str]:
    """Every metric of the default configuration and the plain baseline, per category, language, corpus."""
    lines = [
        f"## All metrics by slice: {default} / plain BM25 baseline",
        "",
        "| slice | NDCG@10 | R@5 | R@10 | MRR@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in ("per_category", "per_language", "per_corpus"):
        ours, base = scores.get(default, {}).get(key, {}), scores.get(BASELINE, {}).get(key, {})
        assert isinstance(ours, dict) and isinstance(base, dict)
        for name, m in ours.items():
            b = base.get(name, {})
            cells = [f"{m[k]:.3f} / {b.get(k, float('nan')):.3f}" for k in ("ndcg@10", "recall@5", "recall@10", "mrr@10")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _ndcg(scores: dict[str, dict[str, object]], key: str) -> float:
    overall = scores.get(key, {}).get("overall", {})
    assert isinstance(overall, dict)
    return float(overall.get("ndcg@10", float("nan")))


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _lexical_s(row: dict[str, object]) -> float:
    phases = row["phases"]
    assert isinstance(phases, dict)
    return float(sum(phases.values()))


def write_report(
    path: Path,
    runs: dict[str, dict[str, object]],
    scores: dict[str, dict[str, object]],
    latencies: dict[str, list[float]],
    largest_latencies: dict[str, list[float]],
    largest: str,
    big: dict[str, dict[str, float]],
    peer: dict[str, object],
) -> None:
    """Write the markdown report."""
    names = ", ".join(f"`{spec}` = `{run['name']}`" for spec, run in runs.items())
    lines = [
        "# Retrieval benchmark report",
        "",
        f"Generated by `python bench/run.py` on {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}. "
        f"Embedders (one after the other on this machine): {names}. Corpora and labels: ../shared/bench "
        "(320 queries, 16 repositories).",
        "",
        "The machine's 2 cores were shared with other agents' builds and tests during the run (load average",
        f"{os.getloadavg()[0]:.1f} at the end): timings are noisy; compare rows of the same run, not across runs.",
        "Load average (1 min) when each embedder's part started and ended: "
        + "; ".join(
            f"`{spec}` {_load(run)} (done {run.get('finished', '?')})" for spec, run in runs.items() if "load" in run
        )
        + ".",
        "",
        "## Embedders side by side (NDCG@10 overall; query latency in process, ms)",
        "",
        "| embedder | vectors | vectors+rerank | fused | fused+rerank (default) | p50 / p95 all corpora "
        f"| p50 / p95 {largest} (largest) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lex_lat, lex_largest = latencies.get(DEFAULT_LEX, []), largest_latencies.get(DEFAULT_LEX, [])
    for spec in runs:
        if spec == "none":
            lines.append(
                f"| none (lexical only) | - | - | {_ndcg(scores, 'lexical'):.3f} | {_ndcg(scores, DEFAULT_LEX):.3f} "
                f"| {_med(lex_lat):.1f} / {_pct(lex_lat, 0.95):.1f} "
                f"| {_med(lex_largest):.1f} / {_pct(lex_largest, 0.95):.1f} |"
            )
            continue
        key = f"{DEFAULT} [{spec}]"
        lat, lat_l = latencies.get(key, []), largest_latencies.get(key, [])
        lines.append(
            f"| {spec} | {_ndcg(scores, f'vectors [{spec}]'):.3f} | {_ndcg(scores, f'vectors+rerank [{spec}]'):.3f} "
            f"| {_ndcg(scores, f'fused [{spec}]'):.3f} | **{_ndcg(scores, key):.3f}** "
            f"| {_med(lat):.1f} / {_pct(lat, 0.95):.1f} | {_med(lat_l):.1f} / {_pct(lat_l, 0.95):.1f} |"
        )
    lines += [
        "",
        f"Lexical halves (the same for every embedder): lexical {_ndcg(scores, 'lexical'):.3f}, lexical+rerank "
        f"{_ndcg(scores, DEFAULT_LEX):.3f}; baselines: {BASELINE} {_ndcg(scores, BASELINE):.3f}, {FILE_BASELINE} "
        f"{_ndcg(scores, FILE_BASELINE):.3f}. The none row's default is lexical+rerank.",
        "",
        "## Indexing cost per embedder (all corpora, cold)",
        "",
        "| embedder | lexical index s (walk / read / parse / write) | embed s | with vectors / lexical | units | units/s "
        f"| `repolens search` from the shell, {SHELL_RUNS} runs, median ms: auto / lexical | index on disk MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for spec, run in runs.items():
        rows = run["rows"]
        assert isinstance(rows, list)
        phase_tot = {p: sum(float(r["phases"][p]) for r in rows) for p in ("walk", "read", "parse", "write")}
        lexical = sum(phase_tot.values())
        embed = sum(float(r["embed_s"]) for r in rows)
        units = sum(int(r["vectors"]) for r in rows)
        split = " / ".join(f"{phase_tot[p]:.1f}" for p in ("walk", "read", "parse", "write"))
        shell_h, shell_l = run["shell_hybrid_ms"], run["shell_lexical_ms"]
        assert isinstance(shell_h, list) and isinstance(shell_l, list)
        lines.append(
            f"| {spec} | {lexical:.1f} ({split}) | {embed:.1f} | {(lexical + embed) / lexical:.2f}x | {units} "
            f"| {units / embed if embed else float('nan'):.0f} | {_med(shell_h):.0f} / {_med(shell_l):.0f} "
            f"| {float(run['db_mb']):.1f} |"  # type: ignore[arg-type]
        )
    if peer:
        corp = peer["corpora"]
        peer_lat = peer["latencies_ms"]
        assert isinstance(corp, dict) and isinstance(peer_lat, list)
        total = sum(float(v["cold_index_s"]) for v in corp.values())
        ours = runs.get(DEFAULT_EMBEDDER, {}).get("rows", [])
        assert isinstance(ours, list)
        ours_total = sum(_lexical_s(r) + float(r["embed_s"]) for r in ours)
        lat_l = [float(v["query_p50_ms"]) for k, v in corp.items() if k == largest]
        lines += [
            "",
            f"Peer, same run: `{PEER}` (bench/semble_peer.py; repolens's table converted to model2vec's format, since",
            "semble's own model is not reachable offline): NDCG@10 "
            f"{_ndcg(scores, PEER):.3f}; cold index of all corpora {total:.1f} s (model load included, as semble's CLI "
            f"does) vs {ours_total:.1f} s for repolens with `{DEFAULT_EMBEDDER}` vectors (lexical + embed); query p50 / p95 "
            f"{_med(peer_lat):.1f} / {_pct(peer_lat, 0.95):.1f} ms over all corpora"
            + (f", p50 {lat_l[0]:.1f} ms on {largest}." if lat_l else "."),
        ]
    if big:
        lines += ["", "Large repository (copies of all corpora side by side, one source):", ""]
        for spec, b in big.items():
            ratio = (b["lexical_s"] + b["embed_s"]) / b["lexical_s"]
            rate = b["vectors"] / b["embed_s"] if b["embed_s"] else float("nan")
            lines.append(
                f"- `{spec}`: {b['mb']:.1f} MB, lexical index {b['lexical_s']:.1f} s, embed {b['embed_s']:.1f} s "
                f"({b['vectors']:.0f} units, {rate:.0f}/s): with vectors {ratio:.2f}x lexical-only."
            )
    for spec, run in runs.items():
        rows = run["rows"]
        assert isinstance(rows, list)
        lines += [
            "",
            f"### Per corpus, `{spec}`",
            "",
            "| corpus | MB | files | symbols | chunks | walk s | read s | parse s | write s | lexical s | embed s "
            "| with vectors / lexical | units | units/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            ph = r["phases"]
            lex = _lexical_s(r)
            lines.append(
                f"| {r['corpus']} | {r['source_mb']:.2f} | {r['files']} | {r['symbols']} | {r['chunks']} | "
                + " | ".join(f"{float(ph[p]):.2f}" for p in ("walk", "read", "parse", "write"))
                + f" | {lex:.2f} | {float(r['embed_s']):.2f} | {(lex + float(r['embed_s'])) / lex:.2f}x "
                f"| {r['vectors']} | {float(r['vectors_per_s']):.0f} |"
            )
        if "reindex_unchanged_s" in rows[0]:
            worst_u = max(float(r["reindex_unchanged_s"]) for r in rows) * 1000
            worst_c = max(float(r["reindex_one_changed_s"]) for r in rows) * 1000
            lines += [
                "",
                f"Re-index: unchanged at most {worst_u:.0f} ms per corpus; one changed file at most "
                f"{worst_c:.0f} ms (re-embedding included).",
            ]
    default_key = f"{DEFAULT} [{DEFAULT_EMBEDDER}]" if f"{DEFAULT} [{DEFAULT_EMBEDDER}]" in scores else DEFAULT_LEX
    for key, title in (("per_category", "category"), ("per_language", "language"), ("per_corpus", "corpus")):
        lines += ["", f"## NDCG@10 by {title}", "", *_metric_table(scores, key)]
    lines += ["", *_default_slices(scores, default_key)]
    lines += ["", f"Peak memory of the benchmark process: {peak_rss_mb():.0f} MB."]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
