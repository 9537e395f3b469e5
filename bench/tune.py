"""Coordinate search over the ranking constants of ``repolens.retrieval`` on the benchmark.

    python bench/run.py --home /tmp/bench-home        # once: builds the index (vectors included)
    python bench/tune.py --home /tmp/bench-home [--rounds 2] [--params RRF_K,COHERENCE_WEIGHT]

Each candidate value is scored in process (NDCG@10 of the default configuration, ../shared/bench
labels and scorer) on the index ``bench/run.py`` left in ``--home``. To keep the search honest on
320 queries, the corpora are split in two halves (alternating by name): a move is accepted only
when it improves *both* halves, and the report prints both, so a value that fits one half's
labels and hurts the other is never taken, and only when it gains at least ``MIN_GAIN`` overall
(smaller moves are noise on this set). Prints the trail; changes nothing in the source tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "bench"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(BENCH))

from score import score_query  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.embeddings.factory import load_embedder  # noqa: E402
from repolens.retrieval import rerank as rr  # noqa: E402
from repolens.retrieval import search as rs  # noqa: E402
from repolens.settings import load_settings  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

MIN_GAIN = 0.001  # NDCG@10 overall: about one query in 320 moving one rank

# Candidate values per constant: a few steps either side of today's value.
GRID: dict[str, tuple[Any, list[Any]]] = {
    "RRF_K": (rr, [3, 5, 10, 20]),
    "LEXICAL_WEIGHT_SYMBOL": (rr, [0.5, 0.6, 0.7, 0.8]),
    "LEXICAL_WEIGHT_NATURAL": (rr, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
    "FILE_LEXICAL_WEIGHT": (rr, [0.15, 0.3, 0.45, 0.6, 0.8]),
    "FILE_VECTOR_WEIGHT": (rr, [0.0, 0.15, 0.3, 0.45, 0.6]),
    "FILE_SUMMARY_WEIGHT": (rr, [0.0, 0.15, 0.3, 0.45]),
    "COHERENCE_WEIGHT": (rr, [0.0, 0.1, 0.25, 0.4, 0.6, 0.8]),
    "PATH_KEYWORD_BOOST": (rr, [0.25, 0.5, 0.75, 1.0, 1.25]),
    "PATH_KEYWORD_MIN_SHARE": (rr, [0.1, 0.2, 0.34]),
    "DEFINITION_BOOST": (rr, [2.0, 3.0, 4.0]),
    "EMBEDDED_IDENTIFIER_FACTOR": (rr, [0.25, 0.5, 0.75]),
    "FILE_SATURATION_DECAY": (rr, [0.3, 0.4, 0.5, 0.6, 0.7]),
    "STRONG_PENALTY": (rr, [0.2, 0.3, 0.4, 0.5]),
    "MODERATE_PENALTY": (rr, [0.4, 0.5, 0.6, 0.8]),
    "MILD_PENALTY": (rr, [0.5, 0.7, 0.85, 1.0]),
    "LEXICAL_CANDIDATES": (rs, [100, 150, 200]),
    "VECTOR_CANDIDATES": (rs, [100, 150, 200]),
    "FILE_CANDIDATES": (rs, [40, 60, 100]),
}


def evaluator(home: Path) -> Callable[[], dict[str, float]]:
    """A function scoring the current constants: NDCG@10 per half and overall."""
    settings = load_settings(home)
    store = SqliteStore(settings.db_path)
    searcher = rs.Searcher(store, load_embedder(settings))
    corpora = sorted(json.loads((BENCH / "corpora.json").read_text()), key=lambda c: c["name"])
    queries = [
        (i % 2, c["name"], q)
        for i, c in enumerate(corpora)
        for q in json.loads((BENCH / "queries" / f"{c['name']}.json").read_text())
    ]

    def evaluate() -> dict[str, float]:
        rr.clear_caches()  # the path priors and keyword shares were computed with the old constants
        halves: dict[int, list[float]] = {0: [], 1: []}
        for half, name, q in queries:
            hits = searcher.search(q["query"], filters=SearchFilters(sources=(name,)), limit=40).hits
            paths = list(dict.fromkeys(h.artifact.path for h in hits))[:10]
            halves[half].append(score_query(q, paths)["ndcg@10"])
        return {
            "a": statistics.fmean(halves[0]),
            "b": statistics.fmean(halves[1]),
            "all": statistics.fmean(halves[0] + halves[1]),
        }

    return evaluate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--params", default=",".join(GRID))
    args = parser.parse_args()
    evaluate = evaluator(args.home)
    best = evaluate()
    print(f"start: all {best['all']:.4f} (a {best['a']:.4f}, b {best['b']:.4f})", flush=True)
    for round_no in range(1, args.rounds + 1):
        moved = False
        for name in args.params.split(","):
            module, values = GRID[name]
            current = getattr(module, name)
            for value in values:
                if value == current:
                    continue
                setattr(module, name, value)
                got = evaluate()
                better = got["a"] > best["a"] and got["b"] > best["b"] and got["all"] >= best["all"] + MIN_GAIN
                print(
                    f"  {name}={value}: all {got['all']:.4f} (a {got['a']:.4f}, b {got['b']:.4f})"
                    f"{'  <- taken' if better else ''}",
                    flush=True,
                )
                if better:
                    best, current, moved = got, value, True
                setattr(module, name, current)
            print(f"[round {round_no}] {name} = {current}: all {best['all']:.4f}", flush=True)
        if not moved:
            break
    print("final:", {name: getattr(GRID[name][0], name) for name in GRID}, f"all {best['all']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
