"""Query analysis: is this an identifier or a question, and what in it names code?"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from repolens.parsing.tokens import QUERY_STOPWORDS, identifier_tokens, query_terms, split_identifier
from repolens.retrieval.report import MAX_REPORT_TERMS, REPORT_STOPWORDS, ReportParts, analyze_report, is_long

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
DECLARATION_WORDS = frozenset(
    {
        "overload",
        "overloads",
        "overloaded",
        "abstract",
        "interface",
        "interfaces",
        "declaration",
        "declarations",
        "declare",
        "declared",
        "signature",
        "signatures",
        "stub",
        "stubs",
        "prototype",
        "prototypes",
        "protocol",
        "trait",
    }
)


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    """What retrieval needs to know about a query."""

    text: str
    terms: tuple[str, ...]  # lexical terms (identifier-split, stop-words removed)
    is_symbol: bool  # the whole query is one identifier
    identifiers: tuple[str, ...]  # names to look up as definitions (last segment first)
    keywords: tuple[str, ...]  # lower-case words to match against path components
    wants_declarations: bool = False  # the query asks for declarations (see DECLARATION_WORDS)
    report: ReportParts | None = None  # a long query (an issue report) taken apart
    # The terms of a report's telling parts (title, messages, frames, calls): what unit-level
    # BM25 searches, so that the prose does not drown them (and the search stays fast).
    focus_terms: tuple[str, ...] = ()
    # What the embedder reads (it truncates at ~128 tokens, so a report's head): its title and
    # error messages, the report's own summary of the problem. Empty: the query text.
    vector_text: str = ""


def _last_segment(name: str) -> str:
    return re.split(r"\.|::|->|\\|#", name.removesuffix("()"))[-1]


def analyze(query: str) -> QueryAnalysis:
    """Classify ``query`` and extract its identifiers and path keywords."""
    text = query.strip()
    if is_long(text):
        return _analyze_report(text)
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


VECTOR_TEXT_SEPARATOR = ". "


def _analyze_report(text: str) -> QueryAnalysis:
    report = analyze_report(text)
    # Names a report shows: exception classes, the functions of its trace, the API it calls.
    names = [*report.exceptions, *(f.function for f in report.frames if f.function), *report.calls]
    identifiers = [_last_segment(n) for n in names if _looks_like_code(_last_segment(n))]
    focus = " ".join(
        [report.title, *report.messages, *report.exceptions, *(f.function for f in report.frames), *report.calls]
    )
    focus_terms = query_terms(focus)
    prose = [t for t in identifier_tokens(f"{report.prose}\n{report.code}") if t not in REPORT_STOPWORDS]
    counts = Counter(prose)
    ranked = sorted(dict.fromkeys(prose), key=lambda t: -counts[t])  # stable: ties keep their order
    terms = list(dict.fromkeys([*focus_terms, *(t for t in ranked if t not in QUERY_STOPWORDS)]))[:MAX_REPORT_TERMS]
    return QueryAnalysis(
        text=text,
        terms=tuple(terms),
        is_symbol=False,
        identifiers=tuple(dict.fromkeys(i for i in identifiers if i)),
        keywords=(),  # the words of a report name symptoms, not the files to fix
        wants_declarations=False,
        report=report,
        focus_terms=tuple(focus_terms),
        vector_text=VECTOR_TEXT_SEPARATOR.join([report.title, *report.messages]),
    )


def _looks_like_code(token: str) -> bool:
    # A single plain lower-case English word ("authentication") reads as natural language;
    # anything with case changes, underscores or separators reads as an identifier.
    if re.search(r"[._:>\\#$]", token):
        return True
    if len(split_identifier(token)) > 1:
        return True
    return token[:1].isupper()
