"""Query latency (issue 16): in process and from the shell, this tree against a baseline tree, in one run.

    python bench/latency.py --home HOME [--source sqlalchemy] [--baseline /path/to/other/checkout/src]
    python bench/latency.py --check HOME --baseline /path/to/other/checkout/src

HOME is an index home that holds SOURCE with vectors of the default static embedder (bench/run.py
leaves one; write access is needed: this tree keeps vector matrix files beside the database).
For each tree (the baseline's ``src`` if given, then this one's) it prints:

- in process: p50 / p95 wall ms of every dev query of SOURCE (``../shared/bench/queries``), and
  the median CPU ms (all threads: what a busy machine cannot inflate), hybrid (the default ``auto``
  mode) and lexical, after one warm-up pass, as a server answers them (this tree: a resident store
  with its lexical index built);
- from the shell: the wall time of ``python -m repolens search QUERY --source SOURCE`` for the first
  ``SHELL_RUNS`` dev queries (start-up included; one warm-up run first), median and max, per mode.

With ``--check HOME`` it compares rankings instead (issue 16: what makes a query faster must not change
what it returns): the top ``CHECK_LIMIT`` of every dev query and issue report of every corpus of HOME (an
index home holding all of them, e.g. bench/run.py's), in ``CHECK_CONFIGS``, under the baseline and this
tree: unit ids, paths, names and signals equal, scores within ``CHECK_TOLERANCE``. Exits 1 on a difference.

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
from typing import cast

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
QUERIES = SHARED / "bench" / "queries"
ISSUES = SHARED / "bench" / "issues"
SHELL_RUNS = 10  # `repolens search` from the shell: median of this many runs (issue 16's measure)
PASSES = 5  # timed passes over the source's dev queries in process (after one warm-up pass)
EMBEDDER = "static"
CHECK_LIMIT = 40  # hits compared per query: the ten shown and well below, where ties would surface
CHECK_TOLERANCE = 1e-9  # scores are sums of a few terms ~0.01-1: a changed formula moves them far more
# (mode, rerank): the default, each retriever alone, and the plain fusion (signals differ in each)
CHECK_CONFIGS = (("auto", True), ("lexical", True), ("semantic", True), ("auto", False))

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


# Run in a child process like IN_PROCESS: prints the top hits of every query file given, per config.
RANKINGS = """
import json, sys
from pathlib import Path
from repolens.domain import SearchFilters
from repolens.embeddings.static import StaticEmbedder
from repolens.retrieval.search import Searcher
from repolens.storage.sqlite.store import SqliteStore

db, limit, configs, files = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
store = SqliteStore(db, resident=True)
store.build_lexicons()
searcher = Searcher(store, StaticEmbedder())
out = {}
for name in files:
    path = Path(name)
    filters = SearchFilters(sources=(path.stem,))
    for i, q in enumerate(json.loads(path.read_text())):
        for mode, rerank in configs:
            # twice: a searcher's first query embeds on its thread, later ones inline (both paths checked)
            for attempt in range(2):
                hits = searcher.search(q["query"], filters=filters, mode=mode, rerank=rerank, limit=limit).hits
                out[f"{path.parent.name}/{path.stem} #{i} {mode}{'' if rerank else ' no rerank'} {attempt}"] = [
                    [h.artifact.id, h.artifact.path, h.artifact.qualified_name, h.artifact.name, h.score, h.signals]
                    for h in hits
                ]
store.close()
print(json.dumps(out))
"""


def rankings(home: Path, src: Path) -> dict[str, list[list[object]]]:
    """The top CHECK_LIMIT hits of every dev query and issue report of the corpora in ``home``, per config."""
    files = [str(p) for folder in (QUERIES, ISSUES) for p in sorted(folder.glob("*.json"))]
    cmd = [sys.executable, "-c", RANKINGS, str(home / "repolens.db"), str(CHECK_LIMIT), json.dumps(CHECK_CONFIGS), *files]
    done = subprocess.run(cmd, env=_env(home, src), check=True, capture_output=True, text=True)
    result: dict[str, list[list[object]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check(home: Path, baseline: Path) -> int:
    """Compare the rankings of the baseline tree and this one; print the differences, return their count."""
    before, after = rankings(home, baseline), rankings(home, REPO / "src")
    differ, worst = 0, 0.0
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key, []), after.get(key, [])
        same = len(a) == len(b) and all(x[:4] == y[:4] and x[5] == y[5] for x, y in zip(a, b, strict=False))
        if same:
            gap = max((abs(cast(float, x[4]) - cast(float, y[4])) for x, y in zip(a, b, strict=True)), default=0.0)
            worst = max(worst, gap)
            same = gap <= CHECK_TOLERANCE
        if not same:
            differ += 1
            if differ <= 10:
                print(f"differs: {key}")
    queries = len(before) // (2 * len(CHECK_CONFIGS))
    print(
        f"{len(before)} rankings ({queries} queries x {len(CHECK_CONFIGS)} configs x 2 searches, top {CHECK_LIMIT}): "
        f"{differ} differ; largest score difference {worst:.2g}"
    )
    return differ


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
    parser.add_argument("--home", type=Path, help="index home for the latency runs (required unless --check)")
    parser.add_argument("--source", default="sqlalchemy")
    parser.add_argument("--baseline", type=Path, help="the src folder of another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="in-process runs per tree, taking turns")
    parser.add_argument("--check", type=Path, metavar="HOME", help="compare rankings on every corpus of HOME instead")
    args = parser.parse_args()
    if args.check is not None:
        if args.baseline is None:
            parser.error("--check needs --baseline")
        return 1 if check(args.check, args.baseline) else 0
    if args.home is None:
        parser.error("--home is required")
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
