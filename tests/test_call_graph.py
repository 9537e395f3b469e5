"""Calls resolve through imports, self/this and receiver types; the rest stay named, unlinked.

Issue 17: calls used to be matched by bare name, so ``ctx.params.update()`` linked to
``ProgressBar.update``. Each case below has a same-named decoy the old rule would have linked.
"""

from __future__ import annotations

import pytest

from conftest import MakeRepo
from repolens.indexing.pipeline import index_source
from repolens.retrieval import graph
from repolens.retrieval.artifacts import fetch
from repolens.services import Services

pytestmark = pytest.mark.backends

PROJECT = {
    "app/core.py": (
        "from app.progress import ProgressBar\n"
        "from app import util\n\n\n"
        "class Context:\n"
        "    def __init__(self, bar: ProgressBar):\n"
        "        self.bar = bar\n\n"
        "    def refresh(self):\n"
        "        return 1\n\n"
        "    def run(self, ctx):\n"
        "        self.refresh()\n"
        "        ctx.params.update()\n"
        "        self.bar.update()\n"
        "        util.tidy()\n"
        "        helper()\n"
        "        len([])\n\n\n"
        "def helper():\n"
        "    return 2\n\n\n"
        "class Sub(Context):\n"
        "    def go(self):\n"
        "        self.refresh()\n"
    ),
    "app/progress.py": "class ProgressBar:\n    def update(self):\n        return 3\n",
    "app/util.py": "def tidy():\n    return 4\n",
    "app/alias.py": "from app.util import tidy as clean\n\n\ndef sweep():\n    return clean()\n",
    "app/other.py": (
        "class Cache:\n    def update(self):\n        return 5\n\n    def refresh(self):\n        return 6\n\n\n"
        "def tidy():\n    return 7\n\n\ndef helper():\n    return 8\n"
    ),
    "web/a.js": (
        "import { fmt } from './fmt';\n\n"
        "export class Widget {\n"
        "  render() {\n    this.paint();\n    return fmt(1);\n  }\n\n"
        "  paint() {\n    return 0;\n  }\n}\n"
    ),
    "web/fmt.js": "export function fmt(x) {\n  return String(x);\n}\n",
    "web/other.js": "function fmt(x) {\n  return x;\n}\n\nfunction paint() {\n  return 1;\n}\n",
    "srv/server.go": (
        "package srv\n\n"
        "type Server struct {\n\tstore *Store\n}\n\n"
        "func (s *Server) Run() {\n\ts.store.Get()\n\ts.stop()\n}\n\n"
        "func (s *Server) stop() {}\n"
    ),
    "srv/store.go": "package srv\n\ntype Store struct{}\n\nfunc (st *Store) Get() {}\n",
    "cache/cache.go": "package cache\n\ntype Cache struct{}\n\nfunc (c *Cache) Get() {}\n\nfunc (c *Cache) stop() {}\n",
    "java/a/App.java": (
        "package a;\n\n"
        "public class App extends Base {\n"
        "    void main() {\n        helper();\n        Job job = new Job();\n        job.start();\n    }\n}\n"
    ),
    "java/a/Base.java": "package a;\n\npublic class Base {\n    void helper() {}\n}\n",
    "java/a/Job.java": "package a;\n\npublic class Job {\n    void start() {}\n}\n",
    "java/b/Other.java": "package b;\n\npublic class Other {\n    void start() {}\n    void helper() {}\n}\n",
    "lib/thing.rb": "class Thing\n  def poke\n    nudge(1)\n  end\nend\n\ndef nudge(x)\n  x\nend\n",
}


@pytest.fixture
def indexed(make_repo: MakeRepo, services: Services) -> Services:
    root = make_repo(PROJECT)
    index_source(services.store, services.settings, str(root), name="acme/poly")
    return services


def _calls(services: Services, identifier: str) -> tuple[graph.RelationGroup, graph.RelationGroup]:
    item = fetch(services.store, [f"acme/poly::{identifier}"])[0]
    assert item.found and item.source is not None and item.artifact is not None, identifier
    out, incoming = graph.relations(services.store, item.source, item.artifact, profile="calls", max_per_type=50)
    return out, incoming


def _linked(group: graph.RelationGroup) -> dict[str, str]:
    """identifier (path::qualified name) -> how the edge was linked."""
    return {f"{row.path}::{row.qualified_name}": group.resolution[row.id] for row, _ in group.items}


def test_python_calls_resolve_through_self_imports_and_typed_fields(indexed: Services) -> None:
    """``self.refresh()`` is Context.refresh, ``self.bar.update()`` is ProgressBar.update (the field's
    annotated type), ``util.tidy()`` the imported module's, ``helper()`` the same module's; the
    same-named methods and functions in app/other.py are not linked."""
    out, _ = _calls(indexed, "app/core.py::Context.run")
    assert _linked(out) == {
        "app/core.py::Context.refresh": "resolved",
        "app/progress.py::ProgressBar.update": "resolved",
        "app/util.py::tidy": "resolved",
        "app/core.py::helper": "resolved",
    }


def test_a_same_named_method_on_another_class_is_not_linked(indexed: Services) -> None:
    """``ctx.params.update()`` has an untyped receiver: it stays a named, unlinked call, and neither
    ProgressBar.update nor Cache.update counts it as a caller."""
    out, _ = _calls(indexed, "app/core.py::Context.run")
    assert out.unresolved == [("update", 14), ("len", 18)]
    assert out.total == 4  # the unresolved calls are reported, not counted as links
    _, callers = _calls(indexed, "app/other.py::Cache.update")
    assert callers.total == 0
    _, callers = _calls(indexed, "app/progress.py::ProgressBar.update")
    assert _linked(callers) == {"app/core.py::Context.run": "resolved"}  # only self.bar.update()


def test_a_call_through_an_import_alias_is_a_caller_of_the_definition(indexed: Services) -> None:
    """``from app.util import tidy as clean; clean()`` calls app/util.py's tidy, and tidy lists it as
    a caller; app/other.py's tidy does not."""
    out, _ = _calls(indexed, "app/alias.py::sweep")
    assert _linked(out) == {"app/util.py::tidy": "resolved"}
    _, callers = _calls(indexed, "app/util.py::tidy")
    assert _linked(callers) == {"app/alias.py::sweep": "resolved", "app/core.py::Context.run": "resolved"}
    _, callers = _calls(indexed, "app/other.py::tidy")
    assert callers.total == 0


def test_self_calls_follow_base_classes(indexed: Services) -> None:
    """``self.refresh()`` in Sub is the method Sub inherits from Context, not Cache.refresh."""
    out, _ = _calls(indexed, "app/core.py::Sub.go")
    assert _linked(out) == {"app/core.py::Context.refresh": "resolved"}
    _, callers = _calls(indexed, "app/other.py::Cache.refresh")
    assert callers.total == 0


def test_javascript_this_and_imports(indexed: Services) -> None:
    """``this.paint()`` is Widget.paint and ``fmt`` the one imported from ./fmt, not web/other.js's."""
    out, _ = _calls(indexed, "web/a.js::Widget.render")
    assert _linked(out) == {"web/a.js::Widget.paint": "resolved", "web/fmt.js::fmt": "resolved"}


def test_go_receiver_and_struct_field_types(indexed: Services) -> None:
    """``s.store.Get()`` is Store.Get through the field's type, ``s.stop()`` the receiver's method;
    package cache's Get and stop are other types' methods."""
    out, _ = _calls(indexed, "srv/server.go::Server.Run")
    assert _linked(out) == {"srv/store.go::Store.Get": "resolved", "srv/server.go::Server.stop": "resolved"}


def test_java_inherited_method_and_local_type(indexed: Services) -> None:
    """``helper()`` is the method App inherits from Base; ``job.start()`` is Job.start (the local's
    declared type, found in the same package); package b's same-named methods are not linked."""
    out, _ = _calls(indexed, "java/a/App.java::App.main")
    assert _linked(out) == {
        "java/a/Base.java::Base.helper": "resolved",
        "java/a/Job.java::Job": "resolved",
        "java/a/Job.java::Job.start": "resolved",
    }
    _, callers = _calls(indexed, "java/b/Other.java::Other.start")
    assert callers.total == 0


def test_languages_without_a_resolver_keep_name_matches_labelled(indexed: Services) -> None:
    """Ruby has no resolver: ``nudge`` links by name, and the edge says so."""
    out, _ = _calls(indexed, "lib/thing.rb::Thing.poke")
    assert _linked(out) == {"lib/thing.rb::nudge": "name match"}
    assert out.unresolved == []
