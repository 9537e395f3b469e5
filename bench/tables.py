"""Score static tables on an index that bench/run.py left behind: re-embed, then NDCG@10 in process.

    python bench/run.py --home /tmp/bench-home --embedders static      # once: the lexical index
    python bench/tables.py --home /tmp/bench-home/static DIR [DIR ...] [--teacher-queries]

For each table folder (``scripts/build_static_embedder.py --out DIR``) the units are embedded by it
(vectors are keyed by the table, so a second run reuses them), then every dev query is searched in
the default configuration (fused + rerank), vectors alone, and vectors + rerank. Halves a/b split
the corpora alternately by name, as bench/tune.py does: a change that only one half likes is noise.
``--teacher-queries`` embeds queries with the packaged MiniLM mapped into the table's space (needs the
folder's projection.npz, written by the build's ``--projection``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "bench"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from score import score_query  # noqa: E402

from repolens.domain import SearchFilters  # noqa: E402
from repolens.embeddings.base import Embedder, InputType  # noqa: E402
from repolens.embeddings.static import StaticEmbedder  # noqa: E402
from repolens.indexing.vectors import backfill  # noqa: E402
from repolens.retrieval.search import Mode, Searcher  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

CONFIGS: list[tuple[str, Mode, bool]] = [
    ("fused+rerank", "auto", True),
    ("vectors", "semantic", False),
    ("vectors+rerank", "semantic", True),
]


class TeacherQueries:
    """Documents by the table; queries by MiniLM, moved into the table's space by the build's projection."""

    def __init__(self, folder: Path) -> None:
        from repolens.embeddings.minilm import MiniLMEmbedder

        self._table = StaticEmbedder(folder)
        self.name, self.dim = self._table.name, self._table.dim  # the table's document vectors are reused
        self._teacher = MiniLMEmbedder()
        with np.load(folder / "projection.npz") as p:
            self._centre, self._proj = p["centre"], p["projection"]

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        if input_type != "query":
            return self._table.embed(texts, input_type=input_type)
        v = (self._teacher.embed(texts, input_type="query") - self._centre) @ self._proj
        out: npt.NDArray[np.float32] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return out


def score(store: SqliteStore, embedder: Embedder) -> dict[str, Any]:
    """NDCG@10 per half and overall, and the median query time, for each configuration."""
    searcher = Searcher(store, embedder)
    corpora = sorted(json.loads((BENCH / "corpora.json").read_text()), key=lambda c: c["name"])
    out: dict[str, Any] = {}
    for label, mode, rerank in CONFIGS:
        halves: dict[int, list[float]] = {0: [], 1: []}
        ms: list[float] = []
        for i, corpus in enumerate(corpora):
            for q in json.loads((BENCH / "queries" / f"{corpus['name']}.json").read_text()):
                t0 = time.perf_counter()
                hits = searcher.search(
                    q["query"], filters=SearchFilters(sources=(corpus["name"],)), limit=40, mode=mode, rerank=rerank
                ).hits
                ms.append((time.perf_counter() - t0) * 1000)
                paths = list(dict.fromkeys(h.artifact.path for h in hits))[:10]
                halves[i % 2].append(score_query(q, paths)["ndcg@10"])
        out[label] = {
            "a": statistics.fmean(halves[0]),
            "b": statistics.fmean(halves[1]),
            "all": statistics.fmean(halves[0] + halves[1]),
            "p50_ms": statistics.median(ms),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="an index home of bench/run.py (its repolens.db)")
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--teacher-queries", action="store_true")
    args = parser.parse_args()
    store = SqliteStore(args.home / "repolens.db")
    print(f"load average {os.getloadavg()[0]:.1f}")
    for folder in args.tables:
        embedder: Embedder = TeacherQueries(folder) if args.teacher_queries else StaticEmbedder(folder)
        t0 = time.perf_counter()
        count = sum(backfill(store, s.id, embedder) for s in store.list_sources())
        print(f"{folder}: embedded {count} units in {time.perf_counter() - t0:.1f}s")
        for label, row in score(store, embedder).items():
            print(f"  {label:15} a {row['a']:.4f}  b {row['b']:.4f}  all {row['all']:.4f}  p50 {row['p50_ms']:.1f} ms")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
