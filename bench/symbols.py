"""The symbol-extraction audit (issue 17): per language, the share of labelled definitions the
parser extracts with the right kind and qualified name.

    python bench/symbols.py            # the table (Markdown)
    python bench/symbols.py --verbose  # and every miss, and what the parser made of the file

The samples live in tests/fixtures/audit/<language>/ (``sample.*`` in the idioms the language
really uses, ``expected.tsv`` the labels); tests/unit/test_symbol_audit.py holds every language
to the same bar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from golden import AUDIT, audit, parse_sample  # noqa: E402


def section() -> list[str]:
    """The symbol-extraction section of bench/REPORT.md."""
    return [
        "## Symbol extraction per language (issue 17)",
        "",
        "Per language, a sample written in the idioms the language really uses (tests/fixtures/audit/), each",
        "definition labelled with its kind and qualified name; the share the parser extracts exactly so",
        "(`python bench/symbols.py`; tests/unit/test_symbol_audit.py holds each language to 95 %).",
        "",
        table(verbose=False),
    ]


def table(*, verbose: bool) -> str:
    rows = ["| language | labelled definitions | extracted right | share |", "|---|---|---|---|"]
    total_found = total = 0
    for lang_dir in sorted(p for p in AUDIT.iterdir() if p.is_dir()):
        found, count, misses = audit(lang_dir)
        total_found += found
        total += count
        rows.append(f"| {lang_dir.name} | {count} | {found} | {found / count:.0%} |")
        if verbose and misses:
            print(f"## {lang_dir.name}: missed {misses}")
            print("   extracted:", [(s.kind, s.qualified_name) for s in parse_sample(lang_dir)[1].symbols])
    rows.append(f"| all | {total} | {total_found} | {total_found / total:.1%} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    print(table(verbose=args.verbose))


if __name__ == "__main__":
    main()
