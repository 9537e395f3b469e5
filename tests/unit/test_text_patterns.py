"""Query patterns run as a regex over the source find exactly the nodes the query engine finds.

``treesitter._TEXT_PATTERN`` takes the CamelCase ``@reference`` patterns out of the compiled queries
(Python, JavaScript) and ``_text_captures`` finds their nodes from the text: compared here with the
same pattern compiled and run by tree-sitter itself, on real grammars and on sources made to trip a
text scan (words in comments and strings, tails of longer identifiers, broken code).
"""

from __future__ import annotations

import pytest
import tree_sitter as ts

from repolens.parsing import treesitter

TRICKY_PYTHON = '''
"""Docstring naming HTTPServer and FooBar, which are not nodes."""
import typing
from a.b import HandlerStack as HS

class HTTPServer(BaseHTTPRequestHandler):  # CamelCase in a comment: MyHandler
    x: Optional[FooBar] = FooBar()
    def run(self, fooBar, _Private, Name_with_underscore, ABC, ABCdef, X1y2Z, Ab1, éCafé):
        value = 0xABFoo + 1Foo + Foo1 + fooBarBaz.QuxQuux(AnotherOne)
        s = f"{InFString} and {x.Attr}" + "NotANode" + 'Neither'
        return [Élan for Élan in ListOf if Bare and SelfRef(HTTPServer)]
def broken(:
    ErrorRecovery Here(
'''

TRICKY_JAVASCRIPT = """
// a comment with SomeClass and AnotherClass
import DefaultThing, { NamedOne as AliasTwo } from './things';
const $Dollar = new SomeClass(Foo$bar, _Under, jQuery, XMLHttpRequest);
class Widget extends BaseWidget { render() { return <Panel title={`${TitleText}`}>Child</Panel>; } }
let v = 0xBEEFace + 1e5Exp + Value.Prop + obj?.OptionalThing;
function broken( { MissingBrace
"""


@pytest.mark.parametrize(("language", "source"), [("python", TRICKY_PYTHON), ("javascript", TRICKY_JAVASCRIPT)])
def test_text_captures_find_what_the_query_finds(language: str, source: str) -> None:
    by_text = treesitter._queries(language)[1]
    assert by_text, "the CamelCase reference pattern should run over the text"
    data = source.encode()
    tree = treesitter._parser(language).parse(data)
    for _relation, pattern in by_text:
        engine = ts.Query(
            treesitter._language(language),
            f'((identifier) @reference (#match? @reference "^{pattern.pattern.decode()}$"))',
        )
        expected = sorted(
            (n.start_byte, n.end_byte)
            for _, caps in ts.QueryCursor(engine).matches(tree.root_node)
            for n in caps["reference"]
        )
        found = [(n.start_byte, n.end_byte) for n in treesitter._text_captures(tree.root_node, data, pattern)]
        assert found == expected
        assert len(expected) > 5


def test_the_compiled_query_leaves_the_pattern_out() -> None:
    full_text = treesitter.resources.files("repolens.parsing").joinpath("queries/python.scm").read_text("utf-8")
    full = ts.Query(treesitter._language("python"), full_text)
    first_resolver_pattern = treesitter._queries("python")[2]  # the resolver's patterns come after the file's
    assert first_resolver_pattern == full.pattern_count - 1
    assert treesitter._queries("typescript")[1] == ()  # no such pattern there: the query is whole
