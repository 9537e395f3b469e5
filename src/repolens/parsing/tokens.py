"""Identifier-aware tokenization, shared by the lexical index and the query side.

``HandlerStack`` yields ``handlerstack handler stack``; ``field_validator`` yields
``field_validator field validator``: the compound is kept, so an exact identifier still
scores above a text that merely mentions its parts. The output feeds SQLite FTS5, whose
own tokenizer then only lower-cases and stems (porter), so the split happens here.

Changing what this module emits changes the index: bump ``TOKENIZER_VERSION`` so stored
indexes are rebuilt instead of being corrupted by deletes with different tokens.
"""

from __future__ import annotations

import re
from functools import lru_cache

TOKENIZER_VERSION = 1

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MAX_TOKEN_CHARS = 48  # longer "identifiers" are hashes or base64, not names
_MAX_NUMBER_CHARS = 4  # port numbers and status codes help; long numbers are noise

# Words that carry no meaning in a question about code. Only dropped from queries: the
# index keeps them so that phrase-like identifiers (``is_empty``) still split fully.
QUERY_STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "not",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "those",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "code",
        "file",
        "files",
        "function",
        "functions",
        "implement",
        "implemented",
        "implementation",
        "handled",
        "handle",
        "handles",
        "work",
        "works",
        "used",
        "use",
        "using",
    ]
)


def split_identifier(word: str) -> list[str]:
    """Split one identifier into its lower-case parts (snake_case and camelCase)."""
    parts: list[str] = []
    for piece in word.split("_"):
        if piece:
            parts.extend(m.lower() for m in _CAMEL.findall(piece))
    return parts


@lru_cache(maxsize=1 << 17)
def _word_tokens(word: str) -> tuple[str, ...]:
    # Identifiers repeat a great deal within a repository, so each distinct word is split once.
    if len(word) > _MAX_TOKEN_CHARS:
        return ()
    if word[0].isdigit():
        return (word,) if len(word) <= _MAX_NUMBER_CHARS else ()
    lower = word.lower().strip("_")
    if not lower:
        return ()
    parts = split_identifier(word)
    return (lower, *parts) if len(parts) > 1 else (lower,)


def identifier_tokens(text: str) -> list[str]:
    """All index tokens of ``text``: each identifier's compound form plus its parts."""
    out: list[str] = []
    extend = out.extend
    for word in _IDENT.findall(text):
        extend(_word_tokens(word))
    return out


def path_tokens(path: str) -> list[str]:
    """Tokens of a repository path: directory names, file stem and extension."""
    return identifier_tokens(path.replace("/", " ").replace(".", " ").replace("-", " "))


def query_terms(query: str) -> list[str]:
    """Distinct query tokens, stop-words removed unless nothing else is left."""
    seen: dict[str, None] = {}
    for token in identifier_tokens(query):
        seen.setdefault(token, None)
    terms = [t for t in seen if t not in QUERY_STOPWORDS]
    return terms or list(seen)


_IDENT_OR_NEWLINE = re.compile(_IDENT.pattern + r"|\n")


def tokens_by_line(text: str) -> tuple[list[str], list[int]]:
    """``identifier_tokens(text)`` and where each line's tokens start.

    No token spans a newline, so the tokens of lines ``a`` to ``b - 1`` (0-based) joined by newlines
    are ``tokens[starts[a]:starts[b]]``: a file is tokenized once, and each of its units takes a
    slice, instead of every unit tokenizing its lines again (``starts`` has an entry per line and
    one for the end).
    """
    tokens: list[str] = []
    starts = [0]
    extend, mark = tokens.extend, starts.append
    for word in _IDENT_OR_NEWLINE.findall(text):
        if word == "\n":
            mark(len(tokens))
        else:
            extend(_word_tokens(word))
    mark(len(tokens))
    return tokens, starts
