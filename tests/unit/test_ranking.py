"""Ranking from tables: query analysis, path priors, fusion, rerank and the file-diverse cut.

Pure functions over plain rows, no database and no model: each case is a row of a table, so a
change to a ranking constant shows up here as a named case that moved.
"""

from __future__ import annotations

import random

import pytest

from repolens.domain import IMPORTS_CHUNK, Artifact
from repolens.retrieval import rerank as rr
from repolens.retrieval.query import analyze


def symbol(
    aid: int, path: str, qualified: str, *, kind: str = "function", file_id: int | None = None, signature: str = ""
) -> Artifact:
    """A Symbol row; the file id defaults to one per path."""
    name = qualified.rsplit(".", 1)[-1]
    parent = qualified.rsplit(".", 1)[0] if "." in qualified else ""
    return Artifact(
        aid,
        1,
        file_id if file_id is not None else hash(path) % 10_000,
        path,
        "Symbol",
        qualified,
        name,
        qualified,
        kind,
        parent,
        1,
        10,
        signature or f"def {name}()",
        "",
        "python",
    )


def chunk(aid: int, path: str, *, file_id: int | None = None, chunk_kind: str = "") -> Artifact:
    return Artifact(
        aid,
        1,
        file_id if file_id is not None else hash(path) % 10_000,
        path,
        "Chunk",
        f"{aid:04d}",
        "",
        "",
        chunk_kind,
        "",
        1,
        40,
        "",
        "",
        "python",
    )


@pytest.mark.parametrize(
    ("query", "is_symbol", "identifiers"),
    [
        ("QueuePool", True, ("QueuePool",)),
        ("Context.invoke", True, ("invoke", "Context.invoke")),
        ("pkg::mod::Thing", True, ("Thing", "pkg.mod.Thing")),
        ("authentication", False, ("authentication",)),  # one word: its definitions are a hint
        ("how does `load_settings` read the environment", False, ("load_settings",)),
        ("where is parseHeaders called", False, ("parseHeaders",)),
    ],
)
def test_query_analysis_tells_identifiers_from_questions(query: str, is_symbol: bool, identifiers: tuple[str, ...]) -> None:
    """One identifier is a symbol query; code-shaped words inside a sentence are identifiers to look up."""
    analysis = analyze(query)
    assert analysis.is_symbol is is_symbol
    assert analysis.identifiers == identifiers


@pytest.mark.parametrize(
    ("path", "prior"),
    [
        ("src/pool.py", 1.0),
        ("tests/test_pool.py", rr.STRONG_PENALTY),
        ("src/pool_test.go", rr.STRONG_PENALTY),
        ("web/app.spec.ts", rr.STRONG_PENALTY),
        ("examples/pool.py", rr.STRONG_PENALTY),
        ("tests/examples/pool.py", rr.STRONG_PENALTY * rr.STRONG_PENALTY),
        ("pkg/__init__.py", rr.MODERATE_PENALTY),
        ("types/index.d.ts", rr.MILD_PENALTY),
        ("docs/guide.md", rr.MILD_PENALTY),
        ("CHANGELOG.rst", rr.MILD_PENALTY),
    ],
)
def test_path_priors(path: str, prior: float) -> None:
    """Tests, examples, re-exports, stubs and prose are down-weighted by their path alone."""
    assert rr.path_prior(path) == pytest.approx(prior)


@pytest.mark.parametrize(
    ("stem", "name", "matches"),
    [("queue_pool", "QueuePool", True), ("pools", "pool", True), ("pool", "Pooling", False), ("", "x", False)],
)
def test_a_file_named_after_a_symbol(stem: str, name: str, matches: bool) -> None:
    """Stems match symbol names ignoring case, underscores and a plural s."""
    assert rr.stem_matches(stem, name) is matches


@pytest.mark.parametrize(
    ("keywords", "parts", "share"),
    [
        (("dependency", "injection"), ["dependency", "di"], 0.5),
        (("dependency",), ["dependencies"], 0.0),  # the shorter word must be a prefix of the longer one
        (("serialize",), ["serializer"], 1.0),
        (("pool",), ["pooling"], 1.0),
        (("db",), ["dbapi"], 0.0),  # prefixes shorter than 4 characters do not count
        ((), ["x"], 0.0),
    ],
)
def test_keyword_share_of_a_path(keywords: tuple[str, ...], parts: list[str], share: float) -> None:
    """Query words match path parts exactly or by a shared prefix of at least 4 characters."""
    assert rr.keyword_share("unused", keywords, parts) == pytest.approx(share)


def test_fusion_without_rerank_is_weighted_reciprocal_rank() -> None:
    """Lexical and vector ranks add as weighted 1/(k + rank); a unit both lists hold comes first."""
    rows = {1: chunk(1, "a.py"), 2: chunk(2, "b.py"), 3: chunk(3, "c.py")}
    analysis = analyze("open a connection")
    scored = rr.score(analysis, rows, [(1, 9.0), (2, 8.0)], [], [(2, 0.9), (3, 0.8)], [], [], rerank=False)
    w = rr.LEXICAL_WEIGHT_NATURAL
    assert scored[1][0] == pytest.approx(w * rr.rrf(0))
    assert scored[2][0] == pytest.approx(w * rr.rrf(1) + (1 - w) * rr.rrf(0))
    assert scored[3][0] == pytest.approx((1 - w) * rr.rrf(1))
    assert max(scored, key=lambda a: scored[a][0]) == 2
    assert scored[2][1] == {"lexical_rank": 2, "vector_rank": 1, "similarity": 0.9}


def test_lexical_only_fusion_gives_the_lexical_list_full_weight() -> None:
    """With no vectors, the lexical ranks carry all the weight."""
    rows = {1: chunk(1, "a.py")}
    scored = rr.score(analyze("x y"), rows, [(1, 1.0)], [], [], [], [], rerank=False)
    assert scored[1][0] == pytest.approx(rr.rrf(0))


def test_the_definition_of_a_queried_symbol_outranks_its_mentions() -> None:
    """A symbol query puts the definition first even when BM25 ranked a mention above it."""
    definition = symbol(1, "src/pool.py", "QueuePool", kind="class")
    mention = chunk(2, "src/engine.py")
    rows = {1: definition, 2: mention}
    scored = rr.score(analyze("QueuePool"), rows, [(2, 9.0), (1, 5.0)], [], [], [], [definition], rerank=True)
    assert scored[1][0] > scored[2][0]
    assert "definition" in scored[1][1]


@pytest.mark.parametrize(
    ("path", "expected_first"),
    [("src/pool.py", 1), ("tests/test_pool.py", 2)],
)
def test_a_test_file_ranks_below_the_code_it_tests(path: str, expected_first: int) -> None:
    """Two equal candidates: the one in a test file loses to the one in the code."""
    rows = {1: chunk(1, path, file_id=1), 2: chunk(2, "src/other.py", file_id=2)}
    scored = rr.score(analyze("open a pool"), rows, [(1, 5.0), (2, 5.0)], [], [], [], [], rerank=True)
    if expected_first == 1:
        assert scored[1][0] > scored[2][0]
    else:
        assert scored[2][0] > scored[1][0]
        assert scored[1][1]["prior"] == rr.STRONG_PENALTY


def test_diverse_top_decays_further_hits_from_one_file() -> None:
    """The second hit of a file counts half: a weaker hit from another file can pass it."""
    scores = {1: 1.0, 2: 0.9, 3: 0.6}
    file_of = {1: 10, 2: 10, 3: 20}
    assert rr.diverse_top(scores, file_of, 3, decay=True) == [(1, 1.0), (3, 0.6), (2, 0.45)]
    assert rr.diverse_top(scores, file_of, 3, decay=False) == [(1, 1.0), (2, 0.9), (3, 0.6)]
    assert len(rr.diverse_top(scores, file_of, 2, decay=True)) == 2


def _greedy_top(scores: dict[int, float], file_of: dict[int, int], limit: int) -> list[tuple[int, float]]:
    """The definition of the file-diverse cut, step by step: each time, the unit whose score decayed
    by its file's hits so far is highest (ties: lower id)."""
    per_file: dict[int, int] = {}
    left = dict(scores)
    picked: list[tuple[int, float]] = []
    while left and len(picked) < limit:
        decayed = {a: s * rr.FILE_SATURATION_DECAY ** per_file.get(file_of[a], 0) for a, s in left.items()}
        a = min(decayed, key=lambda u: (-decayed[u], u))
        picked.append((a, decayed[a]))
        per_file[file_of[a]] = per_file.get(file_of[a], 0) + 1
        del left[a]
    return picked


@pytest.mark.parametrize("seed", range(40))
def test_diverse_top_is_the_greedy_pick(seed: int) -> None:
    """Per-file queues give the greedy pick exactly: same units, order and scores, ties included
    (scores drawn from a few values, so that units and decayed scores tie across and within files)."""
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    ids = rng.sample(range(1, 1000), n)
    scores = {a: rng.choice([1.0, 0.5, 0.25, 0.3, 0.7, 0.125]) * rng.choice([1.0, 1.0, 0.9]) for a in ids}
    file_of = {a: rng.randint(1, max(1, n // rng.choice([1, 3, 10]))) for a in ids}
    for limit in (1, 3, 10, n + 5):
        assert rr.diverse_top(scores, file_of, limit, decay=True) == _greedy_top(scores, file_of, limit)
        ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        assert rr.diverse_top(scores, file_of, limit, decay=False) == ordered


# -- the exact symbol -------------------------------------------------------------------------
# Rows for click's `Context.invoke`: two `@overload` stubs (the parser ends a declaration's
# signature with its mark) before the implementation, all in one file.
STUB_1 = symbol(
    1,
    "click/core.py",
    "Context.invoke",
    kind="method",
    file_id=1,
    signature="def invoke(self, callback: Callable[..., V], *args, **kwargs) -> V: ...",
)
STUB_2 = symbol(
    2,
    "click/core.py",
    "Context.invoke",
    kind="method",
    file_id=1,
    signature="def invoke(self, callback: Command, *args, **kwargs) -> Any: ...",
)
IMPL = symbol(
    3, "click/core.py", "Context.invoke", kind="method", file_id=1, signature="def invoke(self, callback, *args, **kwargs)"
)
# An interface method and the class method that implements it, in two files (TypeScript).
IFACE_GET = symbol(
    4, "web/types.ts", "HttpClient.get", kind="method", file_id=2, signature="get(url: string): Promise<string>;"
)
CLASS_GET = symbol(5, "web/fetch.ts", "FetchClient.get", kind="method", file_id=3, signature="async get(url: string)")
# A `.d.ts` declaration and the JavaScript it describes.
DTS = symbol(6, "types/index.d.ts", "createServer", file_id=4, signature="function createServer(options: Options): Server")
JS = symbol(7, "lib/server.js", "createServer", file_id=5, signature="function createServer(options)")
# A class, one of its methods, and an import-only chunk of another file that names the class.
SERVICE = symbol(8, "auth/tokens.py", "TokenService", kind="class", file_id=6, signature="class TokenService")
VALIDATE = symbol(9, "auth/tokens.py", "TokenService.validate_token", kind="method", file_id=6)
IMPORTS = chunk(10, "web/views.py", file_id=7, chunk_kind=IMPORTS_CHUNK)


@pytest.mark.parametrize(
    ("case", "query", "rows", "lexical", "definitions", "first"),
    [
        (
            "overload stubs before the implementation",
            "Context.invoke",
            [STUB_1, STUB_2, IMPL],
            [1, 2, 3],
            [STUB_1, STUB_2, IMPL],
            IMPL,
        ),
        ("...also without lexical help", "Context.invoke", [STUB_1, STUB_2, IMPL], [1, 2], [STUB_1, STUB_2, IMPL], IMPL),
        (
            "a query that asks for the overloads gets them",
            "Context.invoke overloads",
            [STUB_1, STUB_2, IMPL],
            [1, 2, 3],
            [STUB_1, STUB_2, IMPL],
            STUB_1,
        ),
        (
            "an interface signature below the method implementing it",
            "get",
            [IFACE_GET, CLASS_GET],
            [4, 5],
            [IFACE_GET, CLASS_GET],
            CLASS_GET,
        ),
        (
            "...unless the query asks for the interface",
            "interface get",
            [IFACE_GET, CLASS_GET],
            [4, 5],
            [IFACE_GET, CLASS_GET],
            IFACE_GET,
        ),
        ("a .d.ts declaration below the JavaScript it describes", "createServer", [DTS, JS], [6, 7], [DTS, JS], JS),
        (
            "the method answering a question before its class",
            "check that a signed token is still valid",
            [SERVICE, VALIDATE],
            [8, 9],
            [],
            VALIDATE,
        ),
        ("the class when it is the queried symbol", "TokenService", [SERVICE, VALIDATE], [9, 8], [SERVICE], SERVICE),
        ("an import chunk below the definition it names", "TokenService", [IMPORTS, SERVICE], [10, 8], [SERVICE], SERVICE),
        (
            "...even when only the import chunk matched lexically",
            "TokenService",
            [IMPORTS, SERVICE],
            [10],
            [SERVICE],
            SERVICE,
        ),
        (
            "an import chunk below the definition a question names",
            "where does TokenService sign tokens",
            [IMPORTS, SERVICE],
            [10, 8],
            [SERVICE],
            SERVICE,
        ),
    ],
)
def test_the_exact_symbol_comes_first(
    case: str,
    query: str,
    rows: list[Artifact],
    lexical: list[int],
    definitions: list[Artifact],
    first: Artifact,
) -> None:
    """Implementations over declarations, the specific member over its container, definitions over imports."""
    table = {r.id: r for r in rows}
    lex = [(a, 10.0 - rank) for rank, a in enumerate(lexical)]
    scored = rr.score(analyze(query), table, lex, [], [], [], definitions, rerank=True)
    top = scored.top(len(table), decay=True)
    assert top[0][0] == first.id, case


def test_a_declaration_is_marked_and_ranked_down_with_the_reason() -> None:
    """The signal says why a stub lost: it is a declaration, and declarations count half."""
    scored = rr.score(
        analyze("Context.invoke"), {1: STUB_1, 3: IMPL}, [(1, 2.0), (3, 1.0)], [], [], [], [STUB_1, IMPL], rerank=True
    )
    assert scored[1][1]["declaration"] == rr.DECLARATION_PENALTY
    assert "declaration" not in scored[3][1]
