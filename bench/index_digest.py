"""What an index holds, as one digest per table: a speed change must leave every digest as it was.

    python bench/index_digest.py A.db                 # digests of one index
    python bench/index_digest.py A.db B.db            # compare two (exit 1 and the first differences if any)
    python bench/index_digest.py --tree DIR_A DIR_B   # every */repolens.db under DIR_A against DIR_B

Rows are compared by what they say, not by their row ids (files by path, artifacts by path and identifier):
the stored files (text included), artifacts, relations, every token instance of both full-text tables
(through ``fts5vocab``: term, document, column and position, so the unit and file search indexes are
compared posting by posting), the vectors by embed key and model, and each source's counts. Artifact ids
are compared too, as their order within each file (the store attributes a symbol's relations by it).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

SAMPLE = 5  # differing rows shown per table


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Canonical, sorted rows per table of the index at ``db``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("CREATE VIRTUAL TABLE temp.units_vocab USING fts5vocab(main, units_fts, instance)")
    conn.execute("CREATE VIRTUAL TABLE temp.files_vocab USING fts5vocab(main, files_fts, instance)")
    src = dict(conn.execute("SELECT id, name FROM sources"))
    paths = {fid: (src[sid], path) for fid, sid, path in conn.execute("SELECT id, source_id, path FROM files")}
    arts: dict[int, tuple[object, ...]] = {}
    order: dict[int, int] = {}
    per_file: dict[int, int] = {}
    for aid, fid, kind, ident in conn.execute(
        "SELECT id, file_id, kind, coalesce(ident, qualified_name) FROM artifacts ORDER BY id"
    ):
        arts[aid] = (*paths[fid], kind, ident)
        order[aid] = per_file.get(fid, 0)
        per_file[fid] = order[aid] + 1
    out: dict[str, list[tuple[object, ...]]] = {
        "sources": _sorted(conn.execute("SELECT name, file_count, artifact_count, state FROM sources")),
        "files": _sorted(
            (*paths[r[0]], *r[1:6], hashlib.sha256(zlib.decompress(r[6])).hexdigest())
            for r in conn.execute("SELECT id, language, sha, size, n_lines, parser, content FROM files")
        ),
        "artifacts": _sorted(
            (*arts[r[0]], order[r[0]], *r[1:])
            for r in conn.execute(
                "SELECT id, name, qualified_name, symbol_kind, parent, start_line, end_line, signature, doc, embed_key "
                "FROM artifacts"
            )
        ),
        "relations": _sorted(
            (*arts[r[0]], *r[1:]) for r in conn.execute("SELECT from_id, kind, target, line, hint FROM relations")
        ),
        "units_fts": _sorted(
            (arts[r[1]], *r[::2], r[3]) for r in conn.execute("SELECT term, doc, col, offset FROM units_vocab")
        ),
        "files_fts": _sorted(
            (paths[r[1]], *r[::2], r[3]) for r in conn.execute("SELECT term, doc, col, offset FROM files_vocab")
        ),
        "vectors": _sorted(conn.execute("SELECT v.embed_key, m.name, v.vec FROM vectors v JOIN models m ON m.id = v.model")),
    }
    conn.close()
    return out


def _sorted(items: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted((tuple(i) for i in items), key=repr)


def digest(table: list[tuple[object, ...]]) -> str:
    """A short hash of a table's canonical rows."""
    h = hashlib.sha256()
    for row in table:
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def compare(a: Path, b: Path) -> list[str]:
    """Differences between two indexes, table by table (empty when they hold the same)."""
    ra, rb = rows(a), rows(b)
    problems = []
    for table in ra:
        if ra[table] == rb[table]:
            continue
        sa, sb = set(ra[table]), set(rb[table])
        only_a, only_b = sorted(sa - sb, key=repr)[:SAMPLE], sorted(sb - sa, key=repr)[:SAMPLE]
        problems.append(f"{table}: {len(ra[table])} rows vs {len(rb[table])}; only in {a}: {only_a}; only in {b}: {only_b}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--tree", action="store_true", help="compare every */repolens.db under two folders")
    args = parser.parse_args()
    if len(args.paths) == 1:
        for table, items in rows(args.paths[0]).items():
            print(f"{table}: {len(items)} rows, {digest(items)}")
        return 0
    a, b = args.paths
    pairs = [(p, b / p.relative_to(a)) for p in sorted(a.rglob("repolens.db"))] if args.tree else [(a, b)]
    failed = 0
    for pa, pb in pairs:
        if not pb.exists():
            print(f"{pa.parent.relative_to(a)}: not in {b}")
            continue
        problems = compare(pa, pb)
        print(f"{pa.parent.relative_to(a) if args.tree else pa}: {'same' if not problems else 'DIFFERENT'}")
        for p in problems:
            print("   ", p[:2000])
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
