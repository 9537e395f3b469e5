"""Search ranks definitions first, honours filters, and fuses vectors when they exist."""

from __future__ import annotations

import pytest

from conftest import MakeRepo
from repolens.domain import SearchFilters
from repolens.errors import InvalidInput, NotFound
from repolens.indexing.pipeline import index_source
from repolens.indexing.vectors import backfill
from repolens.services import Services

pytestmark = pytest.mark.backends

PROJECT = {
    "src/auth/passwords.py": (
        "import hashlib\n\n"
        "def hash_password(password: str, salt: bytes) -> str:\n"
        "    '''Hash a password with a salt for storage.'''\n"
        "    return hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 100_000).hex()\n\n"
        "def verify_password(password: str, salt: bytes, stored: str) -> bool:\n"
        "    '''Check a password against the stored hash.'''\n"
        "    return hash_password(password, salt) == stored\n"
    ),
    "src/routing/router.py": (
        "class Router:\n"
        "    '''Maps URL rules to endpoints.'''\n\n"
        "    def add_route(self, rule: str, endpoint: str) -> None:\n"
        "        self.rules.append((rule, endpoint))\n\n"
        "    def match(self, path: str) -> str:\n"
        "        for rule, endpoint in self.rules:\n"
        "            if rule == path:\n"
        "                return endpoint\n"
        "        raise LookupError(path)\n"
    ),
    "src/routing/helpers.py": "from .router import Router\n\ndef make_router() -> Router:\n    return Router()\n",
    "tests/test_router.py": (
        "from src.routing.router import Router\n\n"
        "def test_router_match():\n    r = Router()\n    r.add_route('/a', 'a')\n    assert r.match('/a') == 'a'\n"
    ),
    "web/client.ts": (
        "export interface HttpClient {\n  get(url: string): Promise<string>;\n}\n\n"
        "export class FetchClient implements HttpClient {\n  async get(url: string): Promise<string> {\n"
        "    const res = await fetch(url);\n    return res.text();\n  }\n}\n"
    ),
    "docs/guide.md": "# Guide\n\n## Routing\n\nRoutes are registered on the Router.\n\n## Passwords\n\nUse hash_password.\n",
}


@pytest.fixture
def indexed(make_repo: MakeRepo, services: Services) -> Services:
    root = make_repo(PROJECT)
    index_source(services.store, services.settings, str(root), name="acme/app")
    return services


def test_a_symbol_query_puts_its_definition_first(indexed: Services) -> None:
    """`Router` finds the class, not the test or the helper that use it."""
    hits = indexed.searcher.search("Router").hits
    assert hits[0].artifact.identifier("acme/app") == "acme/app::src/routing/router.py::Router"
    assert hits[0].artifact.symbol_kind == "class"
    method = indexed.searcher.search("Router.add_route").hits[0].artifact
    assert method.qualified_name == "Router.add_route" and method.start_line == 4


def test_case_and_embedded_identifiers_still_find_definitions(indexed: Services) -> None:
    """`fetchclient` and a sentence naming `verify_password` both reach the definition."""
    assert indexed.searcher.search("fetchclient").hits[0].artifact.name == "FetchClient"
    hits = indexed.searcher.search("where is verify_password implemented").hits
    assert hits[0].artifact.name == "verify_password"


def test_natural_language_finds_the_right_file(indexed: Services) -> None:
    """A question with no identifier lands in the file that answers it; tests rank below code."""
    paths = [h.artifact.path for h in indexed.searcher.search("hash a password with a salt").hits]
    assert paths[0] == "src/auth/passwords.py"
    paths = [h.artifact.path for h in indexed.searcher.search("match a path against routing rules").hits]
    assert paths[0] == "src/routing/router.py"
    assert paths.index("src/routing/router.py") < paths.index("tests/test_router.py")


def test_filters_restrict_sources_paths_and_extensions(indexed: Services) -> None:
    """--path, --ext and --source limit what comes back."""
    hits = indexed.searcher.search("Router", filters=SearchFilters(paths=("tests/",))).hits
    assert hits and all(h.artifact.path.startswith("tests/") for h in hits)
    hits = indexed.searcher.search("get url", filters=SearchFilters(extensions=("ts",))).hits
    assert hits and all(h.artifact.path.endswith(".ts") for h in hits)
    with pytest.raises(NotFound, match="unknown source 'nope'"):
        indexed.searcher.search("Router", filters=SearchFilters(sources=("nope",)))


def test_results_are_file_diverse(indexed: Services) -> None:
    """The top results do not pile up in one file while other files match."""
    hits = indexed.searcher.search("router route rules endpoint", limit=4).hits
    assert len({h.artifact.path for h in hits}) >= 2


def test_bad_queries_are_refused(indexed: Services) -> None:
    """Empty queries and absurd limits are input errors, not crashes."""
    with pytest.raises(InvalidInput):
        indexed.searcher.search("   ")
    with pytest.raises(InvalidInput):
        indexed.searcher.search("x", limit=0)
    assert indexed.searcher.search('"; DROP TABLE files; -- OR NEAR(') is not None


def test_search_reports_vector_readiness_and_uses_vectors_once_ready(indexed: Services) -> None:
    """Before backfill the search is lexical and says so; after it, hybrid."""
    before = indexed.searcher.search("password storage")
    assert before.mode == "lexical" and before.vectors_ready == 0 and before.vectors_total > 0
    source = indexed.store.get_source("acme/app")
    assert source is not None and indexed.embedder is not None
    backfill(indexed.store, source.id, indexed.embedder)
    after = indexed.searcher.search("password storage")
    assert after.mode == "hybrid" and after.vectors_ready == after.vectors_total
    semantic = indexed.searcher.search("password storage", mode="semantic")
    assert semantic.hits and semantic.mode == "semantic"
