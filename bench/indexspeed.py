"""Cold indexing speed: repolens (lexical only, and with the static embedder's vectors) against semble 0.7,
per corpus and in total, in one run on one machine (issue 16's indexing-speed target).

    python bench/indexspeed.py --corpora bench/corpora
    python bench/indexspeed.py --corpora bench/corpora --baseline-src /tmp/main-src   # before/after
    python bench/indexspeed.py --corpora bench/corpora --keep /tmp/dbs                # keep the indexes

Each repolens figure is one cold ``repolens index PATH --json -q`` (``--no-vectors`` for the lexical one,
``REPOLENS_EMBEDDER=static`` otherwise), run through the CLI's own code in a worker process whose imports
were paid by a warm-up run first; the data dir is fresh per corpus, its database created before the clock
starts (a one-time cost per data dir, not per repository). The static table is loaded inside the timed
run, as semble's model is (bench/semble_peer.py, a fresh semble cache per corpus, model loaded per corpus).
``--baseline-src`` runs the same workers with another checkout's ``src`` first on ``PYTHONPATH`` (the
code before a change), so before and after are measured in the same run; ``--rounds N`` repeats every
measurement N times, interleaved, and keeps each one's median (the machine is shared: load moves).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
STATIC_MODEL = REPO / "src" / "repolens" / "embeddings" / "models" / "static-minilm-code"
SEMBLE_PYTHON = REPO / ".build" / "semble-venv" / "bin" / "python"
MODES = ("lexical", "static")  # `repolens index --no-vectors`, and `repolens index` with the static embedder


def worker(corpora: Path, names: list[str], mode: str, keep: Path | None) -> dict[str, dict[str, object]]:
    """Index each corpus cold in this process through the CLI; the wall time and the pipeline's phases."""
    from repolens.surfaces.cli.main import cli

    def run(home: Path, path: Path, name: str) -> tuple[float, dict[str, object]]:
        os.environ["REPOLENS_HOME"] = str(home)
        os.environ["REPOLENS_EMBEDDER"] = "none" if mode == "lexical" else mode
        args = ["index", str(path), "--name", name, "--json", "-q", *(["--no-vectors"] if mode == "lexical" else [])]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            c0 = _cpu()
            t0 = time.perf_counter()
            cli.main(args=args, standalone_mode=False)
            wall = time.perf_counter() - t0
            cpu = _cpu() - c0
        return wall, {**json.loads(out.getvalue()), "cpu": cpu}

    def fresh_home(label: str) -> Path:
        home = Path(tempfile.mkdtemp(prefix=f"indexspeed-{label}-"))
        from repolens.storage.sqlite.store import SqliteStore

        SqliteStore(home / "repolens.db").close()  # the schema, before the clock starts
        return home

    warm = Path(tempfile.mkdtemp(prefix="indexspeed-warm-"))
    (warm / "a.py").write_text("def f():\n    return 1\n")
    run(fresh_home("warm"), warm, "warm")  # imports and lazy module loads, off the clock
    out: dict[str, dict[str, object]] = {}
    for name in names:
        home = keep / mode / name if keep is not None else fresh_home(name)
        if keep is not None:
            home.mkdir(parents=True, exist_ok=True)
            from repolens.storage.sqlite.store import SqliteStore

            SqliteStore(home / "repolens.db").close()
        wall, report = run(home, corpora / name, name)
        out[name] = {
            "s": wall,
            "cpu": report["cpu"],
            "phases": report.get("seconds", {}),
            "files": report.get("filesChanged", 0),
            "units": report.get("vectorsTotal", 0),
            "vectors": report.get("vectorsReady", 0),
        }
    return out


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (the parse workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _spawn(src: Path, corpora: Path, names: list[str], mode: str, keep: Path | None) -> dict[str, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--worker", mode, "--corpora", str(corpora), "--only", ",".join(names)]
    if keep is not None:
        cmd += ["--keep", str(keep)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _semble(corpora: Path, names: list[str]) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        timings = Path(tmp) / "semble.json"
        subprocess.run(
            [
                str(SEMBLE_PYTHON),
                str(HERE / "semble_peer.py"),
                "--corpora",
                str(corpora),
                "--names",
                ",".join(names),
                "--model",
                str(STATIC_MODEL),
                "--queries",
                str(SHARED / "bench" / "queries"),
                "--out",
                str(Path(tmp) / "semble.jsonl"),
                "--timings",
                str(timings),
                "--index-only",
            ],
            check=True,
            capture_output=True,
        )
        data = json.loads(timings.read_text())["corpora"]
    return {name: (float(data[name]["cold_index_s"]), float(data[name]["cold_index_cpu_s"])) for name in names}


def _mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=HERE / "corpora")
    parser.add_argument("--only", default="", help="comma-separated corpus names (default: every folder)")
    parser.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src: the 'before' rows")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep the indexes here (DIR/<variant>/<mode>/<corpus>)")
    parser.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(
        p.name for p in args.corpora.iterdir() if p.is_dir() and not p.name.startswith(".")
    )

    if args.worker is not None:
        print(json.dumps(worker(args.corpora, names, args.worker, args.keep)))
        return 0

    variants = {"before": args.baseline_src, "after": REPO / "src"} if args.baseline_src else {"now": REPO / "src"}
    samples: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    phases: dict[str, dict[str, dict[str, float]]] = {}
    load = [os.getloadavg()[0]]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for round_ in range(args.rounds):
        if SEMBLE_PYTHON.exists():
            for name, (s, c) in _semble(args.corpora, names).items():
                samples.setdefault("semble", {}).setdefault(name, []).append(s)
                cpu.setdefault("semble", {}).setdefault(name, []).append(c)
        for variant, src in variants.items():
            for mode in MODES:
                # the first round's indexes only: a second round into the same folders would not be cold
                keep = args.keep / variant if args.keep is not None and round_ == 0 else None
                for name, row in _spawn(src, args.corpora, names, mode, keep).items():
                    key = f"{variant} {mode}"
                    samples.setdefault(key, {}).setdefault(name, []).append(float(row["s"]))  # type: ignore[arg-type]
                    cpu.setdefault(key, {}).setdefault(name, []).append(float(row["cpu"]))  # type: ignore[arg-type]
                    phases.setdefault(key, {})[name] = dict(row["phases"])  # type: ignore[call-overload]
        load.append(os.getloadavg()[0])
    medians = {key: {n: statistics.median(v) for n, v in rows.items()} for key, rows in samples.items()}
    cpu_medians = {key: {n: statistics.median(v) for n, v in rows.items()} for key, rows in cpu.items()}
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"wall": medians, "cpu": cpu_medians, "phases": phases, "load": load}, indent=2))
    print(report(args.corpora, names, medians, cpu_medians, phases, load, started, args.rounds))
    return 0


def report(
    corpora: Path,
    names: list[str],
    wall: dict[str, dict[str, float]],
    cpu: dict[str, dict[str, float]],
    phases: dict[str, dict[str, dict[str, float]]],
    load: list[float],
    started: str,
    rounds: int,
) -> str:
    """The figures as a markdown section: wall seconds per corpus (CPU seconds beside them, which a shared
    machine's load moves less), totals, phases and the verdict."""
    keys = list(wall)
    lines = [
        f"Run {started}; machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average (1 min) {' -> '.join(f'{x:.1f}' for x in load)}; {rounds} round(s), median per cell.",
        "",
        "| corpus | MB | " + " | ".join(f"{k} s (CPU s)" for k in keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
    ]
    totals = dict.fromkeys(keys, 0.0)
    cpu_totals = dict.fromkeys(keys, 0.0)
    for name in names:
        cells = []
        for key in keys:
            value, used = wall[key].get(name, float("nan")), cpu.get(key, {}).get(name, float("nan"))
            totals[key] += value
            cpu_totals[key] += used
            cells.append(f"{value:.2f} ({used:.2f})")
        lines.append(f"| {name} | {_mb(corpora / name):.2f} | " + " | ".join(cells) + " |")
    lines.append("| **total** | | " + " | ".join(f"**{totals[k]:.1f}** ({cpu_totals[k]:.1f})" for k in keys) + " |")
    latest = "after" if any(k.startswith("after") for k in keys) else "now"
    lines.append("")
    for mode in MODES:
        key = f"{latest} {mode}"
        if key in phases:
            sums: dict[str, float] = {}
            for row in phases[key].values():
                for phase, s in row.items():
                    if phase != "total":
                        sums[phase] = sums.get(phase, 0.0) + float(s)
            split = " / ".join(f"{p} {s:.1f}" for p, s in sums.items())
            lines.append(f"- `{key}` phases summed over the corpora (s): {split}.")
    if "semble" in totals and f"{latest} static" in totals:
        ours, peer = totals[f"{latest} static"], totals["semble"]
        verdict = "faster than" if ours < peer else "slower than"
        lines.append(
            f"- With vectors, repolens ({latest}) indexes the {len(names)} corpora in {ours:.1f} s wall "
            f"({cpu_totals[f'{latest} static']:.1f} s CPU): {verdict} semble's {peer:.1f} s "
            f"({cpu_totals['semble']:.1f} s CPU), {ours / peer:.2f}x its wall time."
        )
        ratio = ours / totals[f"{latest} lexical"]
        lines.append(f"- With vectors / lexical only, in total: {ratio:.2f}x.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
