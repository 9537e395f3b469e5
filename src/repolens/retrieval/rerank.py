"""Ranking priors: named constants with their reasons, and small pure functions.

The values were tuned on the benchmark in ``bench/`` (see bench/REPORT.md for the ablation;
``bench/tune.py`` is the coordinate search that last moved them, accepting a value only when it
helped both halves of the corpora); each says why it exists so that the next tuning pass knows
what it is moving.
"""

from __future__ import annotations

import heapq
import operator
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import count
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

_first = operator.itemgetter(0)

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


class Scored(Mapping[int, tuple[float, dict[str, float]]]):
    """The fused score of each candidate unit, and the signals behind it on demand.

    A search scores a few hundred candidates and returns ten: the signals (ranks, boosts, priors
    rounded for display) are built only for the units asked for, from what ``score`` kept. As a
    mapping it reads like the table it replaced: unit id -> (score, signals).
    """

    __slots__ = (
        "_bonus",
        "_boost",
        "_declared",
        "_evidence",
        "_imports",
        "_lex_rank",
        "_lex_units",
        "_prior",
        "_specific",
        "_vec_rank",
        "_vec_units",
        "file_of",
        "scores",
    )

    def __init__(
        self,
        scores: dict[int, float],
        file_of: dict[int, int],
        lex_units: list[tuple[int, float]],
        vec_units: list[tuple[int, float]],
        evidence: Evidence | None,
    ) -> None:
        self.scores = scores  # unit id -> final score (> 0), before the file-diverse cut
        self.file_of = file_of  # unit id -> file id, for every candidate
        self._lex_units = lex_units
        self._vec_units = vec_units
        self._evidence = evidence  # None unless reranked
        self._lex_rank: dict[int, int] | None = None  # built on the first ``signals`` call
        self._vec_rank: dict[int, int] | None = None
        self._boost: dict[int, float] = {}  # unit -> its definition boost
        self._bonus: dict[int, float] = {}  # file -> its path-keyword bonus
        self._prior: dict[int, float] = {}  # file -> its path prior, when not 1.0
        self._declared: set[int] = set()
        self._imports: set[int] = set()
        self._specific: set[int] = set()

    def signals(self, a: int) -> dict[str, float]:
        """Why unit ``a`` scored as it did (the keys a search hit shows, in the order they were added)."""
        if self._lex_rank is None:
            # id -> rank tables built without a Python loop (a later duplicate would win, as it did
            # when each rank was written as it was read).
            self._lex_rank = dict(zip(map(_first, self._lex_units), count()))
            self._vec_rank = dict(zip(map(_first, self._vec_units), count()))
        assert self._vec_rank is not None
        sig: dict[str, float] = {}
        rank = self._lex_rank.get(a)
        if rank is not None:
            sig["lexical_rank"] = rank + 1
        rank = self._vec_rank.get(a)
        if rank is not None:
            sig["vector_rank"] = rank + 1
            sig["similarity"] = round(self._vec_units[rank][1], 4)
        if self._evidence is not None and a in self._evidence.units:
            sig["message"] = self._evidence.units[a]
        boost = self._boost.get(a)
        if boost is not None:
            sig["definition"] = round(boost, 4)
        f = self.file_of[a]
        bonus = self._bonus.get(f)
        if bonus is not None:
            sig["path"] = round(bonus, 4)
        prior = self._prior.get(f)
        if prior is not None:
            sig["prior"] = prior
        if a in self._declared:
            sig["declaration"] = DECLARATION_PENALTY
        if a in self._imports:
            sig["imports"] = 1.0
        if a in self._specific:
            sig["specific"] = 1.0
        return sig

    def top(self, limit: int, *, decay: bool) -> list[tuple[int, float, dict[str, float]]]:
        """The best ``limit`` units with their (decayed) scores and signals: ``diverse_top``."""
        return [(a, s, self.signals(a)) for a, s in diverse_top(self.scores, self.file_of, limit, decay=decay)]

    def __getitem__(self, a: int) -> tuple[float, dict[str, float]]:
        return self.scores[a], self.signals(a)

    def __iter__(self) -> Iterator[int]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)


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
) -> Scored:
    """Fused score of each candidate unit, its signals on demand (pure: tables in, table out).

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
    # No per-candidate objects, and as few passes over the ~300 candidates of a query as the sums
    # allow: building each one's signals (dicts, rounding) was most of the rerank's time. Each
    # ranked list holds distinct ids (rows of a table, ranked), so the lexical one only assigns.
    unit_score = {a: w_lex * ranked[rank] for rank, (a, _) in enumerate(lex_units) if a in rows}
    w_vec = 1.0 - w_lex
    for rank, (a, _) in enumerate(vec_units):
        if a in rows:
            unit_score[a] = unit_score.get(a, 0.0) + w_vec * ranked[rank]
    for d in definitions:
        if d.id in rows:
            unit_score.setdefault(d.id, 0.0)
    if evidence is not None and rerank:
        for a, weight in evidence.units.items():
            if a in rows:
                unit_score[a] = unit_score.get(a, 0.0) + weight * ranked[0]
    if not rerank:
        scored = {a: s for a, s in unit_score.items() if s > 0}
        return Scored(scored, {a: rows[a].file_id for a in unit_score}, lex_units, vec_units, None)

    # One pass over the candidates: each one's file, the candidate mass each file holds (summed in
    # candidate order), the symbols named like a queried identifier, and the symbols that contain
    # others or are contained (for ``_members_before_containers``).
    out = Scored({}, {}, lex_units, vec_units, evidence)
    file_of = out.file_of
    mass: dict[int, float] = {}
    path_of: dict[int, str] = {}
    def_names = {n.lower() for n in analysis.identifiers}
    named: list[tuple[int, Artifact]] = []
    containers: list[int] = []  # symbols of a container kind
    members: list[int] = []  # symbols with a parent
    for a, s in unit_score.items():
        row = rows[a]
        f = file_of[a] = row.file_id
        if f in mass:
            mass[f] += s
        else:
            mass[f] = s
            path_of[f] = row.path
        if row.kind == "Symbol":
            if def_names and (row.name.lower() in def_names or row.qualified_name.lower() in def_names):
                named.append((a, row))
            if row.parent:
                members.append(a)
            if row.symbol_kind in CONTAINER_KINDS:
                containers.append(a)

    # File-level evidence: whole-file BM25 rank, best vector rank among the file's units,
    # and how much of the candidate mass the file holds.
    file_score: dict[int, float] = defaultdict(float)
    for rank, (f, _) in enumerate(lex_files):
        file_score[f] += FILE_LEXICAL_WEIGHT * ranked[rank]
    seen_files: set[int] = set()
    file_rank = 0
    for a, _ in vec_units:
        unit_file = file_of.get(a)
        if unit_file is None or unit_file in seen_files:
            continue
        seen_files.add(unit_file)
        file_score[unit_file] += FILE_VECTOR_WEIGHT * ranked[file_rank]
        file_rank += 1
    for rank, (f, _) in enumerate(vec_files):
        file_score[f] += FILE_SUMMARY_WEIGHT * ranked[rank]
    if evidence is not None:
        for f, weight in evidence.files.items():
            file_score[f] += weight * ranked[0]
    max_mass = max(mass.values(), default=0.0) or 1.0
    coherence = COHERENCE_WEIGHT * ranked[0]
    base_max = max(unit_score.values(), default=0.0) or ranked[0]
    path_boost = PATH_KEYWORD_BOOST * base_max
    wants_share = not analysis.is_symbol and bool(analysis.keywords)
    keywords = analysis.keywords
    # Per file (the candidates of a query come from a few dozen): its file score, path bonus, prior.
    factors: dict[int, tuple[float, float, float]] = {}
    for f, m in mass.items():
        file_score[f] += coherence * (m / max_mass)
        path = path_of[f]
        share = _keyword_share(path, keywords) if wants_share else 0.0
        bonus = 0.0
        if share >= PATH_KEYWORD_MIN_SHARE:
            bonus = out._bonus[f] = path_boost * share
        prior = _path_prior(path)
        if prior != 1.0:
            out._prior[f] = prior
        factors[f] = (file_score[f], bonus, prior)

    boosts = out._boost
    def_exact = set(analysis.identifiers)
    definition_count = len(definitions)
    for a, row in named:
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
        boosts[a] = boost
        if (
            not analysis.wants_declarations
            and not row.path.endswith(DECLARATION_FILES)
            and is_declaration(row.path, row.symbol_kind, row.signature)
        ):
            out._declared.add(a)

    # The same operations in the same order as a candidate at a time (+ file score, + definition
    # boost, + path bonus, x prior, x declaration penalty): adding 0.0 or multiplying by 1.0 where a
    # factor does not apply changes no bit, so skipping them leaves every score as it was.
    final = out.scores
    declared = out._declared
    for a, base in unit_score.items():
        file_part, bonus, prior = factors[file_of[a]]
        s = base + file_part
        if boosts and a in boosts:
            s += boosts[a]
        if bonus:
            s += bonus
        if prior != 1.0:
            s *= prior
        if declared and a in declared:
            s *= DECLARATION_PENALTY
        if s > 0:
            final[a] = s
    if boosts:
        _imports_below_definitions(out, rows)
    if containers and members:
        _members_before_containers(out, rows, containers, members, unit_score)
    return out


def _imports_below_definitions(scored: Scored, rows: dict[int, Artifact]) -> None:
    """Cap import-only chunks just below the weakest definition of a queried name (in place)."""
    final = scored.scores
    floor = min((final[a] for a in scored._boost if a in final), default=None)
    if floor is None:
        return
    for a, s in final.items():
        row = rows[a]
        if row.kind == "Chunk" and row.symbol_kind == IMPORTS_CHUNK and s >= floor:
            final[a] = floor * BELOW
            scored._imports.add(a)


def _members_before_containers(
    scored: Scored, rows: dict[int, Artifact], containers: list[int], members: list[int], unit_score: dict[int, float]
) -> None:
    """Put a container's best member before it when the member answers the query nearly as well (in place).

    The two trade scores, so the file keeps its place and only the order inside it changes.
    A container that is itself the queried definition keeps its place over members that are not.
    ``containers`` are the candidate symbols of a container kind, ``members`` those with a parent.
    """
    final = scored.scores
    found = [a for a in containers if a in final]
    if not found:
        return
    names = {rows[a].qualified_name for a in found}
    members = [a for a in members if rows[a].parent in names and a in final]
    if not members:
        return
    # Read in the order of ``rows``, which settles two containers of one name (the later wins), two
    # members of equal score (the earlier wins) and the order in which nested pairs trade.
    position = dict(zip(rows, count()))
    by_name: dict[tuple[int, str], int] = {}
    for a in sorted(found, key=position.__getitem__):
        row = rows[a]
        by_name[(row.file_id, row.qualified_name)] = a
    best: dict[int, int] = {}
    for a in sorted(members, key=position.__getitem__):
        row = rows[a]
        c = by_name.get((row.file_id, row.parent))
        if c is not None and (c not in best or unit_score[a] > unit_score[best[c]]):
            best[c] = a
    definitions = scored._boost
    for c, m in best.items():
        c_score, m_score = final[c], final[m]
        if m_score >= c_score or unit_score[m] < MEMBER_SHARE * unit_score[c]:
            continue
        if c in definitions and m not in definitions:
            continue
        final[m] = c_score
        scored._specific.add(m)
        final[c] = m_score if m_score < c_score * BELOW else c_score * BELOW


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


def diverse_top(scores: dict[int, float], file_of: dict[int, int], limit: int, *, decay: bool) -> list[tuple[int, float]]:
    """Greedy top-k (unit, score), best first (ties: lower id), where the n-th hit from one file
    counts ``FILE_SATURATION_DECAY**(n-1)`` of its score. Scores must be positive.

    Each file's units wait in a queue, best first; only the queues' heads compete, the head of the
    file that gave the last hit with one more decay, so k hits take k steps of a heap of files (a
    heap of every unit, pushed back when stale, took ~110 steps a query).
    """
    if limit <= 0:
        return []
    if not decay:
        return [(a, -neg) for neg, a in heapq.nsmallest(limit, zip(map(operator.neg, scores.values()), scores, strict=True))]
    # Each file's units best first (ties: lower id); then a heap of the files' heads.
    by_file: dict[int, list[tuple[float, int]]] = {}
    for a, s in scores.items():
        f = file_of[a]
        queue = by_file.get(f)
        if queue is None:
            by_file[f] = [(-s, a)]
        else:
            queue.append((-s, a))
    queues = list(by_file.values())
    heads: list[tuple[float, int, int, int]] = []
    for i, queue in enumerate(queues):
        if len(queue) > 1:
            queue.sort()
        neg, a = queue[0]
        heads.append((neg, a, i, 0))
    heapq.heapify(heads)
    picked: list[tuple[int, float]] = []
    while heads and len(picked) < limit:
        neg, a, i, n = heapq.heappop(heads)
        picked.append((a, -neg))
        queue = queues[i]
        n += 1
        if n < len(queue):
            neg, b = queue[n]
            heapq.heappush(heads, (neg * FILE_SATURATION_DECAY**n, b, i, n))
    # Taken in (-score, id) order already: a head pushed after a hit scores below that hit.
    return picked
