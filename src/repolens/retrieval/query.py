"""Query analysis: is this an identifier or a question, and what in it names code?"""

from __future__ import annotations

import re
from dataclasses import dataclass

from repolens.parsing.tokens import QUERY_STOPWORDS, query_terms, split_identifier

# An identifier-shaped query: one token, possibly qualified (a.b, A::B, a->b, A\B).
_SYMBOL_QUERY = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:\.|::|->|\\|#)[A-Za-z_$][\w$]*)*(?:\(\))?$")
# Inside a sentence, a token that is clearly code: camelCase, PascalCase with a second
# capital, snake_case, dotted, or `backquoted`.
_EMBEDDED = re.compile(
    r"`([^`]+)`|\b([A-Za-z_][\w]*(?:(?:\.|::)[A-Za-z_]\w*)+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*|[A-Za-z]+_\w+|[A-Z]{2,}[a-z]\w*)\b"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
# Words with which a query asks for declarations rather than the code that runs: then
# overload stubs, abstract and interface methods and prototypes are not ranked down.
DECLARATION_WORDS = frozenset({
    "overload", "overloads", "overloaded", "abstract", "interface", "interfaces", "declaration", "declarations",
    "declare", "declared", "signature", "signatures", "stub", "stubs", "prototype", "prototypes", "protocol", "trait",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    """What retrieval needs to know about a query."""

    text: str
    terms: tuple[str, ...]  # lexical terms (identifier-split, stop-words removed)
    is_symbol: bool  # the whole query is one identifier
    identifiers: tuple[str, ...]  # names to look up as definitions (last segment first)
    keywords: tuple[str, ...]  # lower-case words to match against path components
    wants_declarations: bool = False  # the query asks for declarations (see DECLARATION_WORDS)


def _last_segment(name: str) -> str:
    return re.split(r"\.|::|->|\\|#", name.removesuffix("()"))[-1]


def analyze(query: str) -> QueryAnalysis:
    """Classify ``query`` and extract its identifiers and path keywords."""
    text = query.strip()
    is_symbol = bool(_SYMBOL_QUERY.match(text)) and _looks_like_code(text)
    identifiers: list[str] = []
    if is_symbol:
        clean = text.removesuffix("()")
        identifiers.append(_last_segment(clean))
        if _last_segment(clean) != clean:
            identifiers.append(re.sub(r"::|->|\\|#", ".", clean))
    elif _SYMBOL_QUERY.match(text):
        # One plain word ("selectinload", "relationship") may be English or a name: its
        # definitions are looked up, and boosted as a hint (as identifiers inside a sentence).
        identifiers.append(text)
    else:
        for match in _EMBEDDED.finditer(text):
            token = (match.group(1) or match.group(2) or "").strip()
            if token:
                identifiers.append(_last_segment(token))
    keywords = tuple(
        dict.fromkeys(w.lower() for w in _WORD.findall(text) if len(w) > 2 and w.lower() not in QUERY_STOPWORDS)
    )
    return QueryAnalysis(
        text=text,
        terms=tuple(query_terms(text)),
        is_symbol=is_symbol,
        identifiers=tuple(dict.fromkeys(identifiers)),
        keywords=keywords,
        wants_declarations=any(w.lower() in DECLARATION_WORDS for w in _WORD.findall(text)),
    )


def _looks_like_code(token: str) -> bool:
    # A single plain lower-case English word ("authentication") reads as natural language;
    # anything with case changes, underscores or separators reads as an identifier.
    if re.search(r"[._:>\\#$]", token):
        return True
    if len(split_identifier(token)) > 1:
        return True
    return token[:1].isupper()
