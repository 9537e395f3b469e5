"""Turning repository text and answers into HTML that cannot run anything.

Everything from a repository or a model reaches a page through one of three doors, each escaping:
Jinja2 with autoescape (every template variable), ``highlight_lines`` (Pygments tokens, each
value escaped by markupsafe), and ``render_answer`` (markdown-it with raw HTML off, so ``<script>``
in an answer is text, images off and links limited to markdown-it's safe schemes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup, escape
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

from repolens.surfaces.web import WEB_PREFIX
from repolens.views import iso

TEMPLATES = Path(__file__).parent / "templates"
# Highlighting is linear but not free (Pygments: ~0.1 s per 10 KB of Python on a busy 2-core
# machine): past this, a file is shown as escaped plain text, still with line numbers and marks.
MAX_HIGHLIGHT_CHARS = 150_000
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals["ui"] = WEB_PREFIX
env.filters["when"] = lambda ts: (iso(ts) or "")[:19].replace("T", " ")  # epoch seconds, UTC, to the second


def code_url(identifier: str, *, lines: tuple[int, int] | None = None, commit: str = "") -> str:
    """The code view of an identifier, with a line range marked (and scrolled to)."""
    params = {"id": identifier}
    if commit:
        params["commit"] = commit
    if lines:
        params["lines"] = f"{lines[0]}-{lines[1]}" if lines[1] != lines[0] else str(lines[0])
    anchor = f"#L{lines[0]}" if lines else ""
    return f"{WEB_PREFIX}/code?{urlencode(params)}{anchor}"


env.globals["code_url"] = code_url


def _lexer_key(path: str) -> str:
    """What picks a lexer: the extension, or the whole name for files without one (Makefile)."""
    name = path.rsplit("/", 1)[-1]
    return "*." + name.rsplit(".", 1)[-1].lower() if "." in name else name


@lru_cache(maxsize=256)
def _lexer_for(key: str, language: str) -> Lexer:
    # Looking a lexer up scans every lexer's patterns (~2 ms): once per extension is enough.
    # stripnl/ensurenl off: Pygments would otherwise drop leading blank lines and shift every
    # line number after them.
    options: dict[str, Any] = {"stripnl": False, "ensurenl": False}
    lexer: Lexer
    try:
        if language:
            lexer = get_lexer_by_name(language, **options)
            return lexer
    except ClassNotFound:
        pass
    try:
        lexer = get_lexer_for_filename("x" + key[1:] if key.startswith("*.") else key, **options)
    except ClassNotFound:
        lexer = TextLexer(**options)
    return lexer


def _css_class(ttype: _TokenType) -> str:
    current: _TokenType | None = ttype
    while current is not None and current not in STANDARD_TYPES:
        current = current.parent
    return str(STANDARD_TYPES[current]) if current is not None else ""


# Declarations that show on whitespace too; colour, weight and slant do not.
_VISIBLE_ON_BLANKS = ("background", "border", "underline")


@lru_cache(maxsize=1)
def _span_classes() -> tuple[frozenset[str], frozenset[str]]:
    """The token classes worth a ``<span>``: those whose rule in either theme differs from the
    plain text's (a Python name, punctuation: same colour as the text around it in both themes),
    and the subset that shows on whitespace. Every span is a node the browser parses, styles, lays
    out and paints: a page of 20 snippets had ~1,300 token spans, about half of them redundant."""
    shown: set[str] = set()
    on_blanks: set[str] = set()
    for style in (LIGHT_STYLE, DARK_STYLE):
        rules = HtmlFormatter(style=style).class2style  # type: ignore[attr-defined]  # set in __init__, not in the stubs
        plain = rules.get("", ("",))[0]
        for name, (declarations, _ttype, _level) in rules.items():
            if name and declarations != plain:
                shown.add(name)
                if any(word in declarations for word in _VISIBLE_ON_BLANKS):
                    on_blanks.add(name)
    return frozenset(shown), frozenset(on_blanks)


def _highlight(text: str, key: str, language: str) -> tuple[Markup, ...]:
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return tuple(Markup(escape(line)) for line in text.split("\n"))
    shown, on_blanks = _span_classes()
    lines: list[list[tuple[str, str]]] = [[]]  # per line: (span class or "", raw text), runs merged
    for ttype, value in _lexer_for(key, language).get_tokens(text):
        css = _css_class(ttype)
        for i, piece in enumerate(value.split("\n")):
            if i:
                lines.append([])
            if not piece:
                continue
            kept = css if css in shown and (css in on_blanks or not piece.isspace()) else ""
            line = lines[-1]
            if line and (line[-1][0] == kept or (kept == "" and piece.isspace() and line[-1][0] not in on_blanks)):
                line[-1] = (line[-1][0], line[-1][1] + piece)  # a blank joins the run before it
            else:
                line.append((kept, piece))
    # get_tokens leaves a trailing newline of its own at the end of the text
    if len(lines) > text.count("\n") + 1:
        lines = lines[: text.count("\n") + 1]
    return tuple(
        Markup("".join(f'<span class="{css}">{escape(raw)}</span>' if css else str(escape(raw)) for css, raw in line))
        for line in lines
    )


# Highlighting costs ~0.1 s per 10 KB, so recent results are kept: a file read while following
# its relations, or a hit shown again on the next search. Two sizes of cache bound the memory
# (about 16 MB at most: HTML is ~5x the text).
_whole_files = lru_cache(maxsize=16)(_highlight)
_snippets = lru_cache(maxsize=512)(_highlight)
SNIPPET_CHARS = 4_000


def highlight_lines(text: str, path: str = "", *, language: str = "") -> list[Markup]:
    """``text`` as one HTML fragment per line (tokens in Pygments' CSS classes, every value
    escaped), so a page can number and mark lines itself."""
    cache = _snippets if len(text) <= SNIPPET_CHARS else _whole_files
    return list(cache(text, _lexer_key(path), language))


@lru_cache(maxsize=1)
def pygments_css() -> str:
    """Token colours for both themes (dark under ``prefers-color-scheme: dark``)."""
    light = HtmlFormatter(style=LIGHT_STYLE).get_style_defs(".code")  # type: ignore[no-untyped-call]  # untyped in the stubs
    dark = HtmlFormatter(style=DARK_STYLE).get_style_defs(".code")  # type: ignore[no-untyped-call]
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _highlight_block(code: str, lang: str, _attrs: Any) -> str:
    lines = highlight_lines(code.rstrip("\n"), language=lang or "text")
    return '<pre class="code"><code>' + "\n".join(lines) + "</code></pre>"


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight_block}).enable("table").disable("image")
    renderer = RendererHTML(md)
    md.renderer = renderer

    def link_open(_self: Any, tokens: Sequence[Token], idx: int, options: Any, env_: Any) -> str:
        token = tokens[idx]
        href = str(token.attrGet("href") or "")
        if not href.startswith(WEB_PREFIX + "/"):  # our citations stay in the tab; anything else is foreign
            token.attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env_)

    md.add_render_rule("link_open", link_open)
    return md


_md = _markdown()


def _link_citations(tokens: list[Token], citations: dict[int, dict[str, Any]]) -> None:
    """Turn ``[n]`` in the answer's text (not in its code) into links to the cited lines."""
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        children: list[Token] = []
        for child in token.children:
            if child.type != "text" or not CITATION.search(child.content):
                children.append(child)
                continue
            pos = 0
            for match in CITATION.finditer(child.content):
                numbers = [int(n) for n in match.group(1).split(",")]
                known = [citations[n] for n in numbers if n in citations]
                if not known:
                    continue
                children.append(_text(child.content[pos : match.start()]))
                for i, cite in enumerate(known):
                    if i:
                        children.append(_text(" "))
                    link = Token("link_open", "a", 1)
                    link.attrSet("href", citation_url(cite))
                    link.attrSet("class", "cite")
                    link.attrSet("title", f"{cite.get('path', '')}:{cite.get('startLine', '')}-{cite.get('endLine', '')}")
                    children.extend([link, _text(f"[{cite['n']}]"), Token("link_close", "a", -1)])
                pos = match.end()
            children.append(_text(child.content[pos:]))
        token.children = children


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def citation_url(cite: dict[str, Any]) -> str:
    """The code view of a citation, its lines marked."""
    start, end = int(cite.get("startLine") or 1), int(cite.get("endLine") or 1)
    return code_url(str(cite["identifier"]), lines=(start, end), commit=str(cite.get("commit") or ""))


def render_answer(answer: str, citations: Sequence[dict[str, Any]]) -> Markup:
    """An answer's markdown as safe HTML, its ``[n]`` linked to the cited code."""
    tokens = _md.parse(answer)
    _link_citations(tokens, {int(c["n"]): c for c in citations if "n" in c})
    return Markup(_md.renderer.render(tokens, _md.options, {}))


env.globals["citation_url"] = citation_url


def render(template: str, **context: Any) -> str:
    """A page."""
    return env.get_template(template).render(**context)


# Where a streamed page may be sent so far: ``{{ flush }}`` in a template. Repository text never
# equals it (every piece of it is escaped, so it cannot hold ``<!--``); it is dropped from the page.
FLUSH = Markup("<!--flush-->")
env.globals["flush"] = FLUSH


def stream(template: str, **context: Any) -> Iterator[str]:
    """A page in pieces, cut at each ``{{ flush }}``: the browser gets the top of the page (and
    the stylesheets' URLs) and the first results while later ones are still being highlighted."""
    pending: list[str] = []
    for piece in env.get_template(template).generate(**context):
        if piece == FLUSH:
            if pending:
                yield "".join(pending)
                pending.clear()
        else:
            pending.append(piece)
    if pending:
        yield "".join(pending)
