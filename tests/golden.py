"""Golden files for the parser: ``tests/fixtures/languages/<lang>/`` holds one source file
(``sample.<ext>``) and ``expected.json`` with the symbols (and, where checked, relations)
that parsing must produce.

Regenerate a draft with ``python tests/golden.py LANG`` after changing a query, then read
every line of the diff against the source before committing it: the file is the spec.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from repolens.domain import ParsedFile, SourceFile
from repolens.parsing.parse import parse_file
from repolens.sources.filters import content_hash
from repolens.sources.languages import language_of

FIXTURES = Path(__file__).parent / "fixtures" / "languages"


def sample_path(lang_dir: Path) -> Path:
    """The single ``sample.*`` source file of a golden directory."""
    (path,) = sorted(lang_dir.glob("sample.*"))
    return path


def parse_sample(lang_dir: Path) -> tuple[str | None, ParsedFile]:
    """Parse the sample file the way the indexer would."""
    path = sample_path(lang_dir)
    data = path.read_bytes()
    text = data.decode("utf-8")
    language = language_of(path.name, text.split("\n", 1)[0])
    file = SourceFile(path.name, text, len(data), content_hash(data), language)
    return language, parse_file(file)


def render(parsed: ParsedFile, *, with_relations: bool) -> dict[str, Any]:
    """The comparable form of a parse: symbols as rows, relations as sorted rows."""
    out: dict[str, Any] = {
        "symbols": [[s.kind, s.qualified_name, s.start_line, s.end_line, s.parent] for s in parsed.symbols],
        "docs": {s.qualified_name: s.doc.split("\n", 1)[0] for s in parsed.symbols if s.doc},
    }
    if with_relations:
        # one row per (source, kind, target): calls on different receivers differ only in their hint
        rows = {(r.source or "", r.kind, r.target) for r in parsed.relations if r.kind != "references"}
        out["relations"] = sorted(list(row) for row in rows)
    return out


if __name__ == "__main__":
    for lang in (a for a in sys.argv[1:] if not a.startswith("--")):
        directory = FIXTURES / lang
        expected_file = directory / "expected.json"
        previous = json.loads(expected_file.read_text()) if expected_file.exists() else {}
        _, parsed = parse_sample(directory)
        rendered = render(parsed, with_relations="relations" in previous or "--relations" in sys.argv)
        expected_file.write_text(json.dumps(rendered, indent=1) + "\n")
        print(f"wrote {expected_file}")


AUDIT = Path(__file__).parent / "fixtures" / "audit"


def audit(lang_dir: Path) -> tuple[int, int, list[str]]:
    """(labelled definitions extracted with the right kind and qualified name, labelled
    definitions, the misses) for one directory of the symbol-extraction audit: ``sample.*``
    written in the idioms the language really uses, ``expected.tsv`` one ``kind<TAB>qualified``
    row per definition (a name defined twice is listed twice)."""
    _, parsed = parse_sample(lang_dir)
    wanted = [
        (kind, qualified)
        for kind, qualified in (line.split("\t") for line in (lang_dir / "expected.tsv").read_text().splitlines() if line)
    ]
    have: dict[tuple[str, str], int] = {}
    for s in parsed.symbols:
        have[(s.kind, s.qualified_name)] = have.get((s.kind, s.qualified_name), 0) + 1
    found, misses = 0, []
    for key in wanted:
        if have.get(key, 0) > 0:
            have[key] -= 1
            found += 1
        else:
            misses.append(f"{key[0]} {key[1]}")
    return found, len(wanted), misses
