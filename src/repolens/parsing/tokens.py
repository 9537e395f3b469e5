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
from itertools import chain

TOKENIZER_VERSION = 1

# What a word is (the tokens are these words', read as runs of their characters: ``_runs``).
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
    return list(chain.from_iterable(map(_run_tokens, _runs(text).split())))


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


# ``identifier_tokens`` and ``tokens_by_line`` read text as runs of the characters ``_IDENT`` matches
# (ASCII letters, digits and the underscore): every other character (non-ASCII ones after
# ``encode("ascii", "replace")``) becomes a space, so the runs are a ``str.split()``, in C, instead of one
# regex match per word (a file's lines: ~25 % faster). A run is one ``_IDENT`` word, or a number and then
# one (``2x`` is ``2`` and ``x``): ``_run_tokens``.
_RUN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_\n")
_TO_RUNS = bytes(b if b in _RUN_CHARS else ord(" ") for b in range(256))
_LEADING_DIGITS = re.compile(r"[0-9]+")


def _runs(text: str) -> str:
    """``text`` with every character but ASCII letters, digits, ``_`` and newlines made a space."""
    return text.encode("ascii", "replace").translate(_TO_RUNS).decode("ascii")


@lru_cache(maxsize=1 << 17)
def _run_tokens(run: str) -> tuple[str, ...]:
    if not run[0].isdigit():
        return _word_tokens(run)
    number = _LEADING_DIGITS.match(run)
    assert number is not None
    rest = run[number.end() :]
    return _word_tokens(number[0]) + (_word_tokens(rest) if rest else ())


def tokens_by_line(text: str) -> tuple[list[str], list[int]]:
    """``identifier_tokens(text)`` and where each line's tokens start.

    No token spans a newline, so the tokens of lines ``a`` to ``b - 1`` (0-based) joined by newlines
    are ``tokens[starts[a]:starts[b]]``: a file is tokenized once, and each of its units takes a
    slice, instead of every unit tokenizing its lines again (``starts`` has an entry per line and
    one for the end).
    """
    runs = _runs(text)
    tokens: list[str] = []
    starts = [0]
    extend, mark = tokens.extend, starts.append
    for line in runs.split("\n"):
        if line:
            extend(chain.from_iterable(map(_run_tokens, line.split())))
        mark(len(tokens))
    return tokens, starts
