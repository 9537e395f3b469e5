"""Query latency (issue 16): in process and from the shell, this tree against a baseline tree, in one run.

    python bench/latency.py --home HOME [--source sqlalchemy] [--baseline /path/to/other/checkout/src]

HOME is an index home that holds SOURCE with vectors of the default static embedder (bench/run.py
leaves one; write access is needed: this tree keeps vector matrix files beside the database).
For each tree (the baseline's ``src`` if given, then this one's) it prints:

- in process: p50 / p95 wall ms of every dev query of SOURCE (``../shared/bench/queries``), and
  the median CPU ms (all threads: what a busy machine cannot inflate), hybrid (the default ``auto``
  mode) and lexical, after one warm-up pass, as a server answers them (this tree: a resident store
  with its lexical index built);
- from the shell: the wall time of ``python -m repolens search QUERY --source SOURCE`` for the first
  ``SHELL_RUNS`` dev queries (start-up included; one warm-up run first), median and max, per mode.

The trees take turns: ``--rounds`` in-process runs each, alternately, reported as the median of their
p50s (and of their p95s), and each shell query runs under every tree before the next query, so a
change of load in the middle of the run weighs on all trees alike. The machine's load average is
printed before and after: the cores are shared, compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
QUERIES = SHARED / "bench" / "queries"
SHELL_RUNS = 10  # `repolens search` from the shell: median of this many runs (issue 16's measure)
PASSES = 5  # timed passes over the source's dev queries in process (after one warm-up pass)
EMBEDDER = "static"

# Run in a child process with the tree's ``src`` first on sys.path: times every dev query in process.
IN_PROCESS = """
import inspect, json, statistics, sys, time
from pathlib import Path
from repolens.domain import SearchFilters
from repolens.embeddings.static import StaticEmbedder
from repolens.retrieval.search import Searcher
from repolens.storage.sqlite.store import SqliteStore

db, source, queries, passes = Path(sys.argv[1]), sys.argv[2], json.loads(Path(sys.argv[3]).read_text()), int(sys.argv[4])
resident = "resident" in inspect.signature(SqliteStore).parameters
store = SqliteStore(db, resident=True) if resident else SqliteStore(db)
if resident:
    store.build_lexicons()
searcher = Searcher(store, StaticEmbedder())
filters = SearchFilters(sources=(source,))
out = {"resident": resident}
for mode in ("auto", "lexical"):
    for q in queries:
        searcher.search(q["query"], filters=filters, mode=mode)
    times, cpu = [], []
    for _ in range(passes):
        for q in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            searcher.search(q["query"], filters=filters, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    out[mode] = [statistics.median(times), times[int(len(times) * 0.95)], statistics.median(cpu)]
store.close()
print(json.dumps(out))
"""


def _env(home: Path, src: Path) -> dict[str, str]:
    env = {**os.environ, "REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": EMBEDDER, "PYTHONPATH": str(src)}
    # An installed package has its bytecode compiled; a shell search must not be timed recompiling it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def in_process(home: Path, src: Path, source: str) -> dict[str, object]:
    """p50 / p95 ms per mode of the source's dev queries, searched in process by the tree at ``src``."""
    queries = QUERIES / f"{source}.json"
    cmd = [sys.executable, "-c", IN_PROCESS, str(home / "repolens.db"), source, str(queries), str(PASSES)]
    done = subprocess.run(cmd, env=_env(home, src), check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def shell(home: Path, srcs: list[Path], source: str, mode: str) -> list[list[float]]:
    """Wall ms of ``repolens search`` from a shell for the first SHELL_RUNS dev queries, per tree
    (each query under every tree in turn)."""
    queries = [q["query"] for q in json.loads((QUERIES / f"{source}.json").read_text())][:SHELL_RUNS]
    envs = [_env(home, src) for src in srcs]
    base = [sys.executable, "-m", "repolens", "search"]
    for env in envs:
        subprocess.run([*base, queries[0], "--source", source, "--mode", mode], env=env, check=True, capture_output=True)
    out: list[list[float]] = [[] for _ in srcs]
    for query in queries:
        for times, env in zip(out, envs, strict=True):
            t0 = time.perf_counter()
            subprocess.run([*base, query, "--source", source, "--mode", mode], env=env, check=True, capture_output=True)
            times.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--source", default="sqlalchemy")
    parser.add_argument("--baseline", type=Path, help="the src folder of another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="in-process runs per tree, taking turns")
    args = parser.parse_args()
    trees = [("baseline", args.baseline)] if args.baseline else []
    trees.append(("this tree", REPO / "src"))
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} at the start ({time.strftime('%H:%M UTC', time.gmtime())})"
    )
    print(
        "| tree | in process p50 / p95 (CPU p50) ms: hybrid | lexical "
        "| shell `repolens search` median / max ms: hybrid | lexical |"
    )
    print("|---|---:|---:|---:|---:|")
    runs: list[list[dict[str, object]]] = [[] for _ in trees]
    for _ in range(args.rounds):
        for done, (_, src) in zip(runs, trees, strict=True):
            done.append(in_process(args.home, src, args.source))
    srcs = [src for _, src in trees]
    sh_h = shell(args.home, srcs, args.source, "auto")
    sh_l = shell(args.home, srcs, args.source, "lexical")
    for i, (label, _) in enumerate(trees):

        def med(mode: str, column: int, i: int = i) -> float:
            values = [r[mode] for r in runs[i]]
            return statistics.median(v[column] for v in values if isinstance(v, list))

        print(
            f"| {label} | {med('auto', 0):.1f} / {med('auto', 1):.1f} ({med('auto', 2):.1f}) "
            f"| {med('lexical', 0):.1f} / {med('lexical', 1):.1f} ({med('lexical', 2):.1f}) "
            f"| {statistics.median(sh_h[i]):.0f} / {max(sh_h[i]):.0f} "
            f"| {statistics.median(sh_l[i]):.0f} / {max(sh_l[i]):.0f} |",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end ({time.strftime('%H:%M UTC', time.gmtime())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
