"""Search and fetch answer with the code that runs: the implementation, the specific member, the definition."""

from __future__ import annotations

import pytest

from conftest import MakeRepo
from repolens.indexing.pipeline import index_source
from repolens.retrieval import graph
from repolens.retrieval.artifacts import fetch
from repolens.services import Services

pytestmark = pytest.mark.backends

PROJECT = {
    "click/core.py": (
        "import typing as t\n\n\n"
        "def augment_usage_errors(ctx):\n    return ctx\n\n\n"
        "class Context:\n"
        "    '''The context of a command invocation.'''\n\n"
        "    @t.overload\n"
        "    def invoke(self, callback: t.Callable[..., V], /, *args: t.Any, **kwargs: t.Any) -> V: ...\n\n"
        "    @t.overload\n"
        "    def invoke(self, callback: Command, /, *args: t.Any, **kwargs: t.Any) -> t.Any: ...\n\n"
        "    def invoke(self, callback, /, *args, **kwargs):\n"
        "        '''Invokes a command callback in exactly the way it expects.'''\n"
        "        with augment_usage_errors(self):\n"
        "            return callback(*args, **kwargs)\n"
    ),
    "auth/tokens.py": (
        "import hmac\n\n\n"
        "class TokenService:\n"
        "    '''Issues signed tokens and checks them.'''\n\n"
        "    def sign_token(self, payload: str) -> str:\n"
        "        return payload + '.' + hmac.new(self.key, payload.encode(), 'sha256').hexdigest()\n\n"
        "    def validate_token(self, token: str) -> bool:\n"
        "        '''Check that the signature matches and the token has not expired.'''\n"
        "        payload, signature = token.rsplit('.', 1)\n"
        "        return hmac.compare_digest(self.sign_token(payload), token) and not self.expired(payload)\n"
    ),
    "auth/views.py": (
        "from auth.tokens import TokenService\nfrom auth.sessions import SessionStore\nimport hmac\nimport json\n\n\n"
        "def login(request):\n    return TokenService().sign_token(request.user)\n"
    ),
}


@pytest.fixture
def indexed(make_repo: MakeRepo, services: Services) -> Services:
    root = make_repo(PROJECT)
    index_source(services.store, services.settings, str(root), name="acme/app")
    return services


def test_fetch_without_a_number_returns_the_implementation_not_an_overload_stub(indexed: Services) -> None:
    """`fetch ...::Context.invoke` is the method body; the `@overload` stubs are `~2` and `~3`."""
    item = fetch(indexed.store, ["acme/app::click/core.py::Context.invoke"])[0]
    assert item.found and item.content is not None
    assert "return callback(*args, **kwargs)" in item.content
    stub = fetch(indexed.store, ["acme/app::click/core.py::Context.invoke~2"])[0]
    assert stub.content is not None and stub.content.rstrip().endswith("-> V: ...")
    assert item.source is not None and item.artifact is not None
    calls, _ = graph.relations(indexed.store, item.source, item.artifact, profile="calls", max_per_type=10)
    assert [r.name for r, _ in calls.items] == ["augment_usage_errors"]  # the calls belong to the implementation


def test_search_for_an_overloaded_method_puts_the_implementation_first(indexed: Services) -> None:
    """`Context.invoke` and `invoke` both answer with the real method."""
    for query in ("Context.invoke", "invoke"):
        first = indexed.searcher.search(query).hits[0].artifact
        assert first.ident == "Context.invoke", query


def test_a_question_gets_the_method_that_answers_it_not_its_class_or_an_import(indexed: Services) -> None:
    """The method checking a signed token comes before its class and before an import of the class."""
    hits = indexed.searcher.search("check that a signed token is still valid").hits
    assert hits[0].artifact.ident == "TokenService.validate_token"
    kinds = [(h.artifact.kind, h.artifact.symbol_kind) for h in hits]
    definitions = [i for i, (kind, _) in enumerate(kinds) if kind == "Symbol"]
    imports = [i for i, k in enumerate(kinds) if k == ("Chunk", "imports")]
    assert all(i > definitions[0] for i in imports)
