"""The peer row of bench/run.py: semble 0.7 over the same corpora and queries, with repolens's static model.

Runs in its own venv (semble and model2vec are not repolens dependencies):

    python3 -m venv .build/semble-venv && .build/semble-venv/bin/pip install semble==0.7.0
    .build/semble-venv/bin/python bench/semble_peer.py --corpora bench/corpora \\
        --model src/repolens/embeddings/models/static-minilm-code --queries ../shared/bench/queries \\
        --out bench/results/semble.jsonl --timings bench/results/semble.json

(bench/run.py does this when that venv exists.)

semble's own default model (potion-code-16M) is on the Hugging Face hub, which this machine cannot reach; it
gets repolens's table instead, converted to model2vec's format (the same rows; model2vec's tokenizer call does
not split camelCase, the rest is the same model), so the two engines differ in everything but the embedder.
Each corpus is indexed cold (a fresh semble cache dir, the model loaded once per corpus, as semble's CLI
does), then every query is run once; wall times are taken here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

TOP_K = 10
CHUNKS_PER_QUERY = 40  # chunks asked for, de-duplicated to files, cut to TOP_K (as bench/run.py does)


def export_model2vec(model_dir: Path, dest: Path) -> None:
    """repolens's int8 table (rows x scales) as a float32 model2vec StaticModel folder."""
    import numpy as np
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    codes = np.load(model_dir / "embeddings.npy")
    scales = np.load(model_dir / "scales.npy")
    vectors = codes.astype(np.float32) * scales[:, None]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(dest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--names", default="", help="comma-separated corpus names (default: every query file)")
    parser.add_argument("--model", type=Path, required=True, help="a repolens static model folder")
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="results, one JSON line per query")
    parser.add_argument("--timings", type=Path, required=True)
    parser.add_argument("--index-only", action="store_true", help="time the cold index only; run no query")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="semble-peer-"))
    os.environ["SEMBLE_CACHE_LOCATION"] = str(work / "cache")  # a cold cache: no index is reused
    model = work / "model"
    export_model2vec(args.model, model)

    from semble import SembleIndex

    names = [n for n in args.names.split(",") if n] or sorted(p.stem for p in args.queries.glob("*.json"))
    timings: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    with args.out.open("w") as out:
        for name in names:
            os.environ["SEMBLE_CACHE_LOCATION"] = str(work / "cache" / name)
            c0, t0 = time.process_time(), time.perf_counter()
            index = SembleIndex.from_path(args.corpora / name, model_path=str(model))
            cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
            per_query: list[float] = []
            queries = [] if args.index_only else json.loads((args.queries / f"{name}.json").read_text())
            for q in queries:
                t0 = time.perf_counter()
                hits = index.search(q["query"], top_k=CHUNKS_PER_QUERY)
                per_query.append((time.perf_counter() - t0) * 1000)
                paths = list(dict.fromkeys(h.chunk.file_path for h in hits))[:TOP_K]
                out.write(json.dumps({"corpus": name, "query": q["query"], "paths": paths}) + "\n")
            latencies.extend(per_query)
            timings[name] = {
                "cold_index_s": cold,
                "cold_index_cpu_s": cold_cpu,  # every thread of this process (the tokenizer's too)
                "query_p50_ms": statistics.median(per_query) if per_query else 0.0,
                "chunks": float(len(index.chunks)),
            }
            print(f"[semble] {name}: cold index {cold:.2f}s, {len(index.chunks)} chunks", flush=True)
    args.timings.write_text(json.dumps({"corpora": timings, "latencies_ms": latencies}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
