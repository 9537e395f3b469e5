"""Ranking priors: named constants with their reasons, and small pure functions.

The values were tuned on the benchmark in ``bench/`` (see bench/REPORT.md for the ablation;
``bench/tune.py`` is the coordinate search that last moved them, accepting a value only when it
helped both halves of the corpora); each says why it exists so that the next tuning pass knows
what it is moving.
"""

from __future__ import annotations

import re

# Reciprocal-rank-fusion constant. Cormack et al. (2009) use 60 for long web rankings; our
# lists are short and their heads matter most: 10 measured +0.016 NDCG@10 over 60, 5 another +0.001.
RRF_K = 5

# Fusion weights per query type: identifiers are matched best lexically, questions benefit
# more from the embedder's paraphrase knowledge.
LEXICAL_WEIGHT_SYMBOL = 0.7
LEXICAL_WEIGHT_NATURAL = 0.6  # was 0.4 before the file-level weights below were lowered
FILE_LEXICAL_WEIGHT = 0.3  # whole-file BM25 rank: term co-occurrence across a file is strong evidence
FILE_VECTOR_WEIGHT = 0.15  # the file's best unit similarity, ranked among files
FILE_SUMMARY_WEIGHT = 0.3  # rank of the file summary vector among files (0.6 and 1.2 measured worse)
COHERENCE_WEIGHT = 0.4  # share of the file's summed unit scores (many matching units = on topic)

DEFINITION_BOOST = 3.0  # x max score: the definition of a queried symbol belongs on top
DEFINITION_STEM_BONUS = 1.5  # ...and more so when the file is named after it
DEFINITION_CASE_MISMATCH = 0.6  # `queuepool` still finds QueuePool, a little less surely
EMBEDDED_IDENTIFIER_FACTOR = 0.5  # identifiers inside a sentence are a hint, not the question
MANY_DEFINITIONS = 8  # a name defined this often (``__init__``) says little on its own
PATH_KEYWORD_BOOST = 0.5  # x max score x share of query keywords found in the file's path
PATH_KEYWORD_MIN_SHARE = 0.1

STRONG_PENALTY = 0.3  # tests, examples, compat shims, vendored copies: rarely the answer
MODERATE_PENALTY = 0.6  # package re-export files (__init__.py, index.js, mod.rs)
MILD_PENALTY = 0.5  # declaration stubs (.d.ts, .pyi) and prose: useful, secondary
FILE_SATURATION_DECAY = 0.5  # each further hit from one file is worth half the previous

_TEST_FILE = re.compile(
    r"(^|/)(test_[^/]*|[^/]*_test\.\w+|[^/]*_spec\.rb|[^/]*\.(test|spec)\.[jt]sx?|[^/]*Tests?\.(java|kt|cs|swift|php)"
    r"|[^/]*(Spec|Suite)\.(scala|kt|swift)|conftest\.py)$"
)
_TEST_DIR = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testing|testdata|fixtures)/")
_SECONDARY_DIR = re.compile(
    r"(^|/)(examples?|_examples?|samples?|docs_src|compat|_compat|legacy|vendor|third_party|benchmarks?)/"
)
_REEXPORT = re.compile(r"(^|/)(__init__\.py|package-info\.java)$")
_STUB = re.compile(r"(\.d\.ts|\.pyi)$")
_PROSE = re.compile(r"\.(md|rst|txt|markdown|adoc)$|(^|/)(CHANGES|CHANGELOG|HISTORY|NEWS)[^/]*$", re.IGNORECASE)


def path_prior(path: str) -> float:
    """Multiplicative prior of a file from its path alone (1.0 = neutral)."""
    factor = 1.0
    if _TEST_FILE.search(path) or _TEST_DIR.search(path):
        factor *= STRONG_PENALTY
    if _SECONDARY_DIR.search(path):
        factor *= STRONG_PENALTY
    if _REEXPORT.search(path):
        factor *= MODERATE_PENALTY
    if _STUB.search(path) or _PROSE.search(path):
        factor *= MILD_PENALTY
    return factor


def rrf(rank: int) -> float:
    """Reciprocal-rank score of a 0-based rank."""
    return 1.0 / (RRF_K + rank + 1)


def stem_of(path: str) -> str:
    """File name without directories and extensions."""
    name = path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def _norm(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def stem_matches(stem: str, name: str) -> bool:
    """Whether a file stem names the symbol (exact, ignoring case, `_` and a plural s)."""
    a, b = _norm(stem), _norm(name)
    return bool(a) and (a == b or a.rstrip("s") == b.rstrip("s"))


def keyword_share(path: str, keywords: tuple[str, ...], split: list[str]) -> float:
    """Share of ``keywords`` that match a component of the file stem or its directory.

    ``split`` holds the lower-case parts of the stem and parent directory. A keyword
    matches a part exactly or as a prefix (either way, the shorter at least 4 chars), so
    "dependency" matches "dependencies" and "serialize" matches "serializer".
    """
    if not keywords:
        return 0.0
    hits = 0
    for kw in keywords:
        for part in split:
            shorter = min(len(kw), len(part))
            if kw == part or (shorter >= 4 and (part.startswith(kw[:shorter]) and kw.startswith(part[:shorter]))):
                hits += 1
                break
    return hits / len(keywords)
