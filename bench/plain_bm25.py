"""The plain BM25 baseline of the benchmark: the field's "BM25 raw" anchor, rebuilt here.

../shared/specs/retrieval.md (a1, c1) describes it: semble's tokenizer (identifiers by regex,
lower-cased compound plus its snake/camel parts, no stemming, no stop words), chunk-level
documents of about 750 characters with the file stem twice and the last three directory names
appended, BM25 with k1 = 1.5, b = 0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and no
(k1 + 1) factor; ranks over chunks, a file counted at its first chunk. It scores 0.675 on
semble's own benchmark. Nothing of repolens is used: it is the baseline, not a configuration.

Chunks here are greedy packs of whole lines up to 750 characters (semble packs AST nodes to the
same size, falling back to lines without a grammar); a line longer than that is its own chunk.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import PurePosixPath

K1 = 1.5
B = 0.75
CHUNK_CHARS = 750
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def tokens(text: str) -> list[str]:
    """semble's tokenizer: each identifier lower-cased, then its parts when it has several."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        out.append(ident.lower())
        parts = [p.lower() for piece in ident.split("_") if piece for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            out.extend(parts)
    return out


def chunks(text: str) -> Iterable[str]:
    """Whole lines packed greedily up to ``CHUNK_CHARS``."""
    pending: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        if pending and size + len(line) > CHUNK_CHARS:
            yield "".join(pending)
            pending, size = [], 0
        pending.append(line)
        size += len(line)
    if pending:
        yield "".join(pending)


def enrichment(path: str) -> str:
    """The path words semble appends to every chunk: stem twice, last three directories."""
    p = PurePosixPath(path)
    stem = p.name.split(".", 1)[0]
    return f" {stem} {stem} " + " ".join(p.parent.parts[-3:])


class PlainBM25:
    """A chunk-level inverted index over one corpus's files."""

    def __init__(self, files: Iterable[tuple[str, str]]) -> None:
        self.paths: list[str] = []
        self.lengths: list[int] = []
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for path, text in files:
            extra = enrichment(path)
            for chunk in chunks(text):
                doc = len(self.paths)
                counts = Counter(tokens(chunk + extra))
                self.paths.append(path)
                self.lengths.append(sum(counts.values()))
                for term, tf in counts.items():
                    self.postings[term].append((doc, tf))
        self.avgdl = sum(self.lengths) / max(1, len(self.lengths))

    def search(self, query: str, k: int) -> list[str]:
        """File paths in the order of their best chunk, at most ``k``."""
        n = len(self.paths)
        scores: dict[int, float] = defaultdict(float)
        for term, qtf in Counter(tokens(query)).items():
            posting = self.postings.get(term, [])
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for doc, tf in posting:
                norm = K1 * (1 - B + B * self.lengths[doc] / self.avgdl)
                scores[doc] += qtf * idf * tf / (norm + tf)
        ranked: list[str] = []
        for doc, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
            if score <= 0:
                break
            if self.paths[doc] not in ranked:
                ranked.append(self.paths[doc])
                if len(ranked) == k:
                    break
        return ranked
