"""Where repolens.embeddings.wordpiece and the ``tokenizers`` library disagree, over every code point.

    python scripts/wordpiece_unicode.py [--tokenizer path/to/tokenizer.json]

Runs the library's normaliser and pre-tokenizer and the module's on each code point (between two
letters, so the pre-tokenizer's splits show) and prints the ranges where they differ, as the
``_LIBRARY_ONLY_TEXT`` constant of ``wordpiece.py``: texts holding such a character are tokenized by the
library. Run it again after a Python or ``tokenizers`` upgrade (tests/unit/test_wordpiece.py fails
when the list no longer covers every difference), and update ``UNICODE_VERSION`` with it.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from repolens.embeddings.wordpiece import normalize, pre_tokenize  # noqa: E402

SHIPPED = REPO / "src" / "repolens" / "embeddings" / "models" / "static-minilm-code" / "tokenizer.json"


def differing(tokenizer_json: Path) -> list[int]:
    """Code points whose normalised form or pre-tokenized words differ between the library and the module."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    norm, pre = tokenizer.normalizer, tokenizer.pre_tokenizer
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates: not text the library can be given
        text = f"a{chr(cp)}a"
        theirs = norm.normalize_str(text)
        ours = normalize(text)
        if theirs != ours or [w for w, _ in pre.pre_tokenize_str(theirs)] != pre_tokenize(ours):
            out.append(cp)
    return out


def ranges(points: list[int]) -> list[tuple[int, int]]:
    """Consecutive code points as (first, last) ranges."""
    out: list[tuple[int, int]] = []
    for cp in points:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, default=SHIPPED)
    args = parser.parse_args()
    points = differing(args.tokenizer)
    spans = ranges(points)
    print(f"# unicodedata {unicodedata.unidata_version}: {len(points)} code points in {len(spans)} ranges")
    items = [f"{a:04X}" if a == b else f"{a:04X}-{b:04X}" for a, b in spans]
    print('_LIBRARY_ONLY_TEXT = """')
    line: list[str] = []
    for item in items:
        if sum(len(i) + 1 for i in line) + len(item) > 110:
            print(" ".join(line))
            line = []
        line.append(item)
    print(" ".join(line))
    print('"""')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
