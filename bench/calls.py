"""Call-edge precision and recall on a hand-labelled sample (issue 17).

    python bench/calls.py                  # score the labels: bare name vs resolved, same run
    python bench/calls.py --draft rich:15  # print call sites to label (a seeded random sample)

``bench/calls/labels.tsv`` is the sample the resolver was developed against;
``bench/calls/heldout.tsv`` was drawn (another seed, other corpora) and labelled after it was
frozen. Every row is one call site drawn at random from a bench corpus
(``--draft``, seeded) and labelled by reading the code: the definition(s) in the corpus the call
can reach (``path::Qualified.name``, several separated by ``,`` when dispatch may reach more
than one), or ``-`` when it reaches none (a builtin, the standard library, another package).

Scoring indexes each corpus (lexical only) and links every labelled edge twice in the same run:
with the bare-name rule every edge followed before hints ("before"), and with the parser's
hints ("after"). Precision: linked definitions that are in the label / all linked definitions.
Recall: edges whose label names a definition and that link at least one of them / those edges.
"after, resolved" counts only edges linked as ``resolved``; "after, all" adds ``name match``
edges (languages without a resolver).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from repolens.domain import SourceFile  # noqa: E402
from repolens.indexing.pipeline import index_source  # noqa: E402
from repolens.parsing.parse import parse_file  # noqa: E402
from repolens.retrieval.graph import Linker  # noqa: E402
from repolens.settings import Settings  # noqa: E402
from repolens.sources.languages import language_of  # noqa: E402
from repolens.storage.sqlite.store import SqliteStore  # noqa: E402

LABELS = HERE / "calls" / "labels.tsv"  # the sample the resolver was developed against
HELDOUT = HERE / "calls" / "heldout.tsv"  # drawn and labelled after the resolver was frozen
SEED = 17  # the draft sample: fixed so that a draft can be re-drawn and checked
CALLABLE = frozenset({"function", "method", "class", "struct"})
COLUMNS = ("corpus", "language", "path", "line", "caller", "callee", "gold", "note")


@dataclass(frozen=True, slots=True)
class Label:
    corpus: str
    language: str
    path: str
    line: int
    caller: str
    callee: str
    gold: frozenset[str]
    note: str


def read_labels(path: Path) -> list[Label]:
    out: list[Label] = []
    for raw in path.read_text().splitlines()[1:]:
        if not raw.strip():
            continue
        cells = raw.split("\t")
        corpus, language, file, line, caller, callee, gold = cells[:7]
        golds = frozenset() if gold == "-" else frozenset(g.strip() for g in gold.split(","))
        out.append(Label(corpus, language, file, int(line), caller, callee, golds, cells[7] if len(cells) > 7 else ""))
    return out


def _files(root: Path) -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        text = path.read_text(errors="replace")
        language = language_of(rel, text.split("\n", 1)[0])
        if language is not None:
            out.append((rel, language, text))
    return out


def draft(corpora: Path, spec: str, seed: int, exclude: set[tuple[str, str, int]]) -> None:
    """Print ``count`` random call sites of ``corpus`` (none of ``exclude``) with their context
    and candidates."""
    name, _, count = spec.partition(":")
    files = _files(corpora / name)
    parsed = {
        rel: (language, text, parse_file(SourceFile(rel, text, len(text), "", language))) for rel, language, text in files
    }
    by_name: dict[str, list[str]] = defaultdict(list)
    for rel, (_, _, p) in parsed.items():
        for s in p.symbols:
            by_name[s.name].append(f"{rel}::{s.qualified_name} ({s.kind})")
    sites = sorted(
        (rel, r.line, r.source or "", r.target, language)
        for rel, (language, _, p) in parsed.items()
        for r in p.relations
        if r.kind == "calls" and r.source
    )
    sites = sorted(s for s in set(sites) if (name, s[0], s[1]) not in exclude)
    rng = random.Random(f"{seed}:{name}")
    for rel, line, caller, callee, language in sorted(rng.sample(sites, int(count or 20))):
        lines = parsed[rel][1].split("\n")
        print(f"=== {name}\t{language}\t{rel}\t{line}\t{caller}\t{callee}")
        for n in range(max(1, line - 3), min(len(lines), line + 1) + 1):
            print(f"  {n:5d}{'>' if n == line else ' '} {lines[n - 1][:160]}")
        for candidate in by_name.get(callee, [])[:12]:
            print(f"      candidate {candidate}")


def score(corpora: Path, labels: list[Label], *, verbose: bool = False) -> dict[str, dict[str, float]]:
    """Precision and recall per configuration, and per language for "after, all"."""
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # linked, correct, gold edges, recalled
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), embedder="none")
        store = SqliteStore(settings.db_path)
        try:
            for corpus in sorted({label.corpus for label in labels}):
                source, _ = index_source(store, settings, str(corpora / corpus), name=corpus)
                linker = Linker(store, source)
                for label in (x for x in labels if x.corpus == corpus):
                    callers = [
                        a
                        for a in store.artifacts_in_path(source.id, label.path)
                        if a.kind == "Symbol"
                        and a.qualified_name == label.caller
                        and a.start_line <= label.line <= a.end_line
                    ]
                    on_line = [
                        rel
                        for caller in callers
                        for _, rel in store.relations_from([caller.id], ["calls"])
                        if rel.line == label.line
                    ]
                    edges = [rel for rel in on_line if rel.target == label.callee]
                    if not edges:
                        # a resolved call is stored under its definition's name (`wrap: wrap_`
                        # imported, `wrap_()` called: the edge targets `wrap`)
                        renamed = [rel for rel in on_line if rel.hint not in ("", "?")]
                        edges = renamed if len(renamed) == 1 else []
                    for config in ("before", "after, resolved", "after, all", f"after, all: {label.language}"):
                        linked: set[str] = set()
                        for caller in callers:
                            for rel in edges:
                                before = config == "before"  # the bare name as written
                                name = label.callee if before else rel.target
                                rows, how = linker.link(name, rel.hint, caller, CALLABLE, names_only=before)
                                if config == "after, resolved" and how != "resolved":
                                    continue
                                linked.update(f"{r.path}::{r.qualified_name}" for r in rows)
                        if verbose and config in ("before", "after, all") and linked != label.gold:
                            where = f"{label.path}:{label.line} {label.callee}"
                            print(f"{config:10} {where}: {sorted(linked)} want {sorted(label.gold)}")
                        t = tallies[config]
                        t[0] += len(linked)
                        t[1] += len(linked & label.gold)
                        t[2] += bool(label.gold)
                        t[3] += bool(label.gold and linked & label.gold)
        finally:
            store.close()
    return {
        config: {
            "links": t[0],
            "precision": t[1] / t[0] if t[0] else 0.0,
            "recall": t[3] / t[2] if t[2] else 0.0,
            "edges_with_gold": t[2],
        }
        for config, t in tallies.items()
    }


def table(results: dict[str, dict[str, float]], labels: list[Label]) -> str:
    by_language: dict[str, int] = defaultdict(int)
    for label in labels:
        by_language[label.language] += 1
    sample = ", ".join(f"{lang} {n}" for lang, n in sorted(by_language.items()))
    rows = [
        f"{len(labels)} labelled call edges ({sample}); "
        f"{sum(bool(x.gold) for x in labels)} reach a definition in the corpus, the rest none.",
        "",
        "| edges linked by | links | precision | recall |",
        "|---|---|---|---|",
    ]
    order = ["before", "after, resolved", "after, all", *sorted(k for k in results if k.startswith("after, all: "))]
    names = {"before": "bare name (before)", "after, resolved": "resolved only (after)", "after, all": "all (after)"}
    for config in order:
        r = results[config]
        label = names.get(config, config.replace("after, all: ", "all (after), "))
        rows.append(f"| {label} | {r['links']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} |")
    return "\n".join(rows)


def section(corpora: Path, only: list[str] | None = None) -> list[str]:
    """The call-graph section of bench/REPORT.md: both samples, bare name vs resolved."""
    lines = [
        "## Call-edge precision and recall (issue 17)",
        "",
        "Labelled call sites drawn at random from the bench corpora (`bench/calls/*.tsv`, labelled by reading",
        "the code), each linked twice in this run: by bare name, as every edge was before, and through the",
        "parser's hints (imports, `self`/`this`, receiver types, same module; `python bench/calls.py`).",
        "Precision: linked definitions that are right / all linked; recall: edges reaching a definition in",
        "the corpus that link it / those edges. `labels.tsv` is the sample the resolver was developed",
        "against; `heldout.tsv` was drawn (another seed, two more corpora) after it was frozen.",
    ]
    for path in (LABELS, HELDOUT):
        labels = [x for x in read_labels(path) if (corpora / x.corpus).is_dir() and (not only or x.corpus in only)]
        if labels:
            lines += ["", f"### `{path.name}`", "", table(score(corpora, labels), labels)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=HERE / "corpora")
    parser.add_argument("--labels", type=Path, action="append", help=f"default: {LABELS.name} and {HELDOUT.name}")
    parser.add_argument("--seed", type=int, default=SEED, help="of --draft")
    parser.add_argument("--draft", action="append", default=[], help="CORPUS:COUNT call sites to label")
    parser.add_argument("--verbose", action="store_true", help="print every edge linked differently from its label")
    args = parser.parse_args()
    files = args.labels or [LABELS, HELDOUT]
    if args.draft:
        seen = {(x.corpus, x.path, x.line) for f in files if f.exists() for x in read_labels(f)}
        for spec in args.draft:
            draft(args.corpora, spec, args.seed, seen)
        return
    if not args.corpora.is_dir():
        fetch = os.path.relpath(REPO.parent / "shared/bench/fetch_corpora.py")
        sys.exit(f"no corpora at {args.corpora}: run python {fetch} --dest {args.corpora}")
    for path in files:
        labels = read_labels(path)
        print(f"### {path.name}\n")
        print(table(score(args.corpora, labels, verbose=args.verbose), labels))
        print()


if __name__ == "__main__":
    main()
