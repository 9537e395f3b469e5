"""The parser tells declarations from implementations, and indexing names them accordingly.

Real grammars over small sources, one row per idiom: what a declaration looks like is what the
grammar shows (a decorator and an empty body, a node without a body, a signature node).
"""

from __future__ import annotations

import pytest

from repolens.domain import Section, is_declaration
from repolens.indexing.units import import_only, symbol_idents
from repolens.parsing.treesitter import parse_code

CLICK = '''
class Context:
    @t.overload
    def invoke(self, callback: t.Callable[..., V], /, *args: t.Any, **kwargs: t.Any) -> V: ...

    @t.overload
    def invoke(self, callback: Command, /, *args: t.Any, **kwargs: t.Any) -> t.Any: ...

    def invoke(self, callback, /, *args, **kwargs):
        """Invokes a command callback in exactly the way it expects."""
        return callback(*args, **kwargs)
'''


@pytest.mark.parametrize(
    ("language", "source", "declared", "implemented"),
    [
        ("python", CLICK, ["Context.invoke", "Context.invoke"], ["Context", "Context.invoke"]),
        (
            "python",
            "class B:\n    @abc.abstractmethod\n    def run(self):\n        '''Run.'''\n"
            "        raise NotImplementedError\n    @abstractmethod\n    def stop(self):\n        return self.close()\n",
            ["B.run"],
            ["B", "B.stop"],
        ),  # an abstract method with a default body is code
        ("python", "@property\ndef name(self): ...\n", [], ["name"]),  # an empty body alone declares nothing
        (
            "typescript",
            "export function map(a: string): string;\nexport function map(a: any): any { return a }\n",
            ["map"],
            ["map"],
        ),
        (
            "typescript",
            "interface Store { get(k: string): number }\nabstract class A { abstract run(): void; go() {} }\n",
            ["Store.get", "A.run"],
            ["Store", "A", "A.go"],
        ),
        ("java", "interface I { void run(); default void go() { } }", ["I.run"], ["I", "I.go"]),
        ("rust", "trait T { fn a(&self); fn b(&self) { } }", ["T.a"], ["T", "T.b"]),
        (
            "go",
            "package x\ntype R interface { Read(p []byte) int }\nfunc (x *X) Read(p []byte) int { return 0 }",
            ["R.Read"],
            ["R", "X.Read"],
        ),
        (
            "cpp",
            "class Foo { void bar(); int baz() { return 1; } };\nvoid Foo::bar() {}\n",
            ["Foo.bar"],
            ["Foo", "Foo.baz", "Foo.bar"],
        ),
        ("kotlin", "interface I { fun a(): Int\n fun b(): Int { return 1 } }", ["I.a"], ["I", "I.b"]),
        ("csharp", "interface I { void A(); }\nclass C : I { public void A() { } }", ["I.A"], ["I", "C", "C.A"]),
        (
            "php",
            "<?php interface I { public function a(); } class C { function a() { return 1; } }",
            ["I.a"],
            ["I", "C", "C.a"],
        ),
        ("swift", "protocol P { func a() }\nclass C: P { func a() { } }", ["P.a"], ["P", "C", "C.a"]),
        ("scala", "trait T { def a: Int\n def b: Int = 1 }", ["T.a"], ["T", "T.b"]),
    ],
)
def test_declarations_are_told_from_implementations(
    language: str, source: str, declared: list[str], implemented: list[str]
) -> None:
    """Overload stubs, abstract, interface and trait methods and prototypes are declarations; bodies are code."""
    symbols = parse_code(source, language).symbols
    marked = [s.qualified_name for s in symbols if is_declaration("src/x", s.kind, s.signature)]
    unmarked = [s.qualified_name for s in symbols if not is_declaration("src/x", s.kind, s.signature)]
    assert marked == declared
    assert unmarked == implemented


@pytest.mark.parametrize("path", ["types/index.d.ts", "stubs/core.pyi"])
def test_everything_callable_in_a_declaration_file_is_a_declaration(path: str) -> None:
    """`.d.ts` and `.pyi` files hold declarations whatever their bodies look like."""
    assert is_declaration(path, "function", "function createServer(options)")
    assert not is_declaration(path, "class", "class Server")


def test_the_bare_identifier_names_the_implementation() -> None:
    """`Context.invoke` is the method that runs; its `@overload` stubs are `~2` and `~3`."""
    symbols = parse_code(CLICK, "python").symbols
    idents = symbol_idents("click/core.py", symbols)
    assert idents == ["Context", "Context.invoke~2", "Context.invoke~3", "Context.invoke"]
    assert symbols[idents.index("Context.invoke")].doc.startswith("Invokes a command callback")


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        ("python", "import os\nimport sys\nfrom .core import (\n    Context,\n    Command,\n)\n", True),
        ("python", "# re-exports\nfrom .core import Context as Context\n__all__ = ['Context']\n", True),
        ("python", "import os\n\nlog = logging.getLogger(__name__)\nCACHE = {}\nx = compute()\n", False),
        ("go", 'package raft\n\nimport (\n\t"fmt"\n\t"sync"\n)\n', True),
        ("typescript", "import { a } from './a';\nexport * from './b';\nexport { c } from './c';\n", True),
        ("javascript", "const ws = require('ws');\nconst port = 8080;\nserver.listen(port);\nstart();\n", False),
    ],
)
def test_import_only_stretches_of_code_are_recognised(language: str, source: str, expected: bool) -> None:
    """A stretch of module code made of import statements (and their scaffolding) is an import chunk."""
    parsed = parse_code(source, language)
    lines = source.split("\n")
    import_lines = {r.line for r in parsed.relations if r.kind == "imports"}
    assert import_only(lines, Section(1, len(lines)), import_lines) is expected
