"""Ranking priors: named constants with their reasons, and small pure functions.

The values were tuned on the benchmark in ``bench/`` (see bench/REPORT.md for the ablation;
``bench/tune.py`` is the coordinate search that last moved them, accepting a value only when it
helped both halves of the corpora); each says why it exists so that the next tuning pass knows
what it is moving.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from repolens.domain import CONTAINER_KINDS, DECLARATION_FILES, IMPORTS_CHUNK, is_declaration
from repolens.parsing.tokens import split_identifier

if TYPE_CHECKING:
    from repolens.domain import Artifact
    from repolens.retrieval.query import QueryAnalysis

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

# Issue reports (retrieval/report.py). Evidence is added in units of a first rank, rrf(0).
# A constant piece of an error message found verbatim in a file: the raising or formatting code.
MESSAGE_FILE_WEIGHT = 1.0
MESSAGE_UNIT_WEIGHT = 1.0  # ...and the symbol whose lines hold it
FRAME_FILE_WEIGHT = 0.3  # a file of the stack trace: on the path to the failure, usually a caller
# The names a report shows (its exception classes, trace functions, API calls) are mostly the
# user-facing entry points, callers of the code to fix: their definitions are a weak hint.
REPORT_IDENTIFIER_FACTOR = 0.3

# The exact symbol. A declaration (overload stub, abstract or interface method, prototype:
# marked by the parser) repeats the implementation's name and signature without its code, so as
# a definition of a queried name it counts half unless the query asks for declarations (stub
# files already have MILD_PENALTY). For a question, an interface can be the answer: no penalty.
DECLARATION_PENALTY = 0.5
# An import-only chunk names definitions that live elsewhere: it never ranks above a definition
# of a queried name. (Down-weighting it for every query cost 0.002 NDCG@10 on questions: a
# file's imports are evidence of what the file does, "log statements through a PSR logger".)
BELOW = 0.999  # "just below": the factor that orders two scores without moving either far
# A container (class, module, ...) indexes its members' names, so it matches whatever they
# match; when one of its own members answers the query at least this share as well as the
# container does (fused unit score), the member is the more specific answer and goes first.
MEMBER_SHARE = 0.5

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


@dataclass(frozen=True, slots=True)
class Evidence:
    """Evidence beyond the ranked lists, found by reading candidates (issue reports).

    ``files`` and ``units`` map a file id or an artifact id to a weight in units of rrf(0).
    """

    files: dict[int, float] = field(default_factory=dict)
    units: dict[int, float] = field(default_factory=dict)


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


# rrf of the ranks candidate lists reach (LEXICAL_CANDIDATES and the others are a few hundred at most),
# computed once: ``score`` looks ~500 of them up per search, where calling ``rrf`` was ~5 % of a query.
_RRF_TABLE = tuple(rrf(rank) for rank in range(1024))


def _rrf_table(*lists: Sequence[object]) -> Sequence[float]:
    """rrf of every rank of the longest of ``lists`` (the same floats as ``rrf``)."""
    longest = max(map(len, lists), default=0)
    return _RRF_TABLE if longest <= len(_RRF_TABLE) else [rrf(rank) for rank in range(longest)]


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
    matches a part exactly or when the shorter of the two (at least 4 chars) is a prefix of
    the longer, so "serialize" matches "serializer" and "pool" matches "pooling" (but
    "dependency" does not match "dependencies").
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


def score(
    analysis: QueryAnalysis,
    rows: dict[int, Artifact],
    lex_units: list[tuple[int, float]],
    lex_files: list[tuple[int, float]],
    vec_units: list[tuple[int, float]],
    vec_files: list[tuple[int, float]],
    definitions: list[Artifact],
    *,
    rerank: bool,
    evidence: Evidence | None = None,
) -> dict[int, tuple[float, dict[str, float]]]:
    """Fused score and the signals behind it for each candidate unit (pure: tables in, table out).

    ``lex_units``/``vec_units`` are (artifact id, score) lists in rank order, ``lex_files``/``vec_files``
    (file id, score) lists; ``definitions`` are the symbols named like the query's identifiers.
    Without ``rerank`` the result is the plain weighted reciprocal-rank fusion.
    """
    w_lex = LEXICAL_WEIGHT_SYMBOL if analysis.is_symbol else LEXICAL_WEIGHT_NATURAL
    if not vec_units:
        w_lex = 1.0
    elif not lex_units:
        w_lex = 0.0
    ranked = _rrf_table(lex_units, vec_units, lex_files, vec_files, [0])
    signals: dict[int, dict[str, float]] = defaultdict(dict)
    unit_score: dict[int, float] = defaultdict(float)
    for rank, (a, _) in enumerate(lex_units):
        if a in rows:
            unit_score[a] += w_lex * ranked[rank]
            signals[a]["lexical_rank"] = rank + 1
    w_vec = 1.0 - w_lex
    for rank, (a, sim) in enumerate(vec_units):
        if a in rows:
            unit_score[a] += w_vec * ranked[rank]
            sig = signals[a]
            sig["vector_rank"] = rank + 1
            sig["similarity"] = round(sim, 4)
    for d in definitions:
        if d.id in rows:
            unit_score.setdefault(d.id, 0.0)
    if evidence is not None and rerank:
        for a, weight in evidence.units.items():
            if a in rows:
                unit_score[a] += weight * ranked[0]
                signals[a]["message"] = weight
    if not rerank:
        return {a: (s, signals[a]) for a, s in unit_score.items() if s > 0}

    # File-level evidence: whole-file BM25 rank, best vector rank among the file's units,
    # and how much of the candidate mass the file holds.
    file_score: dict[int, float] = defaultdict(float)
    for rank, (f, _) in enumerate(lex_files):
        file_score[f] += FILE_LEXICAL_WEIGHT * ranked[rank]
    seen_files: set[int] = set()
    file_rank = 0
    for a, _ in vec_units:
        row = rows.get(a)
        if row is None or row.file_id in seen_files:
            continue
        seen_files.add(row.file_id)
        file_score[row.file_id] += FILE_VECTOR_WEIGHT * ranked[file_rank]
        file_rank += 1
    for rank, (f, _) in enumerate(vec_files):
        file_score[f] += FILE_SUMMARY_WEIGHT * ranked[rank]
    if evidence is not None:
        for f, weight in evidence.files.items():
            file_score[f] += weight * ranked[0]
    mass: dict[int, float] = defaultdict(float)
    for a, s in unit_score.items():
        mass[rows[a].file_id] += s
    max_mass = max(mass.values(), default=0.0) or 1.0
    for f, m in mass.items():
        file_score[f] += COHERENCE_WEIGHT * ranked[0] * (m / max_mass)

    base_max = max(unit_score.values(), default=0.0) or ranked[0]
    final: dict[int, tuple[float, dict[str, float]]] = {}
    def_names = {n.lower() for n in analysis.identifiers}
    def_exact = set(analysis.identifiers)
    definition_count = len(definitions)
    # Path-derived factors once per file: the candidates of a query come from a few dozen files.
    path_factors: dict[int, tuple[float, float]] = {}
    wants_share = not analysis.is_symbol and bool(analysis.keywords)
    keywords = analysis.keywords
    for a, base in unit_score.items():
        row = rows[a]
        sig = signals[a]
        file_id = row.file_id
        score = base + file_score.get(file_id, 0.0)
        if def_names and row.kind == "Symbol" and (row.name.lower() in def_names or row.qualified_name.lower() in def_names):
            boost = DEFINITION_BOOST * base_max
            if not analysis.is_symbol:
                boost *= EMBEDDED_IDENTIFIER_FACTOR
            if analysis.report is not None:
                boost *= REPORT_IDENTIFIER_FACTOR
            if row.name not in def_exact and row.qualified_name not in def_exact:
                boost *= DEFINITION_CASE_MISMATCH
            if stem_matches(stem_of(row.path), row.name):
                boost *= DEFINITION_STEM_BONUS
            if definition_count > MANY_DEFINITIONS:
                boost *= MANY_DEFINITIONS / definition_count
            if row.parent and row.symbol_kind == "method" and analysis.is_symbol:
                boost *= 0.8  # a top-level definition of the name beats a same-named method
            score += boost
            sig["definition"] = round(boost, 4)
        factors = path_factors.get(file_id)
        if factors is None:
            share = _keyword_share(row.path, keywords) if wants_share else 0.0
            factors = path_factors[file_id] = (share, _path_prior(row.path))
        share, prior = factors
        if share >= PATH_KEYWORD_MIN_SHARE:
            bonus = PATH_KEYWORD_BOOST * base_max * share
            score += bonus
            sig["path"] = round(bonus, 4)
        if prior != 1.0:
            score *= prior
            sig["prior"] = prior
        if (
            "definition" in sig
            and not analysis.wants_declarations
            and not row.path.endswith(DECLARATION_FILES)
            and is_declaration(row.path, row.symbol_kind, row.signature)
        ):
            score *= DECLARATION_PENALTY
            sig["declaration"] = DECLARATION_PENALTY
        if score > 0:
            final[a] = (score, sig)
    _imports_below_definitions(final, rows)
    _members_before_containers(final, rows, unit_score)
    return final


def _imports_below_definitions(final: dict[int, tuple[float, dict[str, float]]], rows: dict[int, Artifact]) -> None:
    """Cap import-only chunks just below the weakest definition of a queried name (in place)."""
    floor = min((s for s, sig in final.values() if "definition" in sig), default=None)
    if floor is None:
        return
    for a, (s, sig) in list(final.items()):
        row = rows[a]
        if row.kind == "Chunk" and row.symbol_kind == IMPORTS_CHUNK and s >= floor:
            final[a] = (floor * BELOW, {**sig, "imports": 1.0})


def _members_before_containers(
    final: dict[int, tuple[float, dict[str, float]]], rows: dict[int, Artifact], unit_score: dict[int, float]
) -> None:
    """Put a container's best member before it when the member answers the query nearly as well (in place).

    The two trade scores, so the file keeps its place and only the order inside it changes.
    A container that is itself the queried definition keeps its place over members that are not.
    """
    containers = {
        (row.file_id, row.qualified_name): a
        for a, row in rows.items()
        if a in final and row.kind == "Symbol" and row.symbol_kind in CONTAINER_KINDS
    }
    if not containers:
        return
    best: dict[int, int] = {}
    for a, row in rows.items():
        if a not in final or row.kind != "Symbol" or not row.parent:
            continue
        c = containers.get((row.file_id, row.parent))
        if c is not None and (c not in best or unit_score[a] > unit_score[best[c]]):
            best[c] = a
    for c, m in best.items():
        (c_score, c_sig), (m_score, m_sig) = final[c], final[m]
        if m_score >= c_score or unit_score[m] < MEMBER_SHARE * unit_score[c]:
            continue
        if "definition" in c_sig and "definition" not in m_sig:
            continue
        final[m] = (c_score, {**m_sig, "specific": 1.0})
        final[c] = (m_score if m_score < c_score * BELOW else c_score * BELOW, c_sig)


@lru_cache(maxsize=1 << 16)
def _path_parts(path: str) -> list[str]:
    pieces = path.split("/")
    stem = stem_of(path)
    parent = pieces[-2] if len(pieces) > 1 else ""
    parts = [stem.lower(), *split_identifier(stem)]
    if parent:
        parts += [parent.lower(), *split_identifier(parent)]
    return parts


@lru_cache(maxsize=1 << 16)
def _keyword_share(path: str, keywords: tuple[str, ...]) -> float:
    return keyword_share(path, keywords, _path_parts(path))


@lru_cache(maxsize=1 << 16)
def _path_prior(path: str) -> float:
    return path_prior(path)


def clear_caches() -> None:
    """Forget memoised path priors and keyword shares (after changing the constants above)."""
    _path_prior.cache_clear()
    _keyword_share.cache_clear()


def diverse_top(
    scored: dict[int, tuple[float, dict[str, float]]],
    file_of: dict[int, int],
    limit: int,
    *,
    decay: bool,
) -> list[tuple[int, float, dict[str, float]]]:
    """Greedy top-k where the n-th hit from one file counts ``FILE_SATURATION_DECAY**(n-1)``.

    Lazy evaluation: a popped entry whose file gained hits since it was pushed is pushed
    back with its decayed score; decayed scores only fall, so the greedy order is exact.
    """
    if not decay:
        ordered = sorted(scored.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [(a, s, sig) for a, (s, sig) in ordered[:limit]]
    per_file: dict[int, int] = defaultdict(int)
    heap = [(-s, a, 0) for a, (s, _) in scored.items()]
    heapq.heapify(heap)
    picked: list[tuple[int, float, dict[str, float]]] = []
    while heap and len(picked) < limit:
        neg, a, seen_count = heapq.heappop(heap)
        f = file_of[a]
        if per_file[f] != seen_count:
            base = scored[a][0]
            heapq.heappush(heap, (-base * FILE_SATURATION_DECAY ** per_file[f], a, per_file[f]))
            continue
        per_file[f] += 1
        picked.append((a, -neg, scored[a][1]))
    picked.sort(key=lambda t: (-t[1], t[0]))
    return picked
