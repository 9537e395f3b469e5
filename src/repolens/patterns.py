"""Regular expressions that come from users, run on RE2 so that no pattern can stall the server.

Python's ``re`` backtracks: ``(\\w+\\s?)+$`` against one line of 40 letters takes minutes, and it
holds the GIL meanwhile, so every other request (and shutdown) waits. RE2 matches in time linear
in the text for a given pattern, releases the GIL while it matches, and has no backreferences or
lookaround, the features that need backtracking. A pattern that uses them is refused with a
message naming the feature, never handed to ``re`` instead.

Linear is not yet cheap: when a pattern's DFA outgrows its memory RE2 falls back to an NFA that
costs about 1 ns per byte of text per instruction of the compiled program (measured on this
project's 2-core EPYC VM: ``(?s).*a.{100}x``, 713 instructions, 0.8 s over 1 MB). So the program
is capped (``MAX_PROGRAM_SIZE``) to bound one match call, and callers that scan a corpus check a
``Deadline`` between calls to bound a request.

Semantics kept from the ``re`` days: smart case (case-sensitive only if the pattern has an
upper-case letter), ``^``/``$`` at line boundaries, spans in characters (not bytes), literal mode.
RE2's ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII-only, where ``re``'s were Unicode-aware.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import re2

from repolens.errors import InvalidInput

MAX_PATTERN_CHARS = 1000
# Instructions of a compiled regex: the NFA fallback costs ~1 ns per byte per instruction, so
# 2,000 keeps one call over a 1 MB file (REPOLENS_MAX_FILE_BYTES' default) near 2 s at worst.
# Ordinary patterns use tens (``def\s+\w+\(`` is 17); ``\p{L}+`` (1,201) and ``\w{200}`` fit.
MAX_PROGRAM_SIZE = 2_000
# RE2's own default (8 MiB per compiled pattern, most of it the lazily built DFA); written out
# because memory per in-flight search is what it bounds.
RE2_MAX_MEM_BYTES = 8 << 20
# Matches inside lines already reported after which grep walks the rest of a file by lines: a
# pattern this dense would cost one Python step per match; below it, walking matches is cheaper
# than finding each line's start (measured on src/: 12 ms vs 20 ms for `def `, 5.3 s vs 0.3 s for
# `(\d+)*[a-z]`).
DENSE_AFTER_MATCHES = 64

_ENGINE = "the regex engine is RE2 (linear time, no backtracking)"
# RE2's parse errors for Perl/Python features it deliberately lacks -> what to call them.
_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?>", "atomic groups (?>...)"),
    ("(?(", "conditional groups (?(...)...)"),
    ("(?P=", "named backreferences (?P=name)"),
    ("(?P>", "recursion (?P>name)"),
    ("(?x", "verbose mode (?x)"),
    ("++", "possessive quantifiers (++, *+, ?+)"),
    ("*+", "possessive quantifiers (++, *+, ?+)"),
    ("?+", "possessive quantifiers (++, *+, ?+)"),
    ("}+", "possessive quantifiers (++, *+, ?+)"),
    ("\\Z", "\\Z (use \\z for the end of the text, or $)"),
    ("\\k", "named backreferences \\k<name>"),
    ("\\g", "backreferences \\g<n>"),
)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A wall-clock budget for one request's matching, checked between match calls."""

    at: float  # time.monotonic() value after which work stops
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def expired(self) -> bool:
        """Whether the budget is spent."""
        return time.monotonic() > self.at


class UserPattern:
    """A compiled user pattern: ``spans(text)`` yields ``(start, end)`` character offsets."""

    __slots__ = ("_line_regexp", "_matches_empty", "_regexp", "case_sensitive", "pattern", "regex")

    def __init__(self, pattern: str, *, regex: bool, case_sensitive: bool | None = None) -> None:
        if not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise InvalidInput(f"pattern must be 1 to {MAX_PATTERN_CHARS} characters")
        self.pattern = pattern
        self.regex = regex
        self.case_sensitive = pattern != pattern.lower() if case_sensitive is None else case_sensitive
        options = re2.Options()
        options.case_sensitive = self.case_sensitive
        options.never_capture = True  # only whole-match spans are used; groups would cost an NFA pass
        options.log_errors = False  # a bad pattern is the caller's error, not a server log line
        options.max_mem = RE2_MAX_MEM_BYTES
        body = pattern if regex else re2.escape(pattern)
        try:
            # (?m): ^ and $ match at line boundaries, as grep users expect (re.MULTILINE before).
            self._regexp = re2.compile(f"(?m){body}", options)
            # The same pattern, reaching from the start of a line to the end of its first match on
            # that line: one match per matching line, however often the pattern matches within it
            # (a pattern that can match the empty string stops at the empty match: not used then).
            self._line_regexp = re2.compile(f"(?m)^[^\\n]*?(?:{body})", options)
        except re2.error as exc:
            raise InvalidInput(_explain(pattern, exc)) from None
        finally:
            # re2.compile keeps the last 128 patterns (up to 8 MiB of DFA each) in a module cache;
            # with user-chosen patterns that is memory an attacker could fill, so keep none.
            re2.purge()
        self._matches_empty = self._regexp.search("") is not None
        if regex and self._regexp.programsize > MAX_PROGRAM_SIZE:
            raise InvalidInput(
                f"regular expression is too complex: it compiles to {self._regexp.programsize} instructions, "
                f"over the {MAX_PROGRAM_SIZE} allowed; use smaller repetition counts or fewer alternatives"
            )

    def line_spans(self, text: str, *, deadline: Deadline | None = None) -> Iterator[tuple[int, int]]:
        """The first non-empty match of each line that has one, as ``(start, end)`` offsets.

        What grep reports is lines. The matches are walked one by one while they are sparse (the
        usual identifier or phrase); once a pattern turns out dense (``[a-z]`` matches every
        letter) the rest of the text is walked a line at a time, so such a pattern costs one step
        per matching line instead of one per match: over a large corpus, the difference between
        milliseconds and the deadline. Raises ``InvalidInput`` when ``deadline`` expires.
        """
        line_end = -1  # where the last reported line ends
        same_line = 0  # matches skipped because their line was reported already
        for start, end in self.spans(text, deadline=deadline):
            if start <= line_end:
                same_line += 1
                if same_line > DENSE_AFTER_MATCHES and not self._matches_empty:
                    yield from self._by_line(text, line_end + 1, deadline)
                    return
                continue
            yield start, end
            newline = text.find("\n", start)
            line_end = len(text) if newline < 0 else newline

    def _by_line(self, text: str, pos: int, deadline: Deadline | None) -> Iterator[tuple[int, int]]:
        for match in self._line_regexp.finditer(text, pos):
            line_start, end = match.span()
            # Where on the line the match begins: the leftmost match within the line's matched
            # stretch (searched in that short stretch only; a search in ``text`` re-encodes all of it).
            inner = self._regexp.search(text[line_start:end])
            start = line_start + (inner.start() if inner is not None else 0)
            if start != end:
                yield start, end
            if deadline is not None and deadline.expired():
                raise deadline_error(deadline)

    def spans(self, text: str, *, deadline: Deadline | None = None) -> Iterator[tuple[int, int]]:
        """Non-empty matches in ``text`` as ``(start, end)`` character offsets, end exclusive.

        Raises ``InvalidInput`` when ``deadline`` expires between two matches.
        """
        for match in self._regexp.finditer(text):
            start, end = match.span()
            if start != end:
                yield start, end
            if deadline is not None and deadline.expired():
                raise deadline_error(deadline)


def deadline_error(deadline: Deadline) -> InvalidInput:
    """The error for a search that used up its time."""
    return InvalidInput(
        f"the search stopped after {deadline.seconds:g} s without finishing; narrow it with paths or "
        "extensions, or use a simpler pattern"
    )


def _explain(pattern: str, exc: re2.error) -> str:
    raw = exc.args[0] if exc.args else ""
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "invalid escape sequence: \\" in message and message[-1:].isdigit():
        return f"unsupported in regular expressions: backreferences such as \\1 ({_ENGINE})"
    for marker, feature in _UNSUPPORTED:
        if message.endswith(marker) or (marker in ("(?P=", "(?P>") and "(?P" in message and marker in pattern):
            return f"unsupported in regular expressions: {feature} ({_ENGINE})"
    return f"invalid regular expression: {message.replace(': (?m)', ': ', 1)}"
